import Foundation
import GatehouseTesting
import Testing

/// `gatehouse load` against two real nodes: it seeds, drives every kind of operation and finds no
/// correctness failure (no accepted replay or wrong code, no refused valid code or session).
@Suite("gatehouse load", .serialized)
struct LoadCommandTests {
    /// Runs `gatehouse load` with `arguments` (plus the keys, JSON and no progress) and returns
    /// its JSON report, after checking it exited 0.
    static func run(_ arguments: [String]) async throws -> [String: Any]? {
        let keys = GatehouseNodeProcess.apiKeys
        let arguments = ["load"] + arguments + [
            "--json", "--no-progress",
            "--admin-key", keys["admin"]!, "--frontend-key", keys["frontend"]!, "--verify-key", keys["verify"]!,
        ]
        // Bounded: the runs last a few seconds plus seeding; give them at most 90 s.
        let result = try await Program.run(try GatehouseNodeProcess.executable(), arguments, timeout: .seconds(90))
        if result.timedOut {
            Issue.record("gatehouse load did not finish within 90 s")
            return nil
        }
        #expect(result.status == 0, "exit \(result.status): \(result.stdout) \(result.stderr)")
        return try #require((try? JSONSerialization.jsonObject(with: result.output)) as? [String: Any], "not JSON: \(result.stdout) \(result.stderr)")
    }

    /// The engines that can drive the timed run (`--engine`).
    static let engines = ["epoll", "nio"]

    @Test("a short run across two nodes passes its own checks", .timeLimit(.minutes(3)), arguments: engines)
    func shortRun(engine: String) async throws {
        try await Deployment.with(nodes: 2) { d in
            guard let report = try await Self.run([
                "--url", d.nodes[0].baseURL.absoluteString, "--url", d.nodes[1].baseURL.absoluteString,
                "--users", "50", "--concurrency", "8", "--duration", "4", "--engine", engine,
                "--mix", "auth=60,valid=10,wrong=15,replay=5,check=10",
            ]) else { return }
            #expect(report["engine"] as? String == engine)
            let kinds = try #require(report["kinds"] as? [String: Any])
            for kind in ["auth", "valid", "wrong", "replay", "check"] {
                let stats = kinds[kind] as? [String: Any]
                #expect((stats?["count"] as? Int ?? 0) > 0, "no \(kind) operations: \(report)")
                #expect(stats?["latency_ms"] is [String: Any])
                // Every answer was the expected one: sessions and valid codes accepted, wrong
                // codes and replays refused as invalid_code (or throttled).
                #expect(stats?["ok"] as? Int == stats?["count"] as? Int, "\(kind): \(report)")
            }
            #expect((report["errors"] as? [String: Int])?.isEmpty == true, "\(report)")
            // Every check (a valid code on a challenge opened before the run) was accepted.
            let checks = try #require(kinds["check"] as? [String: Any])
            #expect(checks["ok"] as? Int == checks["count"] as? Int, "\(checks)")
            #expect(report["correctness_failures"] as? Int == 0, "\(report)")
            #expect((report["throughput"] as? Double ?? 0) > 0)
            #expect(report["passed"] as? Bool == true)
        }
    }

    @Test("wrong codes alone on pre-opened challenges: refused inside the free failures, throttled after them",
          .timeLimit(.minutes(3)))
    func wrongChecks() async throws {
        try await Deployment.with(nodes: 1) { d in
            let url = d.nodes[0].baseURL.absoluteString
            // Four wrong codes per challenge: inside every user's 5 free failures, so each answer
            // must be 401 invalid_code; a 429 would be an error of the run. The rate cap keeps
            // the run inside the 1,600 wrong codes the challenges take.
            guard let free = try await Self.run([
                "--url", url, "--users", "400", "--concurrency", "8", "--duration", "2", "--rate", "500", "--mix", "wrongcheck=100",
            ]) else { return }
            let kinds = try #require(free["kinds"] as? [String: Any])
            let wrong = try #require(kinds["wrongcheck"] as? [String: Any])
            let count = try #require(wrong["count"] as? Int)
            #expect(count > 0 && count <= 1_010, "\(free)")
            #expect(wrong["ok"] as? Int == count, "\(free)")
            #expect(free["wrong_pool"] as? Int == 400, "every user takes wrong codes: \(free)")
            #expect((free["skipped"] as? [String: Int])?.isEmpty == true, "\(free)")
            #expect((free["errors"] as? [String: Int])?.isEmpty == true, "\(free)")
            #expect((free["throttled"] as? [String: Int])?.isEmpty == true, "\(free)")
            #expect(free["passed"] as? Bool == true)

            // Twelve per challenge on 4 users, 20 a second for 2 s (about 10 per user): after
            // the 5th failure the throttle answers, and a 429 is counted as an expected refusal.
            guard let throttled = try await Self.run([
                "--url", url, "--users", "4", "--concurrency", "4", "--duration", "2", "--rate", "20", "--mix", "wrongcheck=100",
                "--wrong-per-challenge", "12",
            ]) else { return }
            let stats = try #require((throttled["kinds"] as? [String: Any])?["wrongcheck"] as? [String: Any])
            let attempts = try #require(stats["count"] as? Int)
            #expect(attempts >= 28 && attempts <= 48, "\(throttled)")
            #expect(stats["ok"] as? Int == attempts, "\(throttled)")
            #expect((throttled["errors"] as? [String: Int])?.isEmpty == true, "\(throttled)")
            let answered429 = (throttled["throttled"] as? [String: Int])?["wrongcheck"] ?? 0
            #expect(answered429 > 0 && answered429 <= attempts - 20, "only after each user's 5 free failures: \(throttled)")
            #expect(throttled["passed"] as? Bool == true)
        }
    }

    @Test("a rate cap over two event loops: at most the cap, every answer right", .timeLimit(.minutes(3)), arguments: engines)
    func rateCap(engine: String) async throws {
        try await Deployment.with(nodes: 1) { d in
            guard let report = try await Self.run([
                "--url", d.nodes[0].baseURL.absoluteString, "--users", "40", "--concurrency", "6", "--threads", "2",
                "--rate", "100", "--duration", "2", "--mix", "auth=70,wrong=20,replay=10", "--engine", engine,
            ]) else { return }
            #expect(report["engine"] as? String == engine)
            let total = try #require(report["total_ops"] as? Int)
            // The pacer hands out one start every 10 ms until the deadline: never more than
            // 2 s worth (plus the one in hand per connection), and on a busy machine still most.
            #expect(total <= 206, "\(report)")
            #expect(total >= 100, "\(report)")
            #expect(report["transport_errors"] as? Int == 0, "\(report)")
            #expect((report["errors"] as? [String: Int])?.isEmpty == true, "\(report)")
            #expect(report["passed"] as? Bool == true)
        }
    }
}
