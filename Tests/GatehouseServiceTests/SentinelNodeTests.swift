import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseRedis
import GatehouseSystem
import GatehouseTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real `gatehouse serve` node on `GATEHOUSE_REDIS_URL=redis-sentinel://…` (master, replica,
/// three sentinels), under `gatehouse load` while the master is SIGKILLed: the node must follow
/// the failover by itself.
@Suite("Sentinel node", .serialized)
struct SentinelNodeTests {
    static let keys = GatehouseNodeProcess.apiKeys

    @Test("a node follows a Sentinel failover under load", .timeLimit(.minutes(4)))
    func nodeFollowsFailoverUnderLoad() async throws {
        try await RedisSentinelDeployment.withDeployment { deployment in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-sentinel-node-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let node = try await GatehouseNodeProcess.start(redisURL: deployment.urlString(), directory: directory)
            let redis = RedisClient(configuration: deployment.configuration())
            do {
                try await self.run(deployment, node, redis, directory: directory)
                await redis.shutdown()
                await node.stop()
            } catch {
                await redis.shutdown()
                await node.stop()
                throw error
            }
        }
    }

    private func run(_ deployment: RedisSentinelDeployment, _ node: GatehouseNodeProcess, _ redis: RedisClient, directory: String) async throws {
        // A user enrolled with TOTP (import), who signs in before the failover.
        let user = "sentinel-\(UUID().uuidString.prefix(8).lowercased())@example.org"
        let secret = Base32.encode(try SystemRandom().bytes(20))
        let line = try JSONSerialization.data(withJSONObject: ["user": user, "totp_secret": secret, "recovery_email": "backup@example.net", "verified": true])
        let imported = try await self.call(node, "POST", "/v1/users/import", key: "admin", body: line)
        #expect(imported.status == 200, "import: \(imported.text)")
        #expect(try await self.signIn(node, redis, user: user, secret: secret) == 200)

        // `gatehouse load` for 15 s; the master dies a few seconds into the run. 503 answers to
        // code checks during the outage are "unavailable" errors, not refused valid codes.
        let started = ContinuousClock.now
        let report = try await loadReport(urls: [node.baseURL], users: 40, seconds: 15, tolerateUnavailable: true, directory: directory) {
            // Seeding 40 users takes well under a second here; kill 4 s after the start.
            try await Task.sleep(for: .seconds(4))
            let killed = try await deployment.killMaster()
            let killedAt = ContinuousClock.now
            let newMaster = try await deployment.waitForNewMaster(other: killed.port, timeout: .seconds(30))
            print("Sentinel node: master \(killed.port) killed \(killedAt - started) into the load; sentinels promoted \(newMaster.port) after \(ContinuousClock.now - killedAt)")
        }
        let failures = report["failures"] as? [String: Int] ?? [:]
        print("Sentinel node under load: \(loadSummary(report)), passed \(report["passed"] ?? "?")")
        // What must never happen, outage or not.
        #expect(failures["replay_accepted", default: 0] == 0, "a replayed code was accepted: \(report)")
        #expect(failures["wrong_accepted", default: 0] == 0, "a wrong code was accepted: \(report)")
        #expect(failures["session_refused", default: 0] == 0, "a live session was refused: \(report)")
        // No valid code refused (503s of the outage are "unavailable" errors with
        // --tolerate-unavailable), and nothing else either.
        #expect(failures["valid_refused", default: 0] == 0, "a valid code was refused: \(report)")
        #expect(report["correctness_failures"] as? Int == 0, "\(report)")

        // Afterwards the node answers code checks on the new master, and the user is still there.
        let signedIn = try await self.eventuallyStatus(200, within: .seconds(30)) {
            try await self.signIn(node, redis, user: user, secret: secret)
        }
        #expect(signedIn, "no TOTP sign-in after the failover; node log: \(node.log.suffix(2000))")
        let status2 = try await self.call(node, "GET", "/v1/users/\(user)", key: "admin")
        #expect(status2.status == 200 && status2.text.contains("totp"), "enrolment after failover: \(status2.status) \(status2.text)")
        #expect(node.log.contains("Redis master changed"), "no master-change line in the node log")
        #expect(!node.log.contains(secret))
    }

    // MARK: Helpers

    struct Reply {
        var status: Int
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    }

    private func call(_ node: GatehouseNodeProcess, _ method: String, _ path: String, key: String, body: Data? = nil) async throws -> Reply {
        var headers = ["Authorization": "Bearer \(Self.keys[key]!)"]
        if body != nil { headers["Content-Type"] = "application/json" }
        let url = URL(string: node.baseURL.absoluteString + path)!
        let (status, _, data) = try await TestHTTP.request(url, method: method, headers: headers, body: body)
        return Reply(status: status, body: data)
    }

    /// login/start + login/finish with the current TOTP code by Redis's clock (waiting for a step
    /// with a few seconds left, bounded); returns finish's status (or start's, if no challenge).
    private func signIn(_ node: GatehouseNodeProcess, _ redis: RedisClient, user: String, secret: String) async throws -> Int {
        let totp = try TOTP(secret: Base32.decode(secret)!)
        var now = try await redis.time() / 1_000_000
        for _ in 0..<20 where 30 - now % 30 < 5 {
            try await Task.sleep(for: .milliseconds(500))
            now = try await redis.time() / 1_000_000
        }
        let start = try await self.call(node, "POST", "/v1/login/start", key: "frontend", body: try JSONSerialization.data(withJSONObject: ["user": user]))
        guard start.status == 200, let challenge = (start.json["challenge"] as? [String: Any])?["token"] as? String else { return start.status }
        // The next step's code is inside the ±1 window too, and never the one just used.
        let used = Self.usedSteps.withLock { $0 }
        var step = now / 30
        while used.contains(step) { step += 1 }
        Self.usedSteps.withLock { $0.insert(step) }
        let code = totp.code(at: step * 30)!
        let finish = try await self.call(
            node, "POST", "/v1/login/finish", key: "frontend",
            body: try JSONSerialization.data(withJSONObject: ["challenge": challenge, "method": "totp", "code": code])
        )
        return finish.status
    }

    /// Steps already used by this suite's sign-ins (a code is accepted once).
    private static let usedSteps = Mutex<Set<Int64>>([])

    private func eventuallyStatus(_ expected: Int, within limit: Duration, _ body: () async throws -> Int) async throws -> Bool {
        let start = ContinuousClock.now
        for _ in 0..<100 where ContinuousClock.now - start < limit {
            if (try? await body()) == expected { return true }
            try await Task.sleep(for: .milliseconds(500))
        }
        return false
    }
}
