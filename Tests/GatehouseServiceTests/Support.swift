import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseRedis
import GatehouseService
import GatehouseSystem
import GatehouseTesting
import Testing

/// A test deployment: one real redis-server (or a real Redis Cluster the caller started) and
/// `nodeCount` nodes sharing its keys, plus helpers
/// to call the API the way a front end would. Nodes run in this process (``InProcessNode``) and
/// share one ``ClockOffset``, so tests move time instead of waiting for it; `processes: true`
/// starts real `gatehouse serve` processes instead, for what only a process shows (signals).
final class Deployment: @unchecked Sendable {
    // @unchecked: set up once in `start`, then only read; nodes are thread-safe themselves.
    private let server: RedisServerProcess?
    /// The Redis Cluster the nodes use, when the deployment was started on one.
    let cluster: RedisClusterDeployment?
    let nodes: [any TestNode]
    let directory: String
    let client: RedisClient
    /// The nodes' clocks, moved by ``freshStep()`` (nil for process nodes, whose clocks are the wall clock).
    let clockOffset: ClockOffset?

    static let keys = GatehouseNodeProcess.apiKeys

    /// The redis-server of a single-server deployment.
    var redis: RedisServerProcess {
        guard let server else { preconditionFailure("this deployment runs on a Redis Cluster (see `cluster`)") }
        return server
    }

    private init(
        server: RedisServerProcess?, cluster: RedisClusterDeployment?, nodes: [any TestNode], directory: String, client: RedisClient,
        clockOffset: ClockOffset?
    ) {
        self.server = server
        self.cluster = cluster
        self.nodes = nodes
        self.directory = directory
        self.client = client
        self.clockOffset = clockOffset
    }

    /// Starts Redis (AOF on; or uses `cluster`, which the caller owns) and the nodes; always pair
    /// with `shutdown()` (use `with`).
    static func start(
        nodes nodeCount: Int = 1, environment: [String: String] = [:], processes: Bool = false, cluster: RedisClusterDeployment? = nil
    ) async throws -> Deployment {
        let server = cluster == nil ? try await RedisServerProcess.start(.init(appendOnly: true)) : nil
        let redisURL = cluster?.urlString ?? server!.url().description
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-svc-\(UUID().uuidString)").path
        let clockOffset: ClockOffset? = processes ? nil : ClockOffset()
        var nodes: [any TestNode] = []
        do {
            for _ in 0..<nodeCount {
                if let clockOffset {
                    nodes.append(try await InProcessNode.start(redisURL: redisURL, directory: directory, environment: environment, clockOffset: clockOffset))
                } else {
                    nodes.append(try await GatehouseNodeProcess.start(redisURL: redisURL, directory: directory, extraEnvironment: environment))
                }
            }
        } catch {
            for node in nodes { await node.shutdown() }
            await server?.cleanup()
            throw error
        }
        // Named apart from the nodes' connections, which tests count by name.
        var configuration = try server?.configuration() ?? RedisConfiguration(url: RedisURL(redisURL))
        configuration.clientName = "gatehouse-test"
        let client = RedisClient(configuration: configuration)
        return Deployment(server: server, cluster: cluster, nodes: nodes, directory: directory, client: client, clockOffset: clockOffset)
    }

    static func with<T>(
        nodes: Int = 1, environment: [String: String] = [:], processes: Bool = false, cluster: RedisClusterDeployment? = nil,
        _ body: (Deployment) async throws -> T
    ) async throws -> T {
        try await scoped(
            try await start(nodes: nodes, environment: environment, processes: processes, cluster: cluster), cleanup: { await $0.shutdown() }, body
        )
    }

    func shutdown() async {
        for node in nodes { await node.shutdown() }
        await client.shutdown()
        await server?.cleanup()
        try? FileManager.default.removeItem(atPath: directory)
    }

    var node: any TestNode { nodes[0] }

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

    /// The nodes' time for OTP steps: Redis's clock moved by the deployment's offset.
    func now() async throws -> Int64 {
        try await client.time() / 1_000_000 + (clockOffset?.seconds ?? 0)
    }

    /// The code an authenticator shows now (the nodes' clock), `offset` steps away.
    func code(secret: String, offset: Int = 0) async throws -> String {
        let totp = try TOTP(secret: Base32.decode(secret)!)
        return totp.code(at: try await now() + Int64(offset) * 30)!
    }

    /// A code that none of the steps within two of now shows (the nodes' window is ±1): a wrong code.
    func wrongCode(secret: String) async throws -> String {
        var window: Set<String> = []
        for offset in -2...2 { window.insert(try await code(secret: secret, offset: offset)) }
        var wrong = 123_456
        while window.contains(String(wrong)) { wrong += 1 }
        return String(wrong)
    }

    /// Moves the nodes' clock to one second into the next TOTP step: a step no code was spent
    /// on yet, with 29 s left, so a test's codes never straddle a step boundary and nothing
    /// waits for the wall clock.
    func freshStep() async throws {
        guard let clockOffset else {
            Issue.record("freshStep() moves the clock of in-process nodes; this deployment runs processes")
            return
        }
        let now = try await now()
        clockOffset.advance(by: 30 - now % 30 + 1)
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
        try await freshStep()
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

/// Runs `gatehouse load` against `urls` for `seconds` while `during` runs (a fault injected a few
/// seconds in), and returns its JSON report. Bounded: the load gets 120 s, then SIGKILL. With
/// `tolerateUnavailable`, 503 answers to code operations count as "unavailable" errors rather
/// than refused valid codes (an outage under test).
func loadReport(
    urls: [URL], users: Int, concurrency: Int = 8, seconds: Int, mix: String = "auth=40,valid=20,wrong=25,replay=15",
    tolerateUnavailable: Bool, directory: String, during: () async throws -> Void
) async throws -> [String: Any] {
    let keys = GatehouseNodeProcess.apiKeys
    var arguments = ["load"] + urls.flatMap { ["--url", $0.absoluteString] } + [
        "--users", String(users), "--concurrency", String(concurrency), "--duration", String(seconds), "--mix", mix, "--json", "--no-progress",
        "--admin-key", keys["admin"]!, "--frontend-key", keys["frontend"]!, "--verify-key", keys["verify"]!,
    ]
    if tolerateUnavailable { arguments.append("--tolerate-unavailable") }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let output = directory + "/load-\(UUID().uuidString).out"
    let pid = try ChildProcess.spawn(try GatehouseNodeProcess.executable(), arguments, output: .file(output))
    do {
        try await during()
    } catch {
        _ = await ChildProcess.kill(pid)
        throw error
    }
    let exited = await ChildProcess.waitForExit(pid, timeout: .seconds(120)) != nil
    if !exited { _ = await ChildProcess.kill(pid) }
    #expect(exited, "gatehouse load did not finish within 120 s")
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    let jsonLine = text.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? ""
    return try #require(
        (try? JSONSerialization.jsonObject(with: Data(jsonLine.utf8))) as? [String: Any], "no JSON report from gatehouse load: \(text.suffix(2000))"
    )
}

/// One line of a `gatehouse load` report for the test log: operations, failures, errors.
func loadSummary(_ report: [String: Any]) -> String {
    let failures = report["failures"] as? [String: Int] ?? [:]
    let errors = report["errors"] as? [String: Int] ?? [:]
    return "total \(report["total_ops"] ?? "?") ops, correctness failures \(report["correctness_failures"] ?? "?") \(failures.sorted { $0.key < $1.key }), errors \(errors.sorted { $0.key < $1.key }), transport errors \(report["transport_errors"] ?? "?")"
}
