import Foundation
import GatehouseCore
import GatehouseRedis
import GatehouseTesting
import Testing

/// Races and multi-node behaviour: the code check's atomicity, revocation across nodes, policy
/// changes reaching every node, and Redis going away.
@Suite("Races, nodes and faults", .timeLimit(.minutes(5)))
struct RaceAndClusterTests {
    @Test("GATEHOUSE_REDIS_CONNECTIONS: a node opens that many command connections (default 1); out of range refuses to start")
    func redisConnections() async throws {
        func gatehouseConnections(_ d: Deployment) async throws -> Int {
            let list = try await d.client.send(["CLIENT", "LIST"]).string ?? ""
            return list.split(separator: "\n").filter { $0.contains(" name=gatehouse ") }.count
        }
        // The revocation feed's connection comes on top of the command connections; the event
        // loops' own connections (made on a loop's first sign-in) are turned off to count the pool.
        let byDefault = try await Deployment.with(environment: ["GATEHOUSE_REDIS_LOOP_CONNECTIONS": "false"]) { d in
            try await gatehouseConnections(d)
        }
        let three = try await Deployment.with(environment: ["GATEHOUSE_REDIS_CONNECTIONS": "3", "GATEHOUSE_REDIS_LOOP_CONNECTIONS": "false"]) { d in
            let (user, secret) = try await d.enrolledUser()
            _ = try await d.signIn(user, secret: secret)  // works over three connections
            return try await gatehouseConnections(d)
        }
        #expect(byDefault >= 2 && three - byDefault == 2, "default \(byDefault), with 3: \(three)")
        do {
            try await Deployment.with(environment: ["GATEHOUSE_REDIS_CONNECTIONS": "0"]) { _ in }
            Issue.record("a node started with GATEHOUSE_REDIS_CONNECTIONS=0")
        } catch {
            #expect("\(error)".contains("GATEHOUSE_REDIS_CONNECTIONS must be 1 to 16"), "\(error)")
        }
    }

    @Test("GATEHOUSE_REDIS_LOOP_CONNECTIONS: sign-ins answered on an event loop go out on that loop's own Redis connection; false keeps them on the pool; other values refuse to start")
    func redisLoopConnections() async throws {
        func clientID(_ line: Substring) -> Int {
            Int(line.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3) ?? "") ?? 0
        }
        /// Signs in until a gatehouse connection beyond the pool's and the feed's has run the code
        /// check (at most 20 sign-ins, 100 ms apart); returns the gatehouse connections then.
        func signInsUntilALoopConnectionChecks(_ d: Deployment) async throws -> (connections: Int, loopChecked: Bool) {
            let (user, secret) = try await d.enrolledUser()
            var lines: [Substring] = []
            for _ in 0..<20 {
                _ = try await d.signIn(user, secret: secret)  // a fresh step each time
                let list = try await d.client.send(["CLIENT", "LIST"]).string ?? ""
                lines = list.split(separator: "\n").filter { $0.contains(" name=gatehouse ") }
                // The pool (1) and the revocation feed (1) connect at start, before any sign-in;
                // a later connection (a higher id) that ran EVALSHA is an event loop's.
                let byAge = lines.sorted { clientID($0) < clientID($1) }
                if byAge.dropFirst(2).contains(where: { $0.contains(" cmd=evalsha ") }) { return (lines.count, true) }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (lines.count, false)
        }
        let on = try await Deployment.with { d in try await signInsUntilALoopConnectionChecks(d) }
        #expect(on.loopChecked && on.connections >= 3, "\(on)")
        let off = try await Deployment.with(environment: ["GATEHOUSE_REDIS_LOOP_CONNECTIONS": "false"]) { d in
            try await signInsUntilALoopConnectionChecks(d)
        }
        #expect(!off.loopChecked && off.connections == 2, "\(off)")
        do {
            try await Deployment.with(environment: ["GATEHOUSE_REDIS_LOOP_CONNECTIONS": "yes"]) { _ in }
            Issue.record("a node started with GATEHOUSE_REDIS_LOOP_CONNECTIONS=yes")
        } catch {
            #expect("\(error)".contains("GATEHOUSE_REDIS_LOOP_CONNECTIONS must be true or false"), "\(error)")
        }
    }

    @Test("1,000 concurrent wrong guesses against one user, across two nodes: at most the allowed number are evaluated")
    func wrongGuessRace() async throws {
        try await Deployment.with(nodes: 2) { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let challenge = try await d.challenge(for: user)
            var window = Set<String>()
            for o in -1...1 { window.insert(try await d.code(secret: secret, offset: o)) }
            let wrongCodes = (0..<1000).map { i in String(format: "%06d", (i * 7919 + 13) % 1_000_000) }.filter { !window.contains($0) }
            let start = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for (i, code) in wrongCodes.enumerated() {
                    group.addTask {
                        let r = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code], node: i % 2)
                        return (r.status, r.code)
                    }
                }
                var all: [(Int, String?)] = []
                for try await s in group { all.append(s) }
                return all
            }
            let elapsed = ContinuousClock.now - start
            let evaluated = statuses.filter { $0.0 == 401 && $0.1 == "invalid_code" }.count
            let throttled = statuses.filter { $0.0 == 429 }.count
            #expect(evaluated + throttled == wrongCodes.count, "unexpected answers: \(Set(statuses.map { "\($0.0) \($0.1 ?? "")" }))")
            // 5 free failures, then one more per back-off wait (1 s, 2 s, 4 s …) that expires
            // during the race; elapsed seconds bound how many waits could have expired.
            let seconds = Int((elapsed.components.seconds)) + 1
            let waitsExpired = Int(log2(Double(seconds))) + 2
            #expect(evaluated <= 5 + waitsExpired, "evaluated \(evaluated) in \(elapsed)")
            #expect(evaluated >= 5)
            // The admin view shows the throttle, and unlock clears it.
            let status = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect(((status["throttle"] as? [String: Any])?["failures"] as? Int ?? 0) == evaluated)
            #expect(try await d.call("POST", "/v1/users/\(user)/unlock", key: "admin").status == 204)
            let after = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect((after["throttle"] as? [String: Any])?["failures"] as? Int == 0)
        }
    }

    @Test("200 concurrent submissions of one valid code across two nodes succeed exactly once")
    func validCodeRace() async throws {
        try await Deployment.with(nodes: 2) { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            // Each submission on its own challenge, so only the replay marker can stop them.
            var challenges: [String] = []
            for i in 0..<200 { challenges.append(try await d.challenge(for: user, node: i % 2)) }
            let code = try await d.code(secret: secret)
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for (i, challenge) in challenges.enumerated() {
                    group.addTask {
                        try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code], node: i % 2).status
                    }
                }
                var all: [Int] = []
                for try await s in group { all.append(s) }
                return all
            }
            #expect(results.filter { $0 == 200 }.count == 1)
            #expect(results.filter { $0 == 200 || $0 == 401 || $0 == 429 }.count == 200, "\(Set(results))")
        }
    }

    @Test("a session from one node verifies on the other; a revocation on one is refused by both within 1 s")
    func revocationAcrossNodes() async throws {
        try await Deployment.with(nodes: 2) { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret, node: 0)
            #expect(try await d.auth(token, node: 1).status == 204)
            #expect(try await d.call("POST", "/v1/sessions/revoke", json: ["token": token], node: 0).status == 204)
            let took = try await d.within(.seconds(1)) { try await d.auth(token, node: 1).status == 401 }
            #expect(took != nil, "node 1 still accepted a session revoked on node 0 after 1 s")
            #expect(try await d.auth(token, node: 0).status == 401)

            // revoke-all (security epoch) through the admin API.
            let second = try await d.signIn(user, secret: secret, offset: 1, node: 1)
            #expect(try await d.auth(second, node: 0).status == 204)
            #expect(try await d.call("POST", "/v1/users/\(user)/sessions/revoke-all", key: "admin", node: 1).status == 204)
            #expect(try await d.within(.seconds(1)) { try await d.auth(second, node: 0).status == 401 } != nil)
        }
    }

    @Test("switching a domain to enforced kills its password-only sessions on every node within 1 s")
    func enforcedPolicy() async throws {
        try await Deployment.with(nodes: 2) { d in
            let domain = "enforce-\(UUID().uuidString.prefix(6).lowercased()).example"
            let user = "pat@\(domain)"
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.auth(token, node: 1).status == 204)
            let put = try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "enforced", "session_hours": 4])
            #expect(put.status == 200)
            #expect(put["mode"] as? String == "enforced")
            #expect(put["methods"] as? [String] == ["totp", "email"])
            for node in 0..<2 {
                #expect(try await d.within(.seconds(1)) { try await d.auth(token, node: node).status == 401 } != nil, "node \(node)")
            }
            #expect(try await d.call("GET", "/v1/domains/\(domain)/policy", key: "admin", node: 1)["session_hours"] as? Int == 4)

            // A login now requires enrolment; the challenge stands in for a session.
            #expect(try await d.importUsers([["user": user, "recovery_email": "pat.backup@example.net", "verified": true]]).status == 200)
            let login = try await d.call("POST", "/v1/login/start", json: ["user": user], node: 1)
            #expect(login["status"] as? String == "enrollment_required")
            let challenge = ((login["challenge"] as? [String: Any])?["token"] as? String) ?? ""
            let pending = try await d.call("POST", "/v1/me/totp", headers: ["Gatehouse-Challenge": challenge])
            #expect(pending.status == 200)
            try await d.freshStep()
            let confirm = try await d.call(
                "POST", "/v1/me/totp/confirm", json: ["code": try await d.code(secret: pending["secret"] as? String ?? "")],
                headers: ["Gatehouse-Challenge": challenge], node: 1
            )
            #expect(confirm.status == 200, "\(confirm.json)")
            let session = ((confirm["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.auth(session, node: 0).status == 204)
            let verify = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": session])
            #expect(verify["amr"] as? [String] == ["pwd", "otp"])
            // Self-service under a disabled policy answers two_step_disabled.
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "disabled"]).status == 200)
            try await Task.sleep(for: .milliseconds(300))
            let disabled = try await d.call("POST", "/v1/me/totp", headers: ["Gatehouse-Session": session], node: 1)
            #expect(disabled.status == 403 && disabled.code == "two_step_disabled")
        }
    }

    @Test("Redis paused: sessions keep verifying, code checks fail closed with 503, all recovers")
    func redisPaused() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let challenge = try await d.challenge(for: user)
            try d.redis.pause()
            do {
                #expect(try await d.auth(token).status == 204)
                let started = ContinuousClock.now
                let finish = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": "123456"])
                #expect(finish.status == 503)
                #expect(finish.code == "unavailable")
                #expect(finish.headers["retry-after"] != nil)
                #expect(ContinuousClock.now - started < .seconds(10), "a code check hung while Redis was paused")
                #expect(try await d.call("GET", "/readyz", key: nil).status == 503)
                #expect(try await d.auth(token).status == 204)
            }
            try d.redis.resume()
            #expect(try await d.within(.seconds(10)) { try await d.call("GET", "/readyz", key: nil).status == 200 } != nil)
            let code = try await d.code(secret: secret, offset: 1)
            #expect(try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code]).status == 200)
        }
    }

    @Test("with the revocation feed down past the grace, /v1/auth answers 503")
    func graceExpires() async throws {
        try await Deployment.with(environment: ["GATEHOUSE_REVOCATION_GRACE_SECONDS": "2"]) { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            try d.redis.pause()
            #expect(try await d.auth(token).status == 204)
            let went503 = try await d.within(.seconds(8)) { try await d.auth(token).status == 503 }
            try d.redis.resume()
            #expect(went503 != nil)
            #expect(try await d.within(.seconds(10)) { try await d.auth(token).status == 204 } != nil)
        }
    }
}
