import Foundation
import GatehouseSystem
import GatehouseTesting
import Testing

/// The compose topology on loopback (`scripts/topology.sh`: Redis with AOF, three nodes, nginx)
/// with the checks of `scripts/topology-check.sh`: cross-node sessions, revocation within 1 s,
/// a node SIGKILLed under load through the balancer, Redis paused (SIGSTOP) for 10 s under load, Redis restarted from its AOF.
@Suite("Three-node topology on loopback", .timeLimit(.minutes(5)))
struct TopologyTests {
    @Test("scripts/topology.sh -n 3 -- scripts/topology-check.sh passes")
    func threeNodes() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("topology-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        var environment = ProcessInfo.processInfo.environment
        environment["GATEHOUSE_BINARY"] = try GatehouseNodeProcess.executable()
        // posix_spawn with an empty signal mask: the script's cleanup must be able to stop what
        // it started (a child of Foundation's Process would inherit blocked signals).
        let pid = try ChildProcess.spawn(
            "/bin/bash",
            [root.appendingPathComponent("scripts/topology.sh").path, "-n", "3", "--", root.appendingPathComponent("scripts/topology-check.sh").path],
            environment: environment, output: .file(log)
        )
        // At most 240 s; then SIGTERM (the script's trap stops what it started) and SIGKILL if it
        // has not exited 30 s later.
        let finished = await ChildProcess.waitForExit(pid, timeout: .seconds(240))
        let exited = finished != nil
        var status = finished ?? 0
        if !exited { status = await ChildProcess.terminate(pid, grace: .seconds(30)) }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(exited && status == 0, "topology check failed (status \(status)):\n\(text)")
        for line in ["ok 1:", "ok 2:", "ok 3:", "ok 4:", "ok 5:"] {
            #expect(text.contains(line), "missing \(line) in:\n\(text)")
        }
    }
}
