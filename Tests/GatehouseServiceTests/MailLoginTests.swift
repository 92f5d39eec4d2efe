import Foundation
import GatehouseRedis
import GatehouseTesting
import Testing

/// Mail logins as a mail proxy asks for them (`GET /v1/mail/auth-http`, nginx's `auth_http`
/// protocol, sent here the way nginx sends it) and as a mail server asks (`POST
/// /v1/mail/authenticate`): what each answer carries, and that no mail client, stale or hostile,
/// can lock a user out.
@Suite("Mail logins: nginx auth_http answers, stale clients and guessers", .serialized)
struct MailLoginTests {
    static let backends = [
        "GATEHOUSE_MAIL_BACKEND_IMAP": "127.0.0.1:1143",
        "GATEHOUSE_MAIL_BACKEND_POP3": "127.0.0.1:1110",
        "GATEHOUSE_MAIL_BACKEND_SMTP": "[::1]:1587",
    ]

    /// nginx's escaping of `Auth-User` and `Auth-Pass`: `%`, space and bytes outside 0x21–0x7E.
    static func nginxEscape(_ text: String) -> String {
        text.utf8.map { b in
            (b <= 0x20 || b >= 0x7F || b == UInt8(ascii: "%")) ? String(format: "%%%02X", b) : String(UnicodeScalar(b))
        }.joined()
    }

    /// One request as nginx's mail module sends it.
    static func proxy(
        _ d: Deployment, user: String, password: String, protocol service: String = "imap", ip: String? = "198.51.100.7",
        attempt: Int = 1, method: String = "plain", key: String? = "mail", node: Int = 0
    ) async throws -> Deployment.Reply {
        var headers = [
            "Auth-Method": method, "Auth-User": nginxEscape(user), "Auth-Pass": nginxEscape(password),
            "Auth-Protocol": service, "Auth-Login-Attempt": String(attempt),
        ]
        if let ip { headers["Client-IP"] = ip }
        return try await d.call("GET", "/v1/mail/auth-http", key: key, headers: headers, node: node)
    }

    @Test("accepted: backend per protocol; a two-step user's backend login is the master user; no two-step: the client's own login")
    func accepted() async throws {
        let masterFile = FileManager.default.temporaryDirectory.appendingPathComponent("gh-master-\(UUID().uuidString)").path
        try "master-secret-0123456789abcdef".write(toFile: masterFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: masterFile) }
        var environment = Self.backends
        environment["GATEHOUSE_MAIL_BACKEND_MASTER_USER"] = "gatehouse"
        environment["GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE"] = masterFile
        try await Deployment.with(environment: environment) { d in
            let user = "proxied@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let imap = try await Self.proxy(d, user: user, password: e.appPassword)
            #expect(imap.status == 200)
            #expect(imap.headers["auth-status"] == "OK")
            #expect(imap.headers["auth-server"] == "127.0.0.1" && imap.headers["auth-port"] == "1143")
            #expect(imap.headers["auth-user"] == "\(user)*gatehouse")
            #expect(imap.headers["auth-pass"] == "master-secret-0123456789abcdef")
            let pop = try await Self.proxy(d, user: user.uppercased(), password: e.appPassword.replacingOccurrences(of: " ", with: ""), protocol: "pop3")
            #expect(pop.headers["auth-status"] == "OK" && pop.headers["auth-port"] == "1110")
            // SMTP: no backend login (nginx passes the user on with XCLIENT), an IPv6 backend.
            let smtp = try await Self.proxy(d, user: user, password: e.appPassword, protocol: "smtp")
            #expect(smtp.headers["auth-status"] == "OK" && smtp.headers["auth-server"] == "::1" && smtp.headers["auth-port"] == "1587")
            #expect(smtp.headers["auth-user"] == nil && smtp.headers["auth-pass"] == nil)
            // Without two-step: OK, and the backend checks the client's own password.
            let plain = try await Self.proxy(d, user: "nobody-enrolled@example.org", password: "any primary password %")
            #expect(plain.headers["auth-status"] == "OK" && plain.headers["auth-user"] == nil && plain.headers["auth-pass"] == nil)
            // Last use is what the mail client did.
            let list = try await d.call("GET", "/v1/me/app-passwords", headers: ["Gatehouse-Session": e.token])
            let used = (list["app_passwords"] as? [[String: Any]])?.first
            #expect(used?["last_used_service"] as? String == "smtp" && used?["last_used_ip"] as? String == "198.51.100.7")
            d.expectLogsClean(of: [e.appPassword, "master-secret-0123456789abcdef"])
        }
    }

    @Test("refused: the words a mail client shows, Auth-Wait until the connection's attempts are spent, SMTP error codes")
    func refusals() async throws {
        try await Deployment.with(environment: Self.backends.filter { $0.key != "GATEHOUSE_MAIL_BACKEND_POP3" }) { d in
            let user = "refused@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let primary = try await Self.proxy(d, user: user, password: "the old primary password")
            #expect(primary.status == 200)
            #expect(primary.headers["auth-status"]?.contains("Two-step verification is on") == true)
            #expect(primary.headers["auth-status"]?.contains("app password") == true)
            #expect(primary.headers["auth-wait"] == "2")
            #expect(primary.headers["auth-error-code"] == nil)
            // The tenth attempt on one connection: no Auth-Wait, so nginx closes it.
            let tenth = try await Self.proxy(d, user: user, password: "the old primary password", attempt: 10)
            #expect(tenth.headers["auth-status"]?.contains("Two-step verification is on") == true && tenth.headers["auth-wait"] == nil)
            let smtp = try await Self.proxy(d, user: user, password: "the old primary password", protocol: "smtp")
            #expect(smtp.headers["auth-error-code"] == "535 5.7.8")
            // An app password scoped to IMAP, used for SMTP.
            let created = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "Reader", "services": ["imap"]], headers: ["Gatehouse-Session": e.token])
            let imapOnly = created["password"] as? String ?? ""
            let scoped = try await Self.proxy(d, user: user, password: imapOnly, protocol: "smtp")
            #expect(scoped.headers["auth-status"] == "This app password is not allowed for SMTP: use an app password made for SMTP")
            // Methods nginx cannot check against app passwords.
            for method in ["apop", "cram-md5", "external"] {
                let reply = try await Self.proxy(d, user: user, password: "salted-response", method: method)
                #expect(reply.headers["auth-status"]?.contains("not supported") == true, "\(method)")
            }
            // A protocol without a backend, a login that is not an address.
            #expect(try await Self.proxy(d, user: user, password: e.appPassword, protocol: "pop3").headers["auth-status"] == "[SYS/PERM] POP3 is not offered here")
            #expect(try await Self.proxy(d, user: "refused", password: e.appPassword).headers["auth-status"] == "[AUTHENTICATIONFAILED] Sign in with your full email address")
            // Malformed requests and keys: a problem body, and still an Auth-Status for nginx.
            let noKey = try await Self.proxy(d, user: user, password: e.appPassword, key: nil)
            #expect(noKey.status == 401 && noKey.code == "unauthorized" && noKey.headers["auth-status"]?.contains("Temporary") == true)
            let wrongScope = try await Self.proxy(d, user: user, password: e.appPassword, key: "frontend")
            #expect(wrongScope.status == 403 && wrongScope.headers["auth-status"] != "OK")
            for (name, value) in [("Auth-Protocol", "nntp"), ("Auth-Login-Attempt", "zero"), ("Client-IP", "not-an-ip"), ("Auth-Pass", "broken%zzescape")] {
                var headers = [
                    "Auth-Method": "plain", "Auth-User": user, "Auth-Pass": "x", "Auth-Protocol": "imap", "Auth-Login-Attempt": "1", "Client-IP": "198.51.100.7",
                ]
                headers[name] = value
                let reply = try await d.call("GET", "/v1/mail/auth-http", key: "mail", headers: headers)
                #expect(reply.status == 400 && reply.code == "invalid_request" && reply.headers["auth-status"] == "Invalid login request", "\(name): \(reply.json)")
            }
            // None of that touched the real app password.
            #expect(try await Self.proxy(d, user: user, password: e.appPassword).headers["auth-status"] == "OK")
            d.expectLogsClean(of: [e.appPassword, imapOnly, "the old primary password"])
        }
    }

    @Test("a stale client repeating the old password hundreds of times: refused and held, reported once, never throttled; the user still gets in everywhere")
    func staleClient() async throws {
        try await Deployment.with(environment: Self.backends) { d in
            let user = "stale@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            var waits: [String] = []
            for attempt in 0..<300 {
                let reply = try await Self.proxy(d, user: user, password: "Summer2024!", ip: "203.0.113.50", attempt: attempt % 5 + 1)
                #expect(reply.headers["auth-status"]?.contains("Two-step verification is on") == true, "attempt \(attempt): \(reply.headers)")
                if let wait = reply.headers["auth-wait"] { waits.append(wait) }
            }
            #expect(waits.count == 300)
            #expect(waits.allSatisfy { (Int($0) ?? 0) >= 2 && (Int($0) ?? 99) <= 15 })
            #expect(waits.last == "13")  // 2 s, a second more per 25 repeats
            // The same address still opens IMAP with the app password, and the webmail signs in.
            #expect(try await Self.proxy(d, user: user, password: e.appPassword, ip: "203.0.113.50").headers["auth-status"] == "OK")
            let session = try await d.signIn(user, secret: e.secret, offset: 1)
            #expect(try await d.auth(session).status == 204)
            // Reported once, with protocol and address, in the user's events.
            let events = try await d.call("GET", "/v1/me/events", headers: ["Gatehouse-Session": session])
            let stale = (events["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "mail_stale_password" }
            #expect(stale.count == 1)
            #expect(stale.first?["detail"] as? String == "imap" && stale.first?["client_ip"] as? String == "203.0.113.50")
            // The second-step throttle saw nothing.
            let status = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect(((status["throttle"] as? [String: Any])?["failures"] as? Int ?? 0) == 0, "\(status.json)")
            let redisKeys = try await d.client.send(["KEYS", "*"]).array?.compactMap(\.string) ?? []
            for key in redisKeys where key.contains("mail-refused") || key.contains("mail-stale") {
                let members = try await d.client.send(["SMEMBERS", key]).array?.compactMap(\.string) ?? []
                #expect(!members.contains { $0.contains("Summer2024") }, "a password in Redis")
            }
            d.expectLogsClean(of: ["Summer2024!", e.appPassword])
        }
    }

    @Test("a guesser trying different passwords is held longer and then throttled per address; the user's real app password is never locked")
    func guesser() async throws {
        try await Deployment.with(environment: Self.backends) { d in
            let user = "guessed@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            var waits: [String?] = []
            for guess in 0..<10 {
                let reply = try await Self.proxy(d, user: user, password: "guess-\(guess)", ip: "192.0.2.66")
                #expect(reply.headers["auth-status"]?.contains("Two-step verification is on") == true)
                waits.append(reply.headers["auth-wait"])
            }
            #expect(waits == ["2", "4", "8", "16", "30", "30", "30", "30", "30", "30"])
            let throttled = try await Self.proxy(d, user: user, password: "guess-10", ip: "192.0.2.66")
            #expect(throttled.headers["auth-status"]?.hasPrefix("[UNAVAILABLE] Too many failed logins from your address: try again in") == true, "\(throttled.headers)")
            #expect(throttled.headers["auth-wait"] == "30")
            #expect(try await Self.proxy(d, user: user, password: "guess-11", protocol: "smtp", ip: "192.0.2.66").headers["auth-error-code"] == "454 4.7.0")
            // The JSON check says the same: 429 with Retry-After.
            let json = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "guess-12", "service": "imap", "client_ip": "192.0.2.66"])
            #expect(json.status == 429 && json.code == "rate_limited" && Int(json.headers["retry-after"] ?? "") ?? 0 > 800)
            // The real app password still gets in from that address, from another one and from none.
            for ip in ["192.0.2.66", "198.51.100.7", nil] {
                #expect(try await Self.proxy(d, user: user, password: e.appPassword, ip: ip).headers["auth-status"] == "OK", "\(ip ?? "no address")")
            }
            // Another address has its own budget.
            #expect(try await Self.proxy(d, user: user, password: "guess-0", ip: "198.51.100.8").headers["auth-wait"] == "2")
            // Without a client address the guesses share one bucket, and the app password still works.
            for guess in 0..<12 {
                _ = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "blind-\(guess)", "service": "imap"])
            }
            let blind = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "blind-99", "service": "imap"])
            #expect(blind.status == 429)
            let real = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": e.appPassword, "service": "imap"])
            #expect(real.status == 200 && real["result"] as? String == "ok")
        }
    }
}
