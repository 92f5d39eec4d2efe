import Foundation
import GatehouseCore
import Testing

/// The settings page (`/account/settings`) over HTTP against an in-process node and a real Redis,
/// driven the way a browser does: the session in the `gatehouse_session` cookie, the CSRF
/// binding in `gatehouse_csrf`, forms posted as `application/x-www-form-urlencoded`.
@Suite("Settings page", .timeLimit(.minutes(3)))
struct SettingsPagesTests {
    static let page = "/account/settings"

    /// A browser signed in with `session` whose every answer is checked for the page headers.
    static func browser(_ d: Deployment, session: String) -> PageClient {
        let browser = PageClient(base: d.node.baseURL, checksPageHeaders: true)
        browser.setCookie("gatehouse_session", session)
        return browser
    }

    /// The `data-id`s of a table's rows.
    static func rowIDs(_ table: String, in html: String) -> [String] {
        guard let start = html.range(of: "<table id=\"\(table)\""), let end = html[start.upperBound...].range(of: "</table>") else { return [] }
        return PageClient.all(#"<tr data-id="([^"]+)""#, in: String(html[start.lowerBound..<end.upperBound]))
    }

    /// The items of `<ul id="events">`.
    static func events(in html: String) -> [String] {
        guard let start = html.range(of: "<ul id=\"events\""), let end = html[start.upperBound...].range(of: "</ul>") else { return [] }
        return PageClient.all(#"<span class="what">([^<]+)</span>"#, in: String(html[start.lowerBound..<end.upperBound]))
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
            let stranger = Self.browser(d, session: "not-a-token")
            let refused = try await stranger.get(Self.page)
            #expect(refused.status == 401 && refused.body.contains("data-code=\"not_signed_in\""))
            PageClient.expectPageHeaders(refused)

            let browser = Self.browser(d, session: token)
            let page = try await browser.get(Self.page)
            #expect(page.status == 200)
            PageClient.expectPageHeaders(page)
            let html = page.body
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
            let forged = try await browser.post("/account/settings/app-passwords/\(appIDs[0])/delete", ["x": "1"])
            #expect(forged.status == 403 && forged.body.contains("data-code=\"csrf_failed\""))
            PageClient.expectPageHeaders(forged)
            let other = browser.copy()
            other.setCookie("gatehouse_csrf", String(repeating: "A", count: 22))
            #expect(try await other.submit("/account/settings/devices/forget-all").status == 403)
            #expect(try await other.submit("/account/settings/sessions/sign-out-others").status == 403)
            #expect(try await Self.appPasswordIDs(d, token) == appIDs)
            #expect((try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": token])["devices"] as? [Any])?.count == 1)
            #expect(try await d.auth(e.token).status == 204)

            // Create: the password is in this answer only, for the services chosen.
            let created = try await browser.submit("/account/settings/app-passwords", ["label": "Phone mail", "services": "imap", "services": "smtp"])
            #expect(created.status == 200)
            PageClient.expectPageHeaders(created)
            let password = PageClient.first(#"id="new-app-password">([a-z]{4}(?: [a-z]{4}){5})<"#, in: created.body) ?? ""
            #expect(!password.isEmpty, "no new app password shown")
            #expect(created.body.contains("/account/assets/copy.js"))
            #expect(!(created.headers["set-cookie"] ?? "").contains(password) && created.headers["location"] == nil)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "smtp"]).status == 200)
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "pop3"]).status == 401)
            let newID = try await Self.appPasswordIDs(d, token).first { !appIDs.contains($0) } ?? ""
            let listed = try await browser.get(Self.page)
            #expect(Self.rowIDs("app-passwords", in: listed.body).contains(newID))
            #expect(listed.body.contains("IMAP and SMTP"))
            #expect(!listed.body.contains(password), "the page shows a password again after it was created")
            #expect(listed.body.contains("The app password “Phone mail” was created"))

            // Bad input: a clear message, nothing made.
            let unnamed = try await browser.submit("/account/settings/app-passwords", ["label": "  ", "services": "imap"])
            #expect(unnamed.status == 400 && unnamed.body.contains("id=\"error\""))
            let noService = try await browser.submit("/account/settings/app-passwords", ["label": "Laptop"])
            #expect(noService.status == 400 && noService.body.contains("Choose what the app password is for"))
            #expect(try await Self.appPasswordIDs(d, token).count == 2)

            // Revoke: gone from the page and from the mail check.
            let revoked = try await browser.submit("/account/settings/app-passwords/\(newID)/delete")
            #expect(revoked.status == 200 && revoked.body.contains("id=\"notice\"") && revoked.body.contains("was revoked"), "\(revoked.status)")
            PageClient.expectPageHeaders(revoked)
            #expect(!Self.rowIDs("app-passwords", in: revoked.body).contains(newID))
            #expect(try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": password, "service": "imap"]).status == 401)
            let again = try await browser.submit("/account/settings/app-passwords/\(newID)/delete")
            #expect(again.status == 404 && again.body.contains("data-code=\"not_found\""))

            // Devices: forget one, then all.
            let second = try await d.call("POST", "/v1/login/finish", json: [
                "challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[1], "remember": true,
            ])
            #expect(second.status == 200)
            let deviceIDs = Self.rowIDs("devices", in: try await browser.get(Self.page).body)
            #expect(deviceIDs.count == 2)
            let forgot = try await browser.submit("/account/settings/devices/\(deviceIDs[0])/forget")
            #expect(forgot.status == 200 && Self.rowIDs("devices", in: forgot.body) == [deviceIDs[1]])
            let forgotAll = try await browser.submit("/account/settings/devices/forget-all")
            #expect(forgotAll.status == 200 && forgotAll.body.contains("id=\"no-devices\""))
            #expect((try await d.call("GET", "/v1/me/devices", headers: ["Gatehouse-Session": token])["devices"] as? [Any])?.count == 0)
            #expect(Self.events(in: forgotAll.body).contains("All remembered devices were forgotten"))
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
            let browser = Self.browser(d, session: token)
            let page = try await browser.get(Self.page)
            let ids = Self.rowIDs("app-passwords", in: page.body)
            #expect(ids.count == 1)
            #expect(page.body.contains("action=\"/account/settings/app-passwords/\(ids[0])/reveal\"") && page.body.contains("reveal\""))
            let shown = try await browser.submit("/account/settings/app-passwords/\(ids[0])/reveal")
            #expect(shown.status == 200)
            PageClient.expectPageHeaders(shown)
            #expect(PageClient.first(#"<span class="secret" id="revealed-password">([^<]+)</span>"#, in: shown.body) == e.appPassword)
            #expect(shown.body.contains("id=\"copy\" data-copy=\"revealed-password\""))
            #expect(shown.body.contains("<script src=\"/account/assets/copy.js\">"))
            // Shown once: the next GET does not carry it.
            #expect(!(try await browser.get(Self.page).body.contains(e.appPassword)))

            // The enrolment's session has no recent second step: refused in words.
            let stale = Self.browser(d, session: e.token)
            _ = try await stale.get(Self.page)
            let refused = try await stale.submit("/account/settings/app-passwords/\(ids[0])/reveal")
            #expect(refused.status == 403 && refused.body.contains("data-code=\"reauthentication_required\""))
            #expect(refused.body.contains("needs a recent sign-in") && !refused.body.contains(e.appPassword))

            // A domain that does not allow revealing: no eyeball, and a post is refused.
            let plain = "plain-\(UUID().uuidString.prefix(6).lowercased())@example.org"
            let p = try await AccountFeatureTests.enrolThroughAPI(d, plain)
            let plainToken = try await d.signIn(plain, secret: p.secret, offset: 1)
            let plainBrowser = Self.browser(d, session: plainToken)
            let plainPage = try await plainBrowser.get(Self.page)
            let plainIDs = Self.rowIDs("app-passwords", in: plainPage.body)
            #expect(plainIDs.count == 1 && !plainPage.body.contains("/reveal\""))
            let notAllowed = try await plainBrowser.submit("/account/settings/app-passwords/\(plainIDs[0])/reveal")
            #expect(notAllowed.status == 403 && notAllowed.body.contains("does not allow showing app passwords"))
            #expect(!notAllowed.body.contains(p.appPassword) && !notAllowed.body.contains("id=\"revealed-password\""))
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
            let browser = Self.browser(d, session: mine)
            let page = try await browser.get(Self.page)
            let rows = Self.rowIDs("sessions", in: page.body)
            #expect(Set(rows) == Set([mineID, firstID, secondID, enrolmentID]) && rows.count == 4)
            // The current row has no sign-out button.
            #expect(page.body.contains("<tr data-id=\"\(mineID)\" class=\"current\">"))
            #expect(!page.body.contains("/account/settings/sessions/\(mineID)/sign-out"))
            #expect(page.body.contains("/account/settings/sessions/\(firstID)/sign-out") && page.body.contains("id=\"sign-out-others\""))

            // Without CSRF nothing happens.
            #expect(try await browser.post("/account/settings/sessions/\(firstID)/sign-out", ["x": "1"]).status == 403)
            #expect(try await d.auth(others[0]).status == 204)

            let one = try await browser.submit("/account/settings/sessions/\(firstID)/sign-out")
            #expect(one.status == 200 && one.body.contains("That session was signed out."))
            #expect(try await d.within(.seconds(2)) { try await d.auth(others[0]).status == 401 } != nil)
            #expect(try await d.auth(others[1]).status == 204)
            #expect(try await d.auth(mine).status == 204)
            #expect(!Self.rowIDs("sessions", in: one.body).contains(firstID))

            // The current one is not signed out from its own row.
            let own = try await browser.submit("/account/settings/sessions/\(mineID)/sign-out")
            #expect(own.status == 400 && own.body.contains("id=\"error\""))
            #expect(try await d.auth(mine).status == 204)

            let rest = try await browser.submit("/account/settings/sessions/sign-out-others")
            #expect(rest.status == 200 && rest.body.contains("This device stays signed in."))
            #expect(try await d.within(.seconds(2)) {
                let second = try await d.auth(others[1]).status, enrolment = try await d.auth(e.token).status
                return second == 401 && enrolment == 401
            } != nil)
            #expect(try await d.auth(mine).status == 204)
            #expect(Self.rowIDs("sessions", in: rest.body) == [mineID])
            #expect(!rest.body.contains("id=\"sign-out-others\""))
            #expect(Self.events(in: rest.body).first == "Signed out everywhere else (2 other sessions)")
        }
    }

    @Test("new backup codes are shown once with print and download; two-step off needs a code and is hidden when enforced")
    func backupCodesAndTurnOff() async throws {
        try await Deployment.with { d in
            let domain = "off-\(UUID().uuidString.prefix(6).lowercased()).example"
            let user = "off@\(domain)"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let token = try await d.signIn(user, secret: e.secret, offset: 1)
            let browser = Self.browser(d, session: token)
            _ = try await browser.get(Self.page)

            let fresh = try await browser.submit("/account/settings/backup-codes")
            #expect(fresh.status == 200)
            PageClient.expectPageHeaders(fresh)
            let codes = PageClient.all(#"<li>([2-9a-z]{5}-[2-9a-z]{5})</li>"#, in: fresh.body)
            #expect(codes.count == 10)
            #expect(fresh.body.contains("<ol class=\"codes\" id=\"backup-codes\">"))
            #expect(fresh.body.contains("id=\"print\" data-print") && fresh.body.contains("<script src=\"/account/assets/print.js\">"))
            #expect(fresh.body.contains("id=\"download\" download=\"backup-codes.txt\" href=\"data:text/plain;charset=utf-8,"))
            #expect(!(try await browser.get(Self.page).body.contains(codes[0])))
            let old = try await d.call("POST", "/v1/login/finish", json: ["challenge": try await d.challenge(for: user), "method": "backup_code", "code": e.codes[0]])
            #expect(old.status == 401)

            // Enforced: no way to turn it off on the page, and a post is refused.
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "enforced"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let enforced = try await browser.get(Self.page)
            #expect(enforced.body.contains("id=\"two-step-required\"") && !enforced.body.contains("id=\"turn-off\""))
            #expect(try await browser.submit("/account/settings/two-step/off", ["code": codes[0]]).status == 403)
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional"]).status == 200)
            try await Task.sleep(for: .milliseconds(200))

            // A wrong code: the page again with the error, still on.
            let wrong = try await browser.submit("/account/settings/two-step/off", ["code": "000000"])
            #expect(wrong.status == 401 && wrong.body.contains("data-code=\"invalid_code\"") && wrong.body.contains("id=\"two-step-status\">On"))
            let blank = try await browser.submit("/account/settings/two-step/off", ["code": " "])
            #expect(blank.status == 400 && blank.body.contains("id=\"error\""))
            #expect(try await browser.post("/account/settings/two-step/off", ["code": codes[1]]).status == 403)
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
            #expect((me["two_step"] as? [String: Any])?["enabled"] as? Bool == true)

            let off = try await browser.submit("/account/settings/two-step/off", ["code": codes[1]])
            #expect(off.status == 200 && off.body.contains("id=\"two-step-status\">Off") && off.body.contains("Two-step verification is off."))
            #expect(off.body.contains("href=\"/account/enroll\" id=\"turn-on\""))
            #expect(Self.rowIDs("app-passwords", in: off.body).isEmpty && !off.body.contains("id=\"create-app-password\""))
            #expect(Self.events(in: off.body).contains("Two-step verification was turned off"))
            d.expectLogsClean(of: codes + e.codes + [token])
        }
    }
}
