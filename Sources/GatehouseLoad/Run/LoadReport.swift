import Foundation
import Histogram

/// What a run did: counts, latencies, errors and correctness failures per operation kind, with
/// ``text()`` and ``json()`` renderings. `benchmarks/e2e.sh`, `scripts/topology-check.sh` and the
/// tests read the JSON (`kinds.<op>.ops_per_s`, `latency_ms`, `passed`, `correctness_failures`,
/// `transport_errors`, `errors`, `total_ops`, …): keep its keys. `kinds.<op>.latency_curve_ms` is
/// the whole latency distribution as `[percentile, ms]` pairs (``LoadKindStats/latencyCurve``),
/// which `benchmarks/plot.sh` draws.
package struct LoadReport: Sendable {
    let config: LoadConfig
    let result: LoadWorkerResult
    /// Seconds of the timed run, as measured.
    package let elapsed: Double
    /// Seconds the seeding took.
    package let seedSeconds: Double
    /// CPU seconds (user + system) the generator's process used during the timed run.
    package let runCPUSeconds: Double
    let validPool: Int
    let wrongPool: Int

    package init(config: LoadConfig, result: LoadWorkerResult, elapsed: Double, seedSeconds: Double, runCPUSeconds: Double, validPool: Int, wrongPool: Int) {
        self.config = config
        self.result = result
        self.elapsed = elapsed
        self.seedSeconds = seedSeconds
        self.runCPUSeconds = runCPUSeconds
        self.validPool = validPool
        self.wrongPool = wrongPool
    }

    /// Operations of every kind.
    package var totalOps: Int { result.kinds.values.reduce(0) { $0 + $1.count } }
    /// Answers that were wrong (an accepted replay or wrong code, a refused valid code or session).
    package var correctnessFailures: Int { result.failures.values.reduce(0, +) }
    var transportShare: Double { totalOps == 0 ? 1 : Double(result.transportErrors) / Double(totalOps) }
    /// No correctness failure, at most 1% transport errors, and something ran.
    package var passed: Bool { correctnessFailures == 0 && transportShare <= 0.01 && totalOps > 0 }

    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9)]

    func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 1000).rounded() / 1000 }
    func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

    /// One JSON object, keys sorted.
    package func json() -> String {
        var kinds: [String: Any] = [:]
        for op in LoadOp.allCases {
            let s = result.kinds[op] ?? LoadKindStats()
            var latency: [String: Any] = [:]
            for (name, p) in Self.percentiles { latency[name] = s.count > 0 ? ms(s.histogram.valueAtPercentile(p)) : 0 }
            latency["max"] = s.count > 0 ? ms(s.histogram.max) : 0
            let curve = s.latencyCurve.map { [$0.percentile, round3($0.ms)] }
            kinds[op.rawValue] = [
                "count": s.count, "ok": s.ok, "ops_per_s": round3(Double(s.count) / elapsed), "latency_ms": latency,
                "latency_curve_ms": curve,
            ]
        }
        let object: [String: Any] = [
            "urls": config.endpoints.map(\.url), "users": config.users, "valid_pool": validPool, "wrong_pool": wrongPool,
            "concurrency": config.concurrency, "duration_s": round3(elapsed), "seed_s": round3(seedSeconds),
            "engine": config.engine.rawValue, "run_cpu_s": round3(runCPUSeconds),
            "rate": config.rate ?? NSNull(), "mix": Dictionary(uniqueKeysWithValues: config.mix.weights.map { ($0.0.rawValue, $0.1) }),
            "total_ops": totalOps, "throughput": round3(Double(totalOps) / elapsed), "kinds": kinds,
            "errors": result.errors, "transport_errors": result.transportErrors, "skipped": result.skipped,
            "throttled": result.throttled,
            "failures": result.failures, "refused_valid": result.refusedValid, "correctness_failures": correctnessFailures, "passed": passed,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The table for people, ending in `PASS` or `FAIL`.
    package func text() -> String {
        var out = "gatehouse load: \(config.endpoints.count) URL(s), \(config.users) users (\(validPool) for valid codes and replays, \(wrongPool) for wrong codes), concurrency \(config.concurrency)"
        if let rate = config.rate { out += ", rate cap \(rate)/s" }
        out += ", engine \(config.engine.rawValue)"
        out += String(format: "\nseeded in %.2f s; ran %.2f s using %.2f s of CPU\n\n", seedSeconds, elapsed, runCPUSeconds)
        out += "kind          count        ok      ops/s     p50 ms     p90 ms     p99 ms   p99.9 ms     max ms\n"
        for op in LoadOp.allCases {
            let s = result.kinds[op] ?? LoadKindStats()
            let p = Self.percentiles.map { s.count > 0 ? ms(s.histogram.valueAtPercentile($0.1)) : 0 }
            out += op.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
            out += String(format: "%9d %9d %10.1f %10.3f %10.3f %10.3f %10.3f %10.3f\n", s.count, s.ok, Double(s.count) / elapsed, p[0], p[1], p[2], p[3], s.count > 0 ? ms(s.histogram.max) : 0)
        }
        out += String(format: "total     %9d %9s %10.1f\n\n", totalOps, "", Double(totalOps) / elapsed)
        func list(_ d: [String: Int]) -> String { d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        out += "errors: \(list(result.errors))\n"
        if let last = result.lastTransportError { out += "last transport error: \(last)\n" }
        out += "skipped: \(list(result.skipped)) (answered by a session check)\n"
        if !result.throttled.isEmpty { out += "throttled (429, expected): \(list(result.throttled))\n" }
        out += "correctness failures: \(correctnessFailures)\(correctnessFailures > 0 ? " (\(list(result.failures)))" : "")\n"
        if !result.refusedValid.isEmpty { out += "refused valid codes: \(result.refusedValid.joined(separator: "; "))\n" }
        out += passed ? "PASS" : "FAIL"
        return out
    }
}
