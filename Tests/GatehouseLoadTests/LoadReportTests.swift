import Foundation
import GatehouseLoad
import Testing

/// `gatehouse load --json`'s latency curve: each kind's whole distribution, read from its
/// HdrHistogram with the percentile iteration, as `benchmarks/plot.sh` draws it.
@Suite("gatehouse load: report")
struct LoadReportTests {
    static let keys = ["GATEHOUSE_ADMIN_KEY": "a", "GATEHOUSE_FRONTEND_KEY": "f", "GATEHOUSE_VERIFY_KEY": "v", "GATEHOUSE_URL": "http://127.0.0.1:9000"]

    /// Within HdrHistogram's three significant digits.
    static func near(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= max(a, b) * 0.001 + 1e-9 }

    @Test("1 µs … 10 ms once each: HdrHistogram's ticks, from the minimum at 0 to the maximum at 100, never decreasing")
    func uniform() {
        var stats = LoadKindStats()
        for micros in UInt64(1)...10_000 { stats.record(ok: true, micros: micros) }
        let curve = stats.latencyCurve
        // Five ticks per half distance to 100%: steps of 10 up to 50, of 5 up to 75, of 2.5 up to 87.5, …
        #expect(curve.prefix(14).map(\.percentile) == [0, 10, 20, 30, 40, 50, 55, 60, 65, 70, 75, 77.5, 80, 82.5])
        #expect(curve.first?.ms == 0.001)
        #expect(curve.last?.percentile == 100)
        #expect(Self.near(curve.last?.ms ?? 0, 10.0), "the maximum, \(curve.last?.ms ?? 0) ms")
        for (p, expected) in [(10.0, 1.0), (50.0, 5.0), (75.0, 7.5), (90.0, 9.0)] {
            let point = curve.first { $0.percentile == p }
            #expect(point.map { Self.near($0.ms, expected) } == true, "at \(p)%: \(String(describing: point)), expected \(expected) ms")
        }
        for (a, b) in zip(curve, curve.dropFirst()) {
            #expect(a.percentile <= b.percentile && a.ms <= b.ms, "\(a) then \(b)")
        }
        // The ticks reach into the last operation's share (1 in 10,000), and stay few.
        #expect(curve.dropLast().last.map { $0.percentile >= 99.99 } == true, "\(curve.suffix(3))")
        // Five per halving of the distance to 100%: about 5 × log2(10,000) ≈ 66.
        #expect(curve.count > 60 && curve.count < 80, "\(curve.count) pairs")
    }

    @Test("a slow 1%: the curve stays at 1 ms up to 99% and climbs to 100 ms after it")
    func tail() {
        var stats = LoadKindStats()
        for i in 0..<10_000 { stats.record(ok: true, micros: i % 100 == 99 ? 100_000 : 1_000) }
        let curve = stats.latencyCurve
        #expect(curve.filter { $0.percentile <= 99 }.allSatisfy { $0.ms == 1.0 }, "\(curve)")
        let after = curve.filter { $0.percentile > 99 }
        #expect(!after.isEmpty && after.allSatisfy { Self.near($0.ms, 100) }, "\(after)")
    }

    @Test("nothing recorded: an empty curve")
    func empty() {
        #expect(LoadKindStats().latencyCurve.isEmpty)
    }

    @Test("--json: every kind has latency_curve_ms next to the fields it had, which keep their values")
    func json() throws {
        var result = LoadWorkerResult()
        var check = LoadKindStats()
        for micros in UInt64(1)...2_000 { check.record(ok: micros % 10 != 0, micros: micros * 5) }
        result.kinds[.check] = check
        let config = try LoadOptions().validated(environment: Self.keys)
        let report = LoadReport(config: config, result: result, elapsed: 2, seedSeconds: 0.5, runCPUSeconds: 1, validPool: 180, wrongPool: 20)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        for key in ["urls", "users", "valid_pool", "wrong_pool", "concurrency", "duration_s", "seed_s", "engine", "run_cpu_s", "rate", "mix",
                    "total_ops", "throughput", "kinds", "errors", "transport_errors", "skipped", "throttled", "failures",
                    "correctness_failures", "passed"] {
            #expect(object[key] != nil, "no \(key)")
        }
        #expect(object["total_ops"] as? Int == 2_000)
        let kinds = try #require(object["kinds"] as? [String: [String: Any]])
        #expect(Set(kinds.keys) == Set(LoadOp.allCases.map(\.rawValue)))
        let kind = try #require(kinds["check"])
        #expect(kind["count"] as? Int == 2_000 && kind["ok"] as? Int == 1_800 && kind["ops_per_s"] as? Double == 1_000)
        let latency = try #require(kind["latency_ms"] as? [String: Double])
        #expect(Set(latency.keys) == ["p50", "p90", "p99", "p99_9", "max"])
        #expect(Self.near(latency["p50"] ?? 0, 5.0) && Self.near(latency["max"] ?? 0, 10.0), "\(latency)")
        let curve = try #require(kind["latency_curve_ms"] as? [[Double]])
        #expect(curve.allSatisfy { $0.count == 2 })
        #expect(curve.first == [0, 0.005])
        #expect(curve.last == [100, latency["max"]!], "\(curve.suffix(2)) vs max \(latency["max"]!)")
        // The pair at 50 is the report's own p50.
        #expect(curve.first { $0[0] == 50 }?[1] == latency["p50"])
        for name in LoadOp.allCases.map(\.rawValue) where name != "check" {
            #expect((kinds[name]?["latency_curve_ms"] as? [Any])?.isEmpty == true, "\(name)")
        }
    }
}
