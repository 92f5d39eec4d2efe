import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseRedis
import GatehouseTesting
import Testing

/// A test deployment: one real redis-server and `nodeCount` real `gatehouse serve` processes
/// sharing its keys, plus helpers to call the API the way a front end would.
final class Deployment: @unchecked Sendable {
    // @unchecked: set up once in `start`, then only read; nodes are thread-safe themselves.
    let redis: RedisServerProcess
    let nodes: [GatehouseNodeProcess]
    let directory: String
    let client: RedisClient

    static let keys = GatehouseNodeProcess.apiKeys

    private init(redis: RedisServerProcess, nodes: [GatehouseNodeProcess], directory: String, client: RedisClient) {
        self.redis = redis
        self.nodes = nodes
        self.directory = directory
        self.client = client
    }

    /// Starts Redis (AOF on) and the nodes; always pair with `shutdown()` (use `with`).
    static func start(nodes nodeCount: Int = 1, environment: [String: String] = [:]) async throws -> Deployment {
        let redis = try await RedisServerProcess.start(.init(appendOnly: true))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-svc-\(UUID().uuidString)").path
        var nodes: [GatehouseNodeProcess] = []
        do {
            for _ in 0..<nodeCount {
                nodes.append(try await GatehouseNodeProcess.start(redisURL: redis.url().description, directory: directory, extraEnvironment: environment))
            }
        } catch {
            nodes.forEach { $0.kill() }
            await redis.cleanup()
            throw error
        }
        let client = RedisClient(configuration: redis.configuration())
        return Deployment(redis: redis, nodes: nodes, directory: directory, client: client)
    }

    static func with<T>(nodes: Int = 1, environment: [String: String] = [:], _ body: (Deployment) async throws -> T) async throws -> T {
        try await scoped(try await start(nodes: nodes, environment: environment), cleanup: { await $0.shutdown() }, body)
    }

    func shutdown() async {
        nodes.forEach { $0.stop() }
        await client.shutdown()
        await redis.cleanup()
        try? FileManager.default.removeItem(atPath: directory)
    }

    var node: GatehouseNodeProcess { nodes[0] }

    // MARK: Calls

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
        var code: String? { json["code"] as? String }
        subscript(_ key: String) -> Any? { json[key] }
    }

    @discardableResult
    func call(
        _ method: String, _ path: String, key: String? = "frontend", json: Any? = nil, raw: Data? = nil,
        headers: [String: String] = [:], node index: Int = 0
    ) async throws -> Reply {
        var all = headers
        if let key, let secret = Self.keys[key] { all["Authorization"] = "Bearer \(secret)" }
        var body = raw
        if let json {
            body = try JSONSerialization.data(withJSONObject: json)
            all["Content-Type"] = "application/json"
        }
        let url = URL(string: nodes[index].baseURL.absoluteString + path)!
        let (status, fields, data) = try await TestHTTP.request(url, method: method, headers: all, body: body)
        return Reply(status: status, headers: fields, body: data)
    }

    /// Imports users through the admin endpoint.
    func importUsers(_ lines: [[String: Any]]) async throws -> Reply {
        let text = try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }.joined(separator: "\n")
        return try await call("POST", "/v1/users/import", key: "admin", raw: Data(text.utf8))
    }

    /// The code an authenticator shows now (Redis's clock, as the node uses), `offset` steps away.
    func code(secret: String, offset: Int = 0) async throws -> String {
        let now = try await client.time() / 1_000_000
        let totp = try TOTP(secret: Base32.decode(secret)!)
        return totp.code(at: now + Int64(offset) * 30)!
    }

    /// Waits until the current TOTP step has at least `margin` seconds left, so a test's codes
    /// do not straddle a step boundary.
    func awaitFreshStep(margin: Int64 = 8) async throws {
        for _ in 0..<40 {
            let now = try await client.time() / 1_000_000
            if 30 - now % 30 >= margin { return }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// A user enrolled with TOTP through import; returns (user, base32 secret).
    func enrolledUser(_ name: String = "user-\(UUID().uuidString.prefix(8))@example.org") async throws -> (String, String) {
        let secret = Base32.encode(try SystemRandom().bytes(20))
        let reply = try await importUsers([["user": name, "totp_secret": secret, "recovery_email": "backup@example.net", "verified": true]])
        #expect(reply.status == 200 && reply["imported"] as? Int == 1, "import failed: \(reply.json)")
        return (name.lowercased(), secret)
    }

    /// login/start → challenge token (expects second_step).
    func challenge(for user: String, clientIP: String? = nil, node index: Int = 0) async throws -> String {
        var body: [String: Any] = ["user": user]
        if let clientIP { body["client_ip"] = clientIP }
        let reply = try await call("POST", "/v1/login/start", json: body, node: index)
        #expect(reply["status"] as? String == "second_step", "login/start: \(reply.json)")
        return ((reply["challenge"] as? [String: Any])?["token"] as? String) ?? ""
    }

    /// A full TOTP login; returns the session token.
    /// `offset` 1 uses the next step's code (still inside the ±1 window) when the current step was
    /// just spent, e.g. by an enrolment confirm.
    func signIn(_ user: String, secret: String, offset: Int = 0, node index: Int = 0) async throws -> String {
        try await awaitFreshStep()
        let challenge = try await challenge(for: user, node: index)
        let reply = try await call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": try await code(secret: secret, offset: offset)], node: index)
        #expect(reply.status == 200, "login/finish: \(reply.json)")
        return ((reply["session"] as? [String: Any])?["token"] as? String) ?? ""
    }

    /// `GET /v1/auth` with a session token.
    func auth(_ token: String, node index: Int = 0) async throws -> Reply {
        try await call("GET", "/v1/auth", key: "verify", headers: ["Gatehouse-Session": token], node: index)
    }

    /// Polls `condition` every 50 ms for at most `limit`; returns how long it took, or nil.
    func within(_ limit: Duration, _ condition: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            if try await condition() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Asserts that no node's log contains any of `secrets` (tokens, codes, passwords, keys).
    func expectLogsClean(of secrets: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for node in nodes {
            let log = node.log
            for secret in secrets where secret.count >= 6 {
                #expect(!log.contains(secret), "a secret appeared in \(node.logPath)", sourceLocation: sourceLocation)
            }
        }
    }
}
