import Foundation
import GatehouseCore
import Testing

/// The settings page (`/account/settings`) over HTTP against an in-process node and a real Redis,
/// driven the way a browser does: the session in the `gatehouse_session` cookie, the CSRF
/// binding in `gatehouse_csrf`, forms posted as `application/x-www-form-urlencoded`.
@Suite("Settings page", .timeLimit(.minutes(3)))
struct SettingsPagesTests {
    /// A browser's view of the pages: its cookies, and the last page's CSRF token.
    struct Browser {
        let d: Deployment
        var cookies: [String: String]
        var csrf = ""

        init(_ d: Deployment, session: String) {
            self.d = d
            self.cookies = ["gatehouse_session": session]
        }

        var cookieHeader: String { cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }

        /// GETs `path`, keeping the CSRF cookie it sets and the form token it shows.
        mutating func get(_ path: String = "/account/settings", sourceLocation: SourceLocation = #_sourceLocation) async throws -> Deployment.Reply {
            let reply = try await d.call("GET", path, key: nil, headers: ["Cookie": cookieHeader])
            absorb(reply, sourceLocation: sourceLocation)
            return reply
        }

        /// Posts a form (with the page's CSRF token unless `csrf` is false). A 303 is followed
        /// by the HTTP client with a GET carrying the same cookies, as a browser does.
        mutating func post(
            _ path: String, _ fields: [(String, String)] = [], csrf withToken: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> Deployment.Reply {
            var all = fields
            if withToken { all.append(("csrf", csrf)) }
            let body = all.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
            let reply = try await d.call(
                "POST", path, key: nil, raw: Data(body.utf8),
                headers: ["Cookie": cookieHeader, "Content-Type": "application/x-www-form-urlencoded"]
            )
            absorb(reply, sourceLocation: sourceLocation)
            return reply
        }

        /// Every answer is checked for the headers every page carries.
        mutating func absorb(_ reply: Deployment.Reply, sourceLocation: SourceLocation = #_sourceLocation) {
            SettingsPagesTests.expectPageHeaders(reply, sourceLocation: sourceLocation)
            if let set = reply.headers["set-cookie"], let value = Self.first(#"gatehouse_csrf=([A-Za-z0-9_-]{22})"#, in: set) {
                cookies["gatehouse_csrf"] = value
            }
            if let token = Self.first(#"name="csrf" value="([^"]+)""#, in: reply.html) { csrf = token }
        }

        static func encode(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        }

        static func first(_ pattern: String, in text: String) -> String? {
            guard let regex = try? NSRegularExpression(pattern: pattern),
                  let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), match.numberOfRanges > 1,
                  let range = Range(match.range(at: 1), in: text)
            else { return nil }
            return String(text[range])
        }

        static func all(_ pattern: String, in text: String) -> [String] {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
            return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
                Range(match.range(at: 1), in: text).map { String(text[$0]) }
            }
        }
    }

    /// Every page: no caching, no framing.
    static func expectPageHeaders(_ reply: Deployment.Reply, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.headers["cache-control"] == "no-store", "Cache-Control: \(reply.headers["cache-control"] ?? "none")", sourceLocation: sourceLocation)
        let policy = reply.headers["content-security-policy"] ?? ""
        #expect(policy.contains("frame-ancestors 'none'"), "CSP: \(policy)", sourceLocation: sourceLocation)
        #expect(!policy.contains("unsafe-inline"), sourceLocation: sourceLocation)
    }

    /// The `data-id`s of a table's rows.
    static func rowIDs(_ table: String, in html: String) -> [String] {
        guard let start = html.range(of: "<table id=\"\(table)\""), let end = html[start.upperBound...].range(of: "</table>") else { return [] }
        return Browser.all(#"<tr data-id="([^"]+)""#, in: String(html[start.lowerBound..<end.upperBound]))
    }

    /// The items of `<ul id="events">`.
    static func events(in html: String) -> [String] {
        guard let start = html.range(of: "<ul id=\"events\""), let end = html[start.upperBound...].range(of: "</ul>") else { return [] }
        return Browser.all(#"<span class="what">([^<]+)</span>"#, in: String(html[start.lowerBound..<end.upperBound]))
    }

    static func appPasswordIDs(_ d: Deployment, _ token: String) async throws -> [String] {
        let list = try await d.call("GET", "/v1/me/app-passwords", headers: ["Gatehouse-Session": token])
        return (list["app_passwords"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    @Test("lists app passwords, devices, sessions and events; creates and revokes; forgets devices; headers on every page")
    func listsAndChanges() async throws {
        try await Deployment.with { d in
            let user = "lister@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            // A remembered device with a browser's user agent, from a sign-in with a backup code.
            let finish = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[0], "remember": true,
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "client_ip": "198.51.100.7",
            ])
            let token = ((finish["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(!token.isEmpty)

            // Not signed in: the message page, still no-store and unframeable.
            var stranger = Browser(d, session: "not-a-token")
            let refused = try await stranger.get()
            #expect(refused.status == 401 && refused.html.contains("data-code=\"not_signed_in\""))
            Self.expectPageHeaders(refused)

            var browser = Browser(d, session: token)
            let page = try await browser.get()
            #expect(page.status == 200)
            Self.expectPageHeaders(page)
            let html = page.html
            #expect(html.contains("id=\"two-step-status\">On"))
            #expect(html.contains("Authenticator app"))
            #expect(html.contains("id=\"backup-remaining\">9<"))
            #expect(!html.contains("id=\"turn-on\""))
            #expect(html.contains("id=\"turn-off\"") && html.contains("id=\"disable-code\""))
            let appIDs = Self.rowIDs("app-passwords", in: html)
            let listedIDs = try await Self.appPasswordIDs(d, token)
            #expect(appIDs.count == 1 && appIDs == listedIDs)
            #expect(html.contains("Never used"))
            // The default policy does not allow revealing: no eyeball.
            #expect(!html.contains("/reveal\"") && !html.contains("class=\"secondary small reveal\""))
            #expect(Self.rowIDs("devices", in: html).count == 1)
            #expect(html.contains("Firefox on Linux"))
            let sessionIDs = Self.rowIDs("sessions", in: html)
            #expect(sessionIDs.count == 2)  // the enrolment's session and this one
            #expect(html.contains("class=\"current\""))
            #expect(html.contains("Password and backup code"))
            let events = Self.events(in: html)
            #expect(events.count <= 20)
            for expected in [
                "A device was remembered, so it skips the code at sign-in", "Signed in with a backup code",
                "Two-step verification was turned on with an authenticator app",
            ] {
                #expect(events.contains(expected), "missing “\(expected)” in \(events)")
            }
            #expect(html.contains(" UTC</time>"))

            // Without the CSRF field (or with another browser's): 403, nothing changes.
            let forged = try await browser.post("/account/settings/app-passwords/\(appIDs[0])/delete", [("x", "1")], csrf: false)
            #expect(forged.status == 403 && forged.html.contains("data-code=\"csrf_failed\""))
            Self.expectPageHeaders(forged)
            var other = browser
            other.cookies["gatehouse_csrf"] = String(repeating: "A", count: 22)
            #expect(try await other.post("/account/settings/devices/forget-all").status == 403)
            #expect(try await other.post("/account/settings/sessions/sign-out-others").status == 403)
            #expect(try await Self.appPasswordIDs(d, token) == appIDs)
            #expect((try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": token])["devices"] as? [Any])?.count == 1)
            #expect(try await d.auth(e.token).status == 204)

            // Create: the password is in this answer only, for the services chosen.
            let created = try await browser.post("/account/settings/app-passwords", [("label", "Phone mail"), ("services", "imap"), ("services", "smtp")])
            #expect(created.status == 200)
            Self.expectPageHeaders(created)
            let password = Browser.first(#"id="new-app-password">([a-z]{4}(?: [a-z]{4}){5})<"#, in: created.html) ?? ""
            #expect(!password.isEmpty, "no new app password shown")
            #expect(created.html.contains("/account/assets/copy.js"))
            #expect(!(created.headers["set-cookie"] ?? "").contains(password) && created.headers["location"] == nil)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "smtp"]).status == 200)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "pop3"]).status == 401)
            let newID = try await Self.appPasswordIDs(d, token).first { !appIDs.contains($0) } ?? ""
            let listed = try await browser.get()
            #expect(Self.rowIDs("app-passwords", in: listed.html).contains(newID))
            #expect(listed.html.contains("IMAP and SMTP"))
            #expect(!listed.html.contains(password), "the page shows a password again after it was created")
            #expect(listed.html.contains("The app password “Phone mail” was created"))

            // Bad input: a clear message, nothing made.
            let unnamed = try await browser.post("/account/settings/app-passwords", [("label", "  "), ("services", "imap")])
            #expect(unnamed.status == 400 && unnamed.html.contains("id=\"error\""))
            let noService = try await browser.post("/account/settings/app-passwords", [("label", "Laptop")])
            #expect(noService.status == 400 && noService.html.contains("Choose what the app password is for"))
            #expect(try await Self.appPasswordIDs(d, token).count == 2)

            // Revoke: gone from the page and from the mail check.
            let revoked = try await browser.post("/account/settings/app-passwords/\(newID)/delete")
            #expect(revoked.status == 200 && revoked.html.contains("id=\"notice\"") && revoked.html.contains("was revoked"), "\(revoked.status)")
            Self.expectPageHeaders(revoked)
            #expect(!Self.rowIDs("app-passwords", in: revoked.html).contains(newID))
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "imap"]).status == 401)
            let again = try await browser.post("/account/settings/app-passwords/\(newID)/delete")
            #expect(again.status == 404 && again.html.contains("data-code=\"not_found\""))

            // Devices: forget one, then all.
            let second = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[1], "remember": true,
            ])
            #expect(second.status == 200)
            let deviceIDs = Self.rowIDs("devices", in: try await browser.get().html)
            #expect(deviceIDs.count == 2)
            let forgot = try await browser.post("/account/settings/devices/\(deviceIDs[0])/forget")
            #expect(forgot.status == 200 && Self.rowIDs("devices", in: forgot.html) == [deviceIDs[1]])
            let forgotAll = try await browser.post("/account/settings/devices/forget-all")
            #expect(forgotAll.status == 200 && forgotAll.html.contains("id=\"no-devices\""))
            #expect((try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": token])["devices"] as? [Any])?.count == 0)
            #expect(Self.events(in: forgotAll.html).contains("All remembered devices were forgotten"))
            d.expectLogsClean(of: [password, e.appPassword, token] + e.codes)
        }
    }

    @Test("the eyeball reveals where the domain allows it, after a recent second step; absent and refused elsewhere")
    func reveal() async throws {
        try await Deployment.with { d in
            let domain = "reveal-\(UUID().uuidString.prefix(6).lowercased()).example"
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "app_password_reveal": true]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let user = "eye@\(domain)"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let token = try await d.signIn(user, secret: e.secret, offset: 1)
            var browser = Browser(d, session: token)
            let page = try await browser.get()
            let ids = Self.rowIDs("app-passwords", in: page.html)
            #expect(ids.count == 1)
            #expect(page.html.contains("action=\"/account/settings/app-passwords/\(ids[0])/reveal\"") && page.html.contains("reveal\""))
            let shown = try await browser.post("/account/settings/app-passwords/\(ids[0])/reveal")
            #expect(shown.status == 200)
            Self.expectPageHeaders(shown)
            #expect(Browser.first(#"<span class="secret" id="revealed-password">([^<]+)</span>"#, in: shown.html) == e.appPassword)
            #expect(shown.html.contains("id=\"copy\" data-copy=\"revealed-password\""))
            #expect(shown.html.contains("<script src=\"/account/assets/copy.js\">"))
            // Shown once: the next GET does not carry it.
            #expect(!(try await browser.get().html.contains(e.appPassword)))

            // The enrolment's session has no recent second step: refused in words.
            var stale = Browser(d, session: e.token)
            _ = try await stale.get()
            let refused = try await stale.post("/account/settings/app-passwords/\(ids[0])/reveal")
            #expect(refused.status == 403 && refused.html.contains("data-code=\"reauthentication_required\""))
            #expect(refused.html.contains("needs a recent sign-in") && !refused.html.contains(e.appPassword))

            // A domain that does not allow revealing: no eyeball, and a post is refused.
            let plain = "plain-\(UUID().uuidString.prefix(6).lowercased())@example.org"
            let p = try await AccountFeatureTests.enrolThroughAPI(d, plain)
            let plainToken = try await d.signIn(plain, secret: p.secret, offset: 1)
            var plainBrowser = Browser(d, session: plainToken)
            let plainPage = try await plainBrowser.get()
            let plainIDs = Self.rowIDs("app-passwords", in: plainPage.html)
            #expect(plainIDs.count == 1 && !plainPage.html.contains("/reveal\""))
            let notAllowed = try await plainBrowser.post("/account/settings/app-passwords/\(plainIDs[0])/reveal")
            #expect(notAllowed.status == 403 && notAllowed.html.contains("does not allow showing app passwords"))
            #expect(!notAllowed.html.contains(p.appPassword) && !notAllowed.html.contains("id=\"revealed-password\""))
            d.expectLogsClean(of: [e.appPassword, p.appPassword, token, plainToken])
        }
    }

    @Test("sign out one session ends that token; sign out everywhere else keeps this one")
    func sessions() async throws {
        try await Deployment.with { d in
            let user = "sessions@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let mine = try await d.signIn(user, secret: e.secret, offset: 1)
            var others: [String] = []
            for code in e.codes.prefix(2) {
                let r = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": code])
                others.append(((r["session"] as? [String: Any])?["token"] as? String) ?? "")
            }
            func id(of token: String) async throws -> String {
                let list = try await d.call("GET", "/v1/me/sessions", headers: ["Gatehouse-Session": token])
                return (list["sessions"] as? [[String: Any]] ?? []).first { $0["current"] as? Bool == true }?["id"] as? String ?? ""
            }
            let mineID = try await id(of: mine), firstID = try await id(of: others[0])
            let secondID = try await id(of: others[1]), enrolmentID = try await id(of: e.token)
            var browser = Browser(d, session: mine)
            let page = try await browser.get()
            let rows = Self.rowIDs("sessions", in: page.html)
            #expect(Set(rows) == Set([mineID, firstID, secondID, enrolmentID]) && rows.count == 4)
            // The current row has no sign-out button.
            #expect(page.html.contains("<tr data-id=\"\(mineID)\" class=\"current\">"))
            #expect(!page.html.contains("/account/settings/sessions/\(mineID)/sign-out"))
            #expect(page.html.contains("/account/settings/sessions/\(firstID)/sign-out") && page.html.contains("id=\"sign-out-others\""))

            // Without CSRF nothing happens.
            #expect(try await browser.post("/account/settings/sessions/\(firstID)/sign-out", [("x", "1")], csrf: false).status == 403)
            #expect(try await d.auth(others[0]).status == 204)

            let one = try await browser.post("/account/settings/sessions/\(firstID)/sign-out")
            #expect(one.status == 200 && one.html.contains("That session was signed out."))
            #expect(try await d.within(.seconds(2)) { try await d.auth(others[0]).status == 401 } != nil)
            #expect(try await d.auth(others[1]).status == 204)
            #expect(try await d.auth(mine).status == 204)
            #expect(!Self.rowIDs("sessions", in: one.html).contains(firstID))

            // The current one is not signed out from its own row.
            let own = try await browser.post("/account/settings/sessions/\(mineID)/sign-out")
            #expect(own.status == 400 && own.html.contains("id=\"error\""))
            #expect(try await d.auth(mine).status == 204)

            let rest = try await browser.post("/account/settings/sessions/sign-out-others")
            #expect(rest.status == 200 && rest.html.contains("This device stays signed in."))
            #expect(try await d.within(.seconds(2)) {
                let second = try await d.auth(others[1]).status, enrolment = try await d.auth(e.token).status
                return second == 401 && enrolment == 401
            } != nil)
            #expect(try await d.auth(mine).status == 204)
            #expect(Self.rowIDs("sessions", in: rest.html) == [mineID])
            #expect(!rest.html.contains("id=\"sign-out-others\""))
            #expect(Self.events(in: rest.html).first == "Signed out everywhere else (2 other sessions)")
        }
    }

    @Test("new backup codes are shown once with print and download; two-step off needs a code and is hidden when enforced")
    func backupCodesAndTurnOff() async throws {
        try await Deployment.with { d in
            let domain = "off-\(UUID().uuidString.prefix(6).lowercased()).example"
            let user = "off@\(domain)"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let token = try await d.signIn(user, secret: e.secret, offset: 1)
            var browser = Browser(d, session: token)
            _ = try await browser.get()

            let fresh = try await browser.post("/account/settings/backup-codes")
            #expect(fresh.status == 200)
            Self.expectPageHeaders(fresh)
            let codes = Browser.all(#"<li>([2-9a-z]{5}-[2-9a-z]{5})</li>"#, in: fresh.html)
            #expect(codes.count == 10)
            #expect(fresh.html.contains("<ol class=\"codes\" id=\"backup-codes\">"))
            #expect(fresh.html.contains("id=\"print\" data-print") && fresh.html.contains("<script src=\"/account/assets/print.js\">"))
            #expect(fresh.html.contains("id=\"download\" download=\"backup-codes.txt\" href=\"data:text/plain;charset=utf-8,"))
            #expect(!(try await browser.get().html.contains(codes[0])))
            let old = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[0]])
            #expect(old.status == 401)

            // Enforced: no way to turn it off on the page, and a post is refused.
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "enforced"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let enforced = try await browser.get()
            #expect(enforced.html.contains("id=\"two-step-required\"") && !enforced.html.contains("id=\"turn-off\""))
            #expect(try await browser.post("/account/settings/two-step/off", [("code", codes[0])]).status == 403)
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))

            // A wrong code: the page again with the error, still on.
            let wrong = try await browser.post("/account/settings/two-step/off", [("code", "000000")])
            #expect(wrong.status == 401 && wrong.html.contains("data-code=\"invalid_code\"") && wrong.html.contains("id=\"two-step-status\">On"))
            let blank = try await browser.post("/account/settings/two-step/off", [("code", " ")])
            #expect(blank.status == 400 && blank.html.contains("id=\"error\""))
            #expect(try await browser.post("/account/settings/two-step/off", [("code", codes[1])], csrf: false).status == 403)
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
            #expect((me["two_step"] as? [String: Any])?["enabled"] as? Bool == true)

            let off = try await browser.post("/account/settings/two-step/off", [("code", codes[1])])
            #expect(off.status == 200 && off.html.contains("id=\"two-step-status\">Off") && off.html.contains("Two-step verification is off."))
            #expect(off.html.contains("href=\"/account/enroll\" id=\"turn-on\""))
            #expect(Self.rowIDs("app-passwords", in: off.html).isEmpty && !off.html.contains("id=\"create-app-password\""))
            #expect(Self.events(in: off.html).contains("Two-step verification was turned off"))
            d.expectLogsClean(of: codes + e.codes + [token])
        }
    }
}

private extension Deployment.Reply {
    /// The body as text (the pages are UTF-8 HTML).
    var html: String { String(decoding: body, as: UTF8.self) }
}
