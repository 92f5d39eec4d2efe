import Foundation
import GatehouseTesting
import Testing

/// The operator's commands (`gatehouse users …`, `domains policy`, `api-key create`) against a
/// running node.
@Suite("Operator CLI against a node", .timeLimit(.minutes(2)))
struct OperatorCLITests {
    /// Runs the CLI to completion (at most 60 s), stdout and stderr together.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let result = try await Program.run(try GatehouseNodeProcess.executable(), arguments, mergingErrors: true)
        return (result.status, result.stdout)
    }

    @Test("users import reports each line; status, unlock, reset; domains policy; api-key create")
    func operatorCommands() async throws {
        try await Deployment.with { d in
            let node = ["--url", d.node.baseURL.absoluteString, "--key", Deployment.keys["admin"]!]
            let file = d.directory + "/import.ndjson"
            try """
            {"user":"cli@example.org","totp_secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","recovery_email":"cli.b@example.net","verified":true}
            {"user":"broken"}
            """.write(toFile: file, atomically: true, encoding: .utf8)
            let imported = try await Self.run(["users", "import", file] + node)
            #expect(imported.status == 2)
            #expect(imported.output.contains("line 1: ok cli@example.org"))
            #expect(imported.output.contains("line 2: error"))
            #expect(imported.output.contains("imported 1, failed 1"))
            let status = try await Self.run(["users", "status", "CLI@example.org"] + node)
            #expect(status.status == 0)
            #expect(status.output.contains("\"enabled\" : true"))
            #expect(try await Self.run(["users", "unlock", "cli@example.org"] + node).status == 0)
            #expect(try await Self.run(["users", "reset", "cli@example.org"] + node).status == 0)
            #expect(try await Self.run(["users", "status", "cli@example.org"] + node).output.contains("\"enabled\" : false"))
            let policy = try await Self.run(["domains", "policy", "cli.example", "--mode", "enforced", "--session-hours", "2"] + node)
            #expect(policy.status == 0)
            #expect(policy.output.contains("\"mode\" : \"enforced\""))
            #expect(try await Self.run(["domains", "policy", "cli.example"] + node).output.contains("\"session_hours\" : 2"))
            let wrongKey = try await Self.run(["users", "status", "cli@example.org", "--url", d.node.baseURL.absoluteString, "--key", "wrong-wrong-wrong"])
            #expect(wrongKey.status != 0 && wrongKey.output.contains("401"))
            let key = try await Self.run(["api-key", "create", "--name", "webmail", "--scopes", "verify+frontend"])
            #expect(key.status == 0)
            let parts = key.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":")
            #expect(parts.count == 3 && parts[0] == "webmail" && parts[1] == "verify+frontend" && parts[2].count == 43)
            #expect(try await Self.run(["api-key", "create", "--name", "x", "--scopes", "root"]).status != 0)
        }
    }
}
