import Foundation
import GatehouseCore
import GatehouseRedis
import GatehouseTesting
import Testing

/// `POST /v1/login/finish` is answered on the event loop when the node has the user's secret
/// cached (`login/start` puts it there; one script call, no task), and by the async sign-in in a
/// task otherwise (a cache miss, a remembered device, another method, a credential changed since
/// it was cached). A client must not be able to tell which.
@Suite("login/finish: the event-loop sign-in and the task's", .timeLimit(.minutes(3)))
struct LoginFinishPathTests {
    @Test("every answer is the same with the secret cached (event loop) and with no cache (task)")
    func sameAnswers() async throws {
        let cached = try await Deployment.with { d in try await Self.transcript(d) }
        let uncached = try await Deployment.with(environment: ["GATEHOUSE_TOTP_CACHE_ENTRIES": "0"]) { d in try await Self.transcript(d) }
        #expect(cached.count == 14 && uncached.count == 14)
        for (a, b) in zip(cached, uncached) { #expect(a == b) }
        // What the transcript holds is right in itself, not only alike.
        let byLabel = Dictionary(cached.map { ($0.split(separator: ":")[0], $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byLabel["wrong"]?.hasPrefix("wrong: 401 invalid_code 4 ") == true, "\(cached)")
        #expect(byLabel["malformed"]?.hasPrefix("malformed: 400 invalid_request ") == true, "\(cached)")
        #expect(byLabel["forged challenge"]?.hasPrefix("forged challenge: 401 challenge_expired ") == true, "\(cached)")
        #expect(byLabel["right"]?.hasPrefix("right: 200 - - - - application/json [\"session\", \"status\"] amr [\"pwd\", \"otp\"]") == true, "\(cached)")
        #expect(byLabel["spent challenge"]?.hasPrefix("spent challenge: 401 ") == true, "\(cached)")
        #expect(byLabel["replay"]?.hasPrefix("replay: 401 invalid_code ") == true, "\(cached)")
        #expect(byLabel["remember"]?.hasPrefix("remember: 200 - - - - application/json [\"remember\", \"session\", \"status\"]") == true, "\(cached)")
        #expect(cached.contains { $0.hasPrefix("throttle") && $0.contains(": 429 rate_limited - ") && $0.contains(" retry-after ") }, "\(cached)")
    }

    @Test("a credential changed behind the cache's back: the event loop's check is stale, the task's reload signs in")
    func staleCache() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let code = try await d.code(secret: secret)
            let challenge = try await d.challenge(for: user)  // login/start caches the secret
            // A new credential version with the same secret, written without the change feed
            // that would drop the cached entry: the cached version no longer matches.
            #expect(try await d.client.send(["HINCRBY", "gh:{\(user)}:user", "cred_version", 1]).integer != nil)
            let finish = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code])
            #expect(finish.status == 200 && finish["status"] as? String == "authenticated", "\(finish.json)")
            // The code is spent once only, whichever path accepted it.
            let again = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "totp", "code": code])
            #expect(again.status == 401 && again.code == "invalid_code")
            d.expectLogsClean(of: [code, secret, challenge])
        }
    }

    @Test("on the event loop a code matching no step is sent to the script without a session; a right one with its session")
    func wrongCodePreparesNoSession() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let code = try await d.code(secret: secret), wrongCode = try await d.wrongCode(secret: secret)
            // Redis's slow log, told to keep every command, shows the script's arguments as sent.
            _ = try await d.client.send(["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            _ = try await d.client.send(["CONFIG", "SET", "slowlog-max-len", "1000"])

            /// ARGV[13] (session id) and ARGV[14] (its record) of each code check the nodes sent since `SLOWLOG RESET`.
            func sessionArguments() async throws -> [(String, String)] {
                let entries = try await d.client.send(["SLOWLOG", "GET", "-1"]).array ?? []
                return entries.compactMap { entry -> (String, String)? in
                    let parts = entry.array ?? []
                    guard parts.count >= 4, let args = parts[3].array?.map({ $0.string ?? "" }),
                          args.first?.uppercased() == "EVALSHA", args.count > 2, let keys = Int(args[2]), args.count > 3 + keys + 13
                    else { return nil }
                    return (args[3 + keys + 12], args[3 + keys + 13])
                }
            }

            let challenge = try await d.challenge(for: user)  // login/start caches the secret
            _ = try await d.client.send(["SLOWLOG", "RESET"])
            let wrong = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": wrongCode])
            #expect(wrong.status == 401 && wrong.code == "invalid_code", "\(wrong.json)")
            let refused = try await sessionArguments()
            #expect(refused.count == 1 && refused.first?.0 == "" && refused.first?.1 == "", "\(refused)")

            _ = try await d.client.send(["SLOWLOG", "RESET"])
            let right = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code])
            #expect(right.status == 200 && right["status"] as? String == "authenticated", "\(right.json)")
            let accepted = try await sessionArguments()
            #expect(accepted.count == 1 && accepted.first?.0.isEmpty == false && accepted.first?.1.hasPrefix("{\"amr\":") == true, "\(accepted)")
            // The session the script recorded is the one the token names.
            let token = ((right["session"] as? [String: Any])?["token"] as? String) ?? ""
            let verify = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
            #expect(verify.status == 200 && verify["session_id"] as? String == accepted.first?.0, "\(verify.json)")
            d.expectLogsClean(of: [code, secret, challenge])
        }
    }

    /// One scripted sign-in history, each answer as a line: status, code, attempts remaining,
    /// detail, whether Retry-After is there, content type, the body's member names (and the session's `amr`).
    static func transcript(_ d: Deployment) async throws -> [String] {
        let (user, secret) = try await d.enrolledUser()
        _ = try await d.signIn(user, secret: secret)  // cached from here on, where a cache is kept
        try await d.freshStep()
        let code = try await d.code(secret: secret), wrongCode = try await d.wrongCode(secret: secret)

        var lines: [String] = []
        func finish(_ label: String, _ challenge: String, _ code: String, remember: Bool = false) async throws {
            var body: [String: Any] = ["challenge": challenge, "method": "totp", "code": code, "client_ip": "192.0.2.7"]
            if remember { body["remember"] = true }
            let reply = try await d.call("POST", "/v1/login/finish", json: body)
            var line = "\(label): \(reply.status) \(reply.code ?? "-") \(reply["attempts_remaining"].map { "\($0)" } ?? "-")"
            // Retry-After counts down with the clock: whether it is there, not its value.
            line += " \(reply["detail"].map { "\($0)" } ?? "-") \(reply.headers["retry-after"] == nil ? "-" : "retry-after")"
            line += " \(reply.headers["content-type"] ?? "-") \(reply.json.keys.sorted())"
            if let token = (reply["session"] as? [String: Any])?["token"] as? String {
                let verify = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
                line += " amr \(verify["amr"] as? [String] ?? [])"
            }
            lines.append(line)
        }
        let first = try await d.challenge(for: user)
        try await finish("wrong", first, wrongCode)
        try await finish("malformed", first, "12ab56")
        try await finish("forged challenge", String(first.dropLast(4)) + "AAAA", code)
        try await finish("right", first, code)
        try await finish("spent challenge", first, try await d.code(secret: secret, offset: 1))
        try await finish("replay", try await d.challenge(for: user), code)
        try await finish("remember", try await d.challenge(for: user), try await d.code(secret: secret, offset: 1), remember: true)
        let throttled = try await d.challenge(for: user)
        for attempt in 1...7 { try await finish("throttle \(attempt)", throttled, wrongCode) }
        d.expectLogsClean(of: [code, secret, first])
        return lines
    }
}
