import Foundation
import GatehouseCore
import GatehouseRedis
import GatehouseTesting
import Testing

/// The login flow, sessions and enrolment over HTTP against real nodes and a real Redis.
@Suite("Login, sessions and enrolment", .timeLimit(.minutes(3)))
struct LoginFlowTests {
    @Test("TOTP login: wrong code, right code, session checks, refresh, revoke")
    func totpLogin() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser("Jane.Doe@Example.org")
            #expect(user == "jane.doe@example.org")
            try await d.freshStep()
            let start = try await d.call("POST", "/v1/login/start", json: ["user": "JANE.DOE@example.org", "client_ip": "192.0.2.7"])
            #expect(start.status == 200)
            #expect(start["status"] as? String == "second_step")
            // An authenticator user with a verified recovery address may also get a code by mail.
            #expect(start["methods"] as? [String] == ["totp", "email"])
            let challenge = (start["challenge"] as? [String: Any])?["token"] as? String ?? ""

            let wrong = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": "000000"])
            let code = try await d.code(secret: secret)
            if code != "000000" {
                #expect(wrong.status == 401)
                #expect(wrong.code == "invalid_code")
                #expect(wrong["attempts_remaining"] as? Int == 4)
                #expect(wrong.headers["content-type"] == "application/problem+json")
            }
            let finish = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code, "client_ip": "192.0.2.7"])
            #expect(finish.status == 200)
            #expect(finish["status"] as? String == "authenticated")
            let session = finish["session"] as? [String: Any] ?? [:]
            let token = session["token"] as? String ?? ""
            #expect(token.split(separator: ".").count == 3)

            let auth = try await d.auth(token)
            #expect(auth.status == 204)
            #expect(auth.body.isEmpty)
            #expect(auth.headers["gatehouse-user"] == "jane.doe@example.org")
            #expect(auth.headers["gatehouse-session-id"] == session["id"] as? String)
            #expect(auth.headers["gatehouse-auth-time"] != nil)
            // The cookie works too.
            #expect(try await d.call("GET", "/v1/auth", key: "verify", headers: ["Cookie": "a=b; gatehouse_session=\(token)"]).status == 204)

            let verify = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
            #expect(verify.status == 200)
            #expect(verify["user"] as? String == "jane.doe@example.org")
            #expect(verify["amr"] as? [String] == ["pwd", "otp"])
            #expect((verify["expires_at"] as? String)?.hasSuffix("Z") == true)

            let refreshed = try await d.call("POST", "/v1/sessions/refresh", json: ["token": token])
            #expect(refreshed.status == 200)
            let fresh = (refreshed["session"] as? [String: Any])?["token"] as? String ?? ""
            #expect((refreshed["session"] as? [String: Any])?["id"] as? String == session["id"] as? String)
            #expect(try await d.auth(fresh).status == 204)

            // The challenge is spent: the same code or a new one on it is refused.
            let again = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": code])
            #expect(again.status == 401)

            #expect(try await d.call("POST", "/v1/sessions/revoke", json: ["token": token]).status == 204)
            #expect(try await d.auth(token).status == 401)
            // A revoked session gets the very answer of a forged one: nothing tells the states apart.
            let revoked = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
            let forged = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": String(token.dropLast(4)) + "AAAA"])
            #expect(revoked.status == 401 && forged.status == 401)
            #expect(revoked.code == forged.code && revoked["detail"] as? String == forged["detail"] as? String, "\(revoked.json) vs \(forged.json)")
            // Revoking the session id kills the refreshed token too (same sid).
            #expect(try await d.auth(fresh).status == 401)
            d.expectLogsClean(of: [token, fresh, challenge, secret, code] + Deployment.keys.values)
        }
    }

    @Test("a replayed code gets exactly the answer of a wrong code; older steps after newer ones too")
    func replay() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let code = try await d.code(secret: secret)
            let first = try await d.challenge(for: user)
            #expect(try await d.call("POST", "/v1/login/finish", json: ["challenge": first, "method": "totp", "code": code]).status == 200)
            let second = try await d.challenge(for: user)
            let replayed = try await d.call("POST", "/v1/login/finish", json: ["challenge": second, "method": "totp", "code": code])
            let third = try await d.challenge(for: user)
            var wrongCode = "123456"
            while Set([code, try await d.code(secret: secret, offset: -1), try await d.code(secret: secret, offset: 1)]).contains(wrongCode) { wrongCode = String(Int(wrongCode)! + 1) }
            let wrong = try await d.call("POST", "/v1/login/finish", json: ["challenge": third, "method": "totp", "code": wrongCode])
            #expect(replayed.status == 401 && wrong.status == 401)
            #expect(replayed.code == wrong.code)
            #expect(replayed["detail"] as? String == wrong["detail"] as? String)
            #expect(Set(replayed.json.keys) == Set(wrong.json.keys))
            // The previous step's code is within the window but older than the accepted step.
            let older = try await d.code(secret: secret, offset: -1)
            if older != code {
                let r = try await d.call("POST", "/v1/login/finish", json: ["challenge": third, "method": "totp", "code": older])
                #expect(r.status == 401 && r.code == "invalid_code")
            }
            // The next step's code is newer and still accepted.
            let newer = try await d.code(secret: secret, offset: 1)
            let n = try await d.call("POST", "/v1/login/finish", json: ["challenge": third, "method": "totp", "code": newer])
            #expect(n.status == 200)
            // The replay was logged as a security event (without the code).
            #expect(d.node.log.contains("second step replay refused"))
            d.expectLogsClean(of: [code, older, newer, secret])
        }
    }

    @Test("the last accepted step is a field of the user record; a step key of earlier releases still counts until then")
    func lastStepInUserRecord() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let step = try await d.now() / 30
            let record = "gh:{\(user)}:user", legacy = "gh:{\(user)}:totp:last"
            // A user who last signed in when the step had a key of its own: this step was spent.
            #expect(try await d.client.send(["HGET", record, "totp_last"]) == .null)
            _ = try await d.client.send(["SET", legacy, String(step), "EX", "86400"])
            let replayed = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret)])
            #expect(replayed.status == 401 && replayed.code == "invalid_code")
            // The next step's code is newer: accepted, and recorded in the user record only.
            let newer = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret, offset: 1)])
            #expect(newer.status == 200)
            #expect(try await d.client.send(["HGET", record, "totp_last"]).string == String(step + 1))
            #expect(try await d.client.send(["GET", legacy]).string == String(step))
            // From now on the field decides.
            _ = try await d.client.send(["DEL", legacy])
            let again = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret)])
            #expect(again.status == 401 && again.code == "invalid_code")
        }
    }

    @Test("an unknown or unenrolled user looks like any other at login/start")
    func unknownUsers() async throws {
        try await Deployment.with { d in
            let unknown = try await d.call("POST", "/v1/login/start", json: ["user": "nobody-\(UUID().uuidString.prefix(6))@example.org"])
            #expect(unknown.status == 200)
            #expect(unknown["status"] as? String == "authenticated")
            let amr = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": ((unknown["session"] as? [String: Any])?["token"] as? String) ?? ""])
            #expect(amr["amr"] as? [String] == ["pwd"])
        }
    }

    @Test("enrolment: pending secret, QR, confirm, backup codes and app password; recovery email required")
    func enrolment() async throws {
        try await Deployment.with { d in
            // Without a verified recovery address, confirming is refused with 409.
            let noRecovery = "norecovery@example.org"
            let s0 = try await d.call("POST", "/v1/login/start", json: ["user": noRecovery])
            let t0 = ((s0["session"] as? [String: Any])?["token"] as? String) ?? ""
            let p0 = try await d.call("POST", "/v1/me/totp", headers: ["Gatehouse-Session": t0])
            #expect(p0.status == 200)
            let c0 = try await d.call("POST", "/v1/me/totp/confirm", json: ["code": try await totpCode(p0)], headers: ["Gatehouse-Session": t0])
            #expect(c0.status == 409)
            #expect(c0.code == "recovery_email_required")

            let user = "enrol@example.org"
            #expect(try await d.importUsers([["user": user, "recovery_email": "enrol.backup@example.net", "verified": true]]).status == 200)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(start["status"] as? String == "authenticated")
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            let pending = try await d.call("POST", "/v1/me/totp", headers: ["Gatehouse-Session": token])
            #expect(pending.status == 200)
            let secret = pending["secret"] as? String ?? ""
            #expect(secret.count == 32)
            #expect((pending["otpauth_uri"] as? String)?.hasPrefix("otpauth://totp/Gatehouse%20Test:enrol%40example.org?secret=\(secret)&issuer=Gatehouse%20Test&algorithm=SHA1&digits=6&period=30") == true)
            #expect((pending["qr_svg"] as? String)?.hasPrefix("<svg") == true)
            // A wrong code does not enable anything.
            let bad = try await d.call("POST", "/v1/me/totp/confirm", json: ["code": "000000"], headers: ["Gatehouse-Session": token])
            let current = try await d.code(secret: secret)
            #expect(bad.status == 401 || current == "000000")
            try await d.freshStep()
            let confirm = try await d.call("POST", "/v1/me/totp/confirm", json: ["code": try await d.code(secret: secret)], headers: ["Gatehouse-Session": token])
            #expect(confirm.status == 200, "\(confirm.json)")
            #expect((confirm["two_step"] as? [String: Any])?["enabled"] as? Bool == true)
            let codes = confirm["backup_codes"] as? [String] ?? []
            #expect(codes.count == 10)
            #expect(Set(codes).count == 10)
            #expect(codes.allSatisfy { $0.count == 11 && $0.dropFirst(5).first == "-" })
            let app = confirm["app_password"] as? [String: Any] ?? [:]
            #expect((app["password"] as? String)?.split(separator: " ").count == 6)

            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
            #expect((me["two_step"] as? [String: Any])?["method"] as? String == "totp")
            #expect(me["backup_codes_remaining"] as? Int == 10)
            #expect((me["recovery_email"] as? [String: Any])?["verified"] as? Bool == true)
            #expect((me["app_passwords"] as? [[String: Any]])?.count == 1)
            #expect(!String(decoding: me.body, as: UTF8.self).contains("hash"))
            // Now a login asks for the second step, and the secret works (the confirm spent the
            // current step, so the next step's code).
            let next = try await d.signIn(user, secret: secret, offset: 1)
            #expect(try await d.auth(next).status == 204)
            // Stored secrets are encrypted at rest: the base32 secret is nowhere in Redis.
            let dump = try await d.client.send(["HGETALL", "gh:{\(user)}:user"])
            #expect(!dump.description.contains(secret))
            #expect(dump.description.contains("v1."))
            d.expectLogsClean(of: [secret, token, next] + codes + [(app["password"] as? String) ?? ""])
        }

        func totpCode(_ pending: Deployment.Reply) async throws -> String {
            TOTP.codeNow(secret: pending["secret"] as? String ?? "")
        }
    }

    @Test("turning two-step off needs a current code; then login needs no second step")
    func disable() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let refused = try await d.call("DELETE", "/v1/me/two-step", json: ["code": "000000"], headers: ["Gatehouse-Session": token])
            let current = try await d.code(secret: secret)
            #expect(refused.status == 401 || current == "000000")
            // The login's code is spent; use the next step's.
            let next = try await d.code(secret: secret, offset: 1)
            let off = try await d.call("DELETE", "/v1/me/two-step", json: ["code": next], headers: ["Gatehouse-Session": token])
            #expect(off.status == 204, "\(off.json)")
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(start["status"] as? String == "authenticated")
        }
    }
}

extension TOTP {
    /// The code for a base32 secret at the local clock (tests only; the node uses Redis's clock,
    /// which on one machine is the same clock).
    static func codeNow(secret: String) -> String {
        guard let bytes = Base32.decode(secret), let totp = try? TOTP(secret: bytes) else { return "" }
        return totp.code(at: Int64(Date().timeIntervalSince1970)) ?? ""
    }
}
