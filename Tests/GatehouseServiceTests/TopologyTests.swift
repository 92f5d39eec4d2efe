import Foundation
import GatehouseSystem
import GatehouseTesting
import Testing

/// The compose topology on loopback (`scripts/topology.sh`: Redis with AOF, three nodes, nginx)
/// with the checks of `scripts/topology-check.sh`: cross-node sessions, revocation within 1 s,
/// a node SIGKILLed under load through the balancer, Redis paused (SIGSTOP) for 10 s under load, Redis restarted from its AOF, the webmail hand-off through nginx.
/// With `--mail` (two nodes, Dovecot, nginx's mail proxy, an SMTP relay), the checks of
/// `scripts/topology-mail-check.sh`: app passwords through the proxy and straight to Dovecot, the
/// primary password refused.
@Suite("The compose topology on loopback (scripts/topology.sh)", .timeLimit(.minutes(5)))
struct TopologyTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `scripts/topology.sh ARGUMENTS -- scripts/CHECK` (at most 240 s, then SIGTERM: the
    /// script's trap stops what it started; SIGKILL if it has not exited 30 s later) and expects
    /// exit 0 and every line of `expected` in its output.
    static func run(_ arguments: [String], check: String, expecting expected: [String]) async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("topology-\(UUID().uuidString).log").path
        // The topology's state (Redis AOF, logs, Dovecot's files), removed afterwards. Under /tmp:
        // Dovecot's Unix sockets live in there and sun_path is short.
        let directory = "/tmp/gatehouse-topology-test-\(UUID().uuidString.prefix(8))"
        defer {
            try? FileManager.default.removeItem(atPath: log)
            try? FileManager.default.removeItem(atPath: directory)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["GATEHOUSE_BINARY"] = try GatehouseNodeProcess.executable()
        // posix_spawn with an empty signal mask: the script's cleanup must be able to stop what
        // it started (a child of Foundation's Process would inherit blocked signals).
        let pid = try ChildProcess.spawn(
            "/bin/bash",
            [root.appendingPathComponent("scripts/topology.sh").path] + arguments + ["-d", directory, "--", root.appendingPathComponent("scripts/\(check)").path],
            environment: environment, output: .file(log)
        )
        let finished = await ChildProcess.waitForExit(pid, timeout: .seconds(240))
        let exited = finished != nil
        var status = finished ?? 0
        if !exited { status = await ChildProcess.terminate(pid, grace: .seconds(30)) }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(exited && status == 0, "topology check failed (status \(status)):\n\(text)")
        for line in expected {
            #expect(text.contains(line), "missing \(line) in:\n\(text)")
        }
    }

    @Test("scripts/topology.sh -n 3 -- scripts/topology-check.sh passes")
    func threeNodes() async throws {
        try await Self.run(["-n", "3"], check: "topology-check.sh", expecting: ["ok 1:", "ok 2:", "ok 3:", "ok 4:", "ok 5:", "ok 6:"])
    }

    @Test("scripts/topology.sh --redis-cluster -n 3 -- scripts/topology-check.sh passes (a master killed instead of Redis paused and restarted)")
    func cluster() async throws {
        try await Self.run(["--redis-cluster", "-n", "3"], check: "topology-check.sh", expecting: ["ok 1:", "ok 2:", "ok 3:", "ok 4:", "ok 5:", "ok 6:"])
    }

    @Test("scripts/topology.sh -n 2 --mail -- scripts/topology-mail-check.sh: an app password opens IMAP through nginx's mail proxy, the primary password is refused")
    func mail() async throws {
        try await Self.run(["-n", "2", "--mail"], check: "topology-mail-check.sh", expecting: ["ok 1:", "ok 2:", "ok 3:", "ok 4:", "ok 5:"])
    }
}
