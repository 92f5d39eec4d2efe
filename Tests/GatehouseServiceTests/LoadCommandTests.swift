import Foundation
import GatehouseTesting
import Testing

/// `gatehouse load` against two real nodes: it seeds, drives every kind of operation and finds no
/// correctness failure (no accepted replay or wrong code, no refused valid code or session).
@Suite("gatehouse load", .serialized)
struct LoadCommandTests {
    @Test("a short run across two nodes passes its own checks", .timeLimit(.minutes(3)))
    func shortRun() async throws {
        try await Deployment.with(nodes: 2) { d in
            let keys = GatehouseNodeProcess.apiKeys
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try GatehouseNodeProcess.executable())
            process.arguments = [
                "load", "--url", d.nodes[0].baseURL.absoluteString, "--url", d.nodes[1].baseURL.absoluteString,
                "--users", "50", "--concurrency", "8", "--duration", "4", "--json", "--no-progress",
                "--mix", "auth=60,valid=10,wrong=15,replay=5,check=10",
                "--admin-key", keys["admin"]!, "--frontend-key", keys["frontend"]!, "--verify-key", keys["verify"]!,
            ]
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            // Bounded: the run lasts 4 s plus seeding; give it at most 90 s.
            let deadline = ContinuousClock.now + .seconds(90)
            while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            if process.isRunning {
                process.terminate()
                Issue.record("gatehouse load did not finish within 90 s")
                return
            }
            let output = out.fileHandleForReading.readDataToEndOfFile()
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "exit \(process.terminationStatus): \(String(decoding: output, as: UTF8.self)) \(errors)")
            let report = try #require((try? JSONSerialization.jsonObject(with: output)) as? [String: Any], "not JSON: \(String(decoding: output, as: UTF8.self)) \(errors)")
            let kinds = try #require(report["kinds"] as? [String: Any])
            for kind in ["auth", "valid", "wrong", "replay", "check"] {
                let stats = kinds[kind] as? [String: Any]
                #expect((stats?["count"] as? Int ?? 0) > 0, "no \(kind) operations: \(report)")
                #expect(stats?["latency_ms"] is [String: Any])
            }
            // Every check (a valid code on a challenge opened before the run) was accepted.
            let checks = try #require(kinds["check"] as? [String: Any])
            #expect(checks["ok"] as? Int == checks["count"] as? Int, "\(checks)")
            #expect(report["correctness_failures"] as? Int == 0, "\(report)")
            #expect((report["throughput"] as? Double ?? 0) > 0)
            #expect(report["passed"] as? Bool == true)
        }
    }
}
