import Foundation
import GatehouseCore
import GatehouseRedis
import GatehouseTesting
import Testing

/// Backup codes, remembered devices, app passwords for mail servers, sessions, password change and
/// security events — over HTTP against real nodes and Redis, including the abuse cases.
@Suite("Backup codes, devices, app passwords, sessions, events", .timeLimit(.minutes(3)))
struct AccountFeatureTests {
    /// Enrols a user through the API (so backup codes and the app password exist).
    static func enrolThroughAPI(_ d: Deployment, _ user: String) async throws -> (secret: String, codes: [String], appPassword: String, token: String) {
        #expect(try await d.importUsers([["user": user, "recovery_email": "r-\(user)", "verified": true]]).status == 200)
        let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
        let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
        let pending = try await d.call("POST", "/v1/me/totp", headers: ["Gatehouse-Session": token])
        let secret = pending["secret"] as? String ?? ""
        try await d.freshStep()
        let confirm = try await d.call("POST", "/v1/me/totp/confirm", json: ["code": try await d.code(secret: secret)], headers: ["Gatehouse-Session": token])
        #expect(confirm.status == 200, "\(confirm.json)")
        let app = (confirm["app_password"] as? [String: Any])?["password"] as? String ?? ""
        return (secret, confirm["backup_codes"] as? [String] ?? [], app, token)
    }

    @Test("backup codes: single use, count shown, regenerate kills the old set")
    func backupCodes() async throws {
        try await Deployment.with { d in
            let user = "backup@example.org"
            let e = try await Self.enrolThroughAPI(d, user)
            let challenge = try await d.challenge(for: user)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            // The verified recovery address adds emailed codes ("check your app or your recovery email").
            #expect(start["methods"] as? [String] == ["totp", "email", "backup_code"])
            let ok = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "backup_code", "code": e.codes[0].uppercased()])
            #expect(ok.status == 200, "\(ok.json)")
            let session = ((ok["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": session])["amr"] as? [String] == ["pwd", "backup"])
            // Used once: a second login with the same code fails like a wrong code.
            let again = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[0]])
            #expect(again.status == 401 && again.code == "invalid_code")
            #expect(try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": session])["backup_codes_remaining"] as? Int == 9)
            let fresh = try await d.call("POST", "/v1/me/backup-codes", headers: ["Gatehouse-Session": session])
            #expect(fresh.status == 200)
            #expect((fresh["backup_codes"] as? [String])?.count == 10)
            let old = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[1]])
            #expect(old.status == 401)
            #expect(try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "backup_code", "code": "not-a-code"]).status == 400)
            d.expectLogsClean(of: e.codes + [e.secret, e.appPassword, session])
        }
    }

    @Test("remember me: rotated on every use, theft detected, checked against policy and epoch; no cross-user use")
    func rememberDevices() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            try await d.freshStep()
            let finish = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret), "remember": true,
                "user_agent": "Thunderbird/128", "client_ip": "198.51.100.4",
            ])
            let remember = ((finish["remember"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(!remember.isEmpty, "\(finish.json)")
            // Using it skips the second step and rotates it.
            let used = try await d.call("POST", "/v1/login/start", json: ["user": user, "remember_token": remember])
            #expect(used["status"] as? String == "authenticated")
            let rotated = ((used["remember"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(!rotated.isEmpty && rotated != remember)
            let session = ((used["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": session])["amr"] as? [String] == ["pwd", "remember"])
            let devices = try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": session])
            let list = devices["devices"] as? [[String: Any]] ?? []
            #expect(list.count == 1)
            #expect(list.first?["user_agent"] as? String == "Thunderbird/128")
            // Another user presenting it gets the normal second step.
            let (other, _) = try await d.enrolledUser()
            #expect(try await d.call("POST", "/v1/login/start", json: ["user": other, "remember_token": rotated])["status"] as? String == "second_step")
            // The old (rotated) token presented again: theft — the device is revoked, event logged.
            let stolen = try await d.call("POST", "/v1/login/start", json: ["user": user, "remember_token": remember])
            #expect(stolen["status"] as? String == "second_step")
            #expect(try await d.call("POST", "/v1/login/start", json: ["user": user, "remember_token": rotated])["status"] as? String == "second_step")
            let events = try await d.call("GET", "/v1/users/\(user)/events", key: "admin")
            let types = (events["events"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            #expect(types.contains("device_theft_detected"))
            #expect(types.first == "device_theft_detected", "newest first: \(types)")

            // A fresh device; turning remember-me off by policy stops it at once.
            try await d.freshStep()
            let second = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "totp", "code": try await d.code(secret: secret, offset: 1), "remember": true,
            ])
            let token2 = ((second["remember"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(!token2.isEmpty)
            #expect(try await d.call("PUT", "/v1/domains/example.org/policy", key: "admin", json: ["mode": "optional", "remember_device_days": 0]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await d.call("POST", "/v1/login/start", json: ["user": user, "remember_token": token2])["status"] as? String == "second_step")
            d.expectLogsClean(of: [remember, rotated, token2, session])
        }
    }

    @Test("app passwords: IMAP/POP/SMTP checks, scoping, primary refused once two-step is on, last use recorded")
    func appPasswords() async throws {
        try await Deployment.with { d in
            // Before two-step: use the primary password.
            let plain = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": "plain@example.org", "password": "hunter2", "service": "imap"])
            #expect(plain.status == 200 && plain["result"] as? String == "use_primary")
            let user = "mailer@example.org"
            let e = try await Self.enrolThroughAPI(d, user)
            #expect(e.appPassword.split(separator: " ").count == 6)
            let ok = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": e.appPassword, "service": "imap", "client_ip": "203.0.113.9"])
            #expect(ok.status == 200 && ok["result"] as? String == "ok", "\(ok.json)")
            // Without spaces, as many clients store it.
            let compact = e.appPassword.replacingOccurrences(of: " ", with: "")
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": compact, "service": "smtp", "client_ip": "203.0.113.9"])["result"] as? String == "ok")
            // The primary password no longer opens IMAP.
            let primary = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "the-primary-password", "service": "imap"])
            #expect(primary.status == 401 && primary.code == "denied")
            // An IMAP-only app password does not open SMTP.
            let created = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "Phone IMAP", "services": ["imap"]], headers: ["Gatehouse-Session": e.token])
            #expect(created.status == 201)
            let imapOnly = created["password"] as? String ?? ""
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": imapOnly, "service": "imap"])["result"] as? String == "ok")
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": imapOnly, "service": "smtp"]).status == 401)
            // Another user's app password is not this user's.
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": "plain@example.org", "password": imapOnly, "service": "imap"])["result"] as? String == "use_primary")
            let list = try await d.call("GET", "/v1/me/app-passwords", headers: ["Gatehouse-Session": e.token])
            let entries = list["app_passwords"] as? [[String: Any]] ?? []
            #expect(entries.count == 2)
            let first = entries.first { $0["label"] as? String == "IMAP/POP/SMTP" }
            #expect(first?["last_used_ip"] as? String == "203.0.113.9")
            #expect(first?["last_used_service"] as? String == "smtp")
            #expect(!String(decoding: list.body, as: UTF8.self).contains(compact))
            // Reveal is off by default.
            let reveal = try await d.call("GET", "/v1/me/app-passwords/\(created["id"] as? String ?? "")/reveal", headers: ["Gatehouse-Session": e.token])
            #expect(reveal.status == 403 && reveal.code == "reauthentication_required")
            // Delete.
            #expect(try await d.call("DELETE", "/v1/me/app-passwords/\(created["id"] as? String ?? "")", headers: ["Gatehouse-Session": e.token]).status == 204)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": imapOnly, "service": "imap"]).status == 401)
            // Its own throttle: 10 different wrong passwords from one address, then 429 (repeats
            // of one password never get there: MailLoginTests).
            var last = 0
            for guess in 0..<11 {
                last = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "wrong-\(guess)", "service": "imap", "client_ip": "203.0.113.66"]).status
            }
            #expect(last == 429)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": e.appPassword, "service": "imap", "client_ip": "203.0.113.9"]).status == 200)
            d.expectLogsClean(of: [e.appPassword, compact, imapOnly])
        }
    }

    @Test("sessions list, sign out everywhere else, password change kills devices, other sessions and app passwords")
    func sessionsAndPasswordChange() async throws {
        try await Deployment.with(nodes: 2) { d in
            let user = "changer@example.org"
            let e = try await Self.enrolThroughAPI(d, user)
            let a = try await d.signIn(user, secret: e.secret, offset: 1)
            let b = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[0], "remember": true,
            ])
            let bToken = ((b["session"] as? [String: Any])?["token"] as? String) ?? ""
            let list = try await d.call("GET", "/v1/me/sessions", headers: ["Gatehouse-Session": a])
            let sessions = list["sessions"] as? [[String: Any]] ?? []
            #expect(sessions.count == 3)  // the enrolment's password session, a, b
            #expect(sessions.filter { $0["current"] as? Bool == true }.count == 1)
            #expect(try await d.call("DELETE", "/v1/me/sessions", headers: ["Gatehouse-Session": a]).status == 204)
            #expect(try await d.within(.seconds(1)) { try await d.auth(bToken, node: 1).status == 401 } != nil)
            #expect(try await d.auth(a, node: 1).status == 204)

            let c = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[1]])
            let cToken = ((c["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.call("POST", "/v1/me/password-changed", headers: ["Gatehouse-Session": a]).status == 204)
            #expect(try await d.within(.seconds(1)) { try await d.auth(cToken, node: 1).status == 401 } != nil)
            #expect(try await d.auth(a).status == 204)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": e.appPassword, "service": "imap"]).status == 401)
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": a])
            #expect((me["devices"] as? [Any])?.count == 0)
            #expect((me["app_passwords"] as? [Any])?.count == 0)
            let events = try await d.call("GET", "/v1/me/events", headers: ["Gatehouse-Session": a])
            let types = (events["events"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            for expected in ["password_changed", "sessions_revoked", "device_remembered", "backup_code_used", "two_step_enabled", "second_step_succeeded"] {
                #expect(types.contains(expected), "missing event \(expected): \(types)")
            }
        }
    }

    @Test("two-step off: needs a code or a backup code; refused under an enforced policy")
    func disableRules() async throws {
        try await Deployment.with { d in
            let domain = "rules-\(UUID().uuidString.prefix(6).lowercased()).example"
            let user = "r@\(domain)"
            let e = try await Self.enrolThroughAPI(d, user)
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "enforced"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let session = try await d.signIn(user, secret: e.secret, offset: 1)
            let refused = try await d.call("DELETE", "/v1/me/two-step", json: ["code": e.codes[0]], headers: ["Gatehouse-Session": session])
            #expect(refused.status == 403)
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await d.call("DELETE", "/v1/me/two-step", json: ["code": e.codes[0]], headers: ["Gatehouse-Session": session]).status == 204)
        }
    }

    @Test("forget one device and all devices; reveal where the policy allows; at most 50 app passwords")
    func forgetRevealLimit() async throws {
        try await Deployment.with { d in
            let domain = "reveal-\(UUID().uuidString.prefix(6).lowercased()).example"
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "app_password_reveal": true]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let user = "keeper@\(domain)"
            let e = try await Self.enrolThroughAPI(d, user)
            var remembers: [String] = []
            for i in 0..<2 {
                let r = try await d.call("POST", "/v1/login/finish", json: [
                    "challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[i], "remember": true,
                ])
                remembers.append(((r["remember"] as? [String: Any])?["token"] as? String) ?? "")
            }
            // A session with a fresh second step (backup code) may reveal.
            let last = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[2]])
            let session = ((last["session"] as? [String: Any])?["token"] as? String) ?? ""
            let created = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "Laptop"], headers: ["Gatehouse-Session": session])
            #expect(created.status == 201)
            let revealed = try await d.call("GET", "/v1/me/app-passwords/\(created["id"] as? String ?? "")/reveal", headers: ["Gatehouse-Session": session])
            #expect(revealed.status == 200 && revealed["password"] as? String == created["password"] as? String)
            // The enrolment's password-only session may not.
            let pwdOnly = try await d.call("GET", "/v1/me/app-passwords/\(created["id"] as? String ?? "")/reveal", headers: ["Gatehouse-Session": e.token])
            #expect(pwdOnly.status == 403 && pwdOnly.code == "reauthentication_required")

            let devices = try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": session])
            let ids = (devices["devices"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(ids.count == 2)
            #expect(try await d.call("DELETE", "/v1/me/devices/\(ids[0])", headers: ["Gatehouse-Session": session]).status == 204)
            #expect(try await d.call("DELETE", "/v1/me/devices/\(ids[0])", headers: ["Gatehouse-Session": session]).status == 404)
            #expect((try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": session])["devices"] as? [Any])?.count == 1)
            #expect(try await d.call("DELETE", "/v1/me/devices", headers: ["Gatehouse-Session": session]).status == 204)
            for token in remembers {
                #expect(try await d.call("POST", "/v1/login/start", json: ["user": user, "remember_token": token])["status"] as? String == "second_step")
            }
            // 2 exist (the enrolment's and "Laptop"); 48 more fit, the 51st does not.
            for i in 0..<48 {
                #expect(try await d.call("POST", "/v1/me/app-passwords", json: ["label": "n\(i)", "services": ["imap"]], headers: ["Gatehouse-Session": session]).status == 201)
            }
            let over = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "one too many"], headers: ["Gatehouse-Session": session])
            #expect(over.status == 400)
            #expect(try await d.call("POST", "/v1/me/app-passwords", json: ["label": "x", "services": ["ftp"]], headers: ["Gatehouse-Session": session]).status == 400)
        }
    }
}
