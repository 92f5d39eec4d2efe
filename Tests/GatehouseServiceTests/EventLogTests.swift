import Foundation
import GatehouseRedis
import GatehouseTesting
import Testing

/// A user's security events live in a capped list, newest first, written by two writers: the
/// code-check script (sign-in attempts) and the service (everything else).
@Suite("the security event log", .timeLimit(.minutes(3)))
struct EventLogTests {
    @Test("both writers store what the API gives back, newest first, and keep the log at 500")
    func cappedLog() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let key = "gh:{\(user)}:eventlog"
            // An old history: 499 events already in the log (the oldest last).
            let filler = (0..<499).map { i in #"{"type":"filler","at":\#(1_000 + i)}"# }
            for chunk in stride(from: 0, to: filler.count, by: 100) {
                _ = try await d.client.send(["LPUSH", key] + Array(filler[chunk..<min(chunk + 100, filler.count)]))
            }
            #expect(try await d.client.send(["LLEN", key]).integer == 499)

            // The script's writes: a wrong code (with the address and the method), then the right one.
            try await d.freshStep()
            let wrong = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "totp", "code": "000000", "client_ip": "192.0.2.7",
            ])
            #expect(wrong.status == 401)
            let right = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret),
            ])
            #expect(right.status == 200, "\(right.json)")
            let session = ((right["session"] as? [String: Any])?["token"] as? String) ?? ""
            // 501 written: the script trimmed the oldest filler.
            #expect(try await d.client.send(["LLEN", key]).integer == 500)
            #expect(try await d.client.send(["LINDEX", key, "-1"]).string == #"{"type":"filler","at":1001}"#)
            // The service's writes: a password change records two events (the other sessions revoked, then the change).
            #expect(try await d.call("POST", "/v1/me/password-changed", headers: ["Gatehouse-Session": session]).status == 204)

            #expect(try await d.client.send(["LLEN", key]).integer == 500)
            let events = try await d.call("GET", "/v1/users/\(user)/events", key: "admin")["events"] as? [[String: Any]] ?? []
            #expect(events.count == 100)
            let types = events.prefix(5).compactMap { $0["type"] as? String }
            #expect(types == ["password_changed", "sessions_revoked", "second_step_succeeded", "second_step_failed", "filler"], "\(types)")
            let failed = events[3]
            #expect(failed["client_ip"] as? String == "192.0.2.7", "\(failed)")
            #expect(failed["detail"] as? String == "totp", "\(failed)")
            let at = (failed["at"] as? String).flatMap { try? Date($0, strategy: .iso8601) }
            #expect(at.map { abs(Int64($0.timeIntervalSince1970) - Int64(Date().timeIntervalSince1970)) < 60 } == true, "\(failed)")
            // 503 written, trimmed from the old end: the three oldest fillers are gone.
            let last = try await d.client.send(["LINDEX", key, "-1"]).string ?? ""
            #expect(last == #"{"type":"filler","at":1003}"#, "\(last)")
        }
    }
}
