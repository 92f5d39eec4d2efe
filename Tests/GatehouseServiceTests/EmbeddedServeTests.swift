import Foundation
import GatehouseCore
import GatehouseSystem
import GatehouseTesting
import Testing

/// `gatehouse serve` with no configuration at all: its own redis-server (AOF) and keys under the
/// state folder, the URL and development key printed; the keyring reloads when its file changes.
@Suite("gatehouse serve on its embedded default", .timeLimit(.minutes(2)))
struct EmbeddedServeTests {
    @Test("comes up usable with nothing configured; keyring rotation is picked up without a restart")
    func embeddedDefault() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-embedded-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/serve.log"
        let state = dir + "/state"
        let binary = try GatehouseNodeProcess.executable()
        let pid = try ChildProcess.spawn(
            binary, ["serve"],
            environment: ["GATEHOUSE_LISTEN": "127.0.0.1:0", "GATEHOUSE_STATE_DIR": state, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
            output: .file(log)
        )
        // Whatever the checks do, the node then gets SIGTERM (it stops its redis-server) and
        // SIGKILL if it has not exited 10 s later.
        try await scoped(pid, cleanup: { _ = await ChildProcess.terminate($0, grace: .seconds(10)) }) { _ in
            try await self.check(binary: binary, log: log, state: state)
        }
    }

    func check(binary: String, log: String, state: String) async throws {
        var base: String?
        var key: String?
        // Readiness poll of the log (no event to wait on): at most 300 checks 100 ms apart and
        // 30 s.
        let printed = ContinuousClock.now + .seconds(30)
        for _ in 0..<300 where (base == nil || key == nil) && ContinuousClock.now < printed {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let r = text.range(of: "Gatehouse listening on ") { base = String(text[r.upperBound...].prefix { !$0.isNewline }) }
            if let r = text.range(of: "development API key (all scopes), saved in "), let colon = text[r.upperBound...].range(of: ": ") {
                key = String(text[colon.upperBound...].prefix { !$0.isNewline })
            }
            if base == nil || key == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let url = try #require(base, "no URL printed:\n\(String(describing: try? String(contentsOfFile: log, encoding: .utf8)))")
        let secret = try #require(key)
        for file in ["keyring.json", "data-key.json", "dev-api-key"] {
            let mode = try FileManager.default.attributesOfItem(atPath: state + "/" + file)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600, "\(file)")
        }
        #expect(FileManager.default.fileExists(atPath: state + "/redis/appendonlydir") || FileManager.default.fileExists(atPath: state + "/redis/appendonly.aof"))
        var ready = false
        // Readiness poll of /readyz: at most 100 checks 100 ms apart and 15 s.
        let readyBy = ContinuousClock.now + .seconds(15)
        for _ in 0..<100 where !ready && ContinuousClock.now < readyBy {
            ready = (try? await TestHTTP.request(URL(string: url + "/readyz")!))?.0 == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        let auth = ["Authorization": "Bearer \(secret)", "Content-Type": "application/json"]
        let start = try await TestHTTP.request(URL(string: url + "/v1/login/start")!, method: "POST", headers: auth, body: Data("{\"user\":\"first@example.org\"}".utf8))
        #expect(start.0 == 200)
        let token = (((try JSONSerialization.jsonObject(with: start.2) as? [String: Any])?["session"] as? [String: Any])?["token"] as? String) ?? ""
        let oldKid = try #require(KeyringFile(json: Data(contentsOf: URL(fileURLWithPath: state + "/keyring.json"))).keys.first?.kid)
        #expect(try headerKid(token) == oldKid)

        // Rotate the keyring file; the node notices the change and signs with the new key, while
        // the old session keeps verifying (the old key is now verify-only).
        let rotate = try await Program.run(binary, ["keys", "rotate", "--file", state + "/keyring.json"])
        #expect(rotate.status == 0, "\(rotate.stdout) \(rotate.stderr)")
        var newKid = oldKid
        // A poll of the node's answers until it signs with the new key (its reload is not
        // observable from here): at most 50 checks 200 ms apart and 15 s.
        let rotatedBy = ContinuousClock.now + .seconds(15)
        for _ in 0..<50 where newKid == oldKid && ContinuousClock.now < rotatedBy {
            try await Task.sleep(for: .milliseconds(200))
            let again = try await TestHTTP.request(URL(string: url + "/v1/login/start")!, method: "POST", headers: auth, body: Data("{\"user\":\"first@example.org\"}".utf8))
            let t = (((try JSONSerialization.jsonObject(with: again.2) as? [String: Any])?["session"] as? [String: Any])?["token"] as? String) ?? ""
            newKid = try headerKid(t)
        }
        #expect(newKid != oldKid, "the node did not pick up the rotated keyring")
        let verify = try await TestHTTP.request(URL(string: url + "/v1/auth")!, headers: ["Authorization": "Bearer \(secret)", "Gatehouse-Session": token])
        #expect(verify.0 == 204)
        // The printed development key is the only secret in the log; tokens never are.
        #expect(!(try String(contentsOfFile: log, encoding: .utf8)).contains(token))
    }

    func headerKid(_ token: String) throws -> String {
        let header = try #require(Base64URL.decode(token.split(separator: ".").first ?? ""))
        return ((try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])?["kid"] as? String) ?? ""
    }
}
