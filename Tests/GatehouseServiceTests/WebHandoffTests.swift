import Foundation
import GatehouseService
import GatehouseTesting
import Testing

/// The webmail hand-off and the second-step page at the HTTP level: the return allow-list (no
/// open redirect), single-use tickets, cookies, CSRF and the headers every page carries. The same
/// flows in a real browser are ``BrowserTests``.
@Suite("Web pages: hand-off, second step, CSRF, headers", .timeLimit(.minutes(3)))
struct WebHandoffTests {
    static let returnURLs = "https://mail.example.org/webmail/,/portal/home"
    static let environment = ["GATEHOUSE_WEB_RETURN_URLS": returnURLs]

    static func settings() throws -> WebSettings {
        var configuration = try GatehouseConfiguration.load(environment: environment)
        configuration.web.demo = false
        return configuration.web
    }

    @Test(
        "return addresses inside the allow-list are accepted",
        arguments: [
            "https://mail.example.org/webmail/", "https://mail.example.org/webmail/inbox?folder=INBOX#top",
            "HTTPS://MAIL.EXAMPLE.ORG/webmail/inbox", "/portal/home", "/portal/home?tab=1",
        ]
    )
    func allowed(_ address: String) throws {
        #expect(try Self.settings().allowsReturn(to: address, demo: false))
    }

    @Test(
        "everything else is refused: other hosts, ports, schemes, user info, dot segments, encoded tricks",
        arguments: [
            "https://evil.example/", "//evil.example/webmail/", "https://mail.example.org.evil.example/webmail/",
            "https://mail.example.org@evil.example/webmail/", "https://evil.example@mail.example.org/webmail/",
            "http://mail.example.org/webmail/", "https://mail.example.org:8443/webmail/", "https://mail.example.org/webmail",
            "https://mail.example.org/webmailer/", "https://mail.example.org/webmail/../admin", "https://mail.example.org/webmail/%2e%2e/admin",
            "https://mail.example.org/webmail//evil.example", "https://mail.example.org\\@evil.example/webmail/", "javascript:alert(1)",
            "/portal/homepage", "/portal/home/../../v1", "/demo/inbox", "", " https://mail.example.org/webmail/", "/portal/home\u{0}",
        ]
    )
    func refused(_ address: String) throws {
        #expect(try !Self.settings().allowsReturn(to: address, demo: false))
    }

    @Test("a bad allow-list entry stops the node from starting, with the variable named")
    func badConfiguration() {
        for entry in ["mail.example.org/webmail/", "https://mail.example.org/webmail/?x=1", "ftp://mail.example.org/", "//evil/"] {
            #expect(throws: ServiceError.self) { try GatehouseConfiguration.load(environment: ["GATEHOUSE_WEB_RETURN_URLS": entry]) }
        }
    }

    /// A hand-off ticket for `user` to `returnTo`; the reply.
    static func handoff(_ d: Deployment, _ user: String, returnTo: String, key: String? = "frontend") async throws -> Deployment.Reply {
        try await d.call("POST", "/v1/login/handoff", key: key, json: ["user": user, "return_to": returnTo, "client_ip": "192.0.2.7"])
    }

    @Test("hand-off: the API key is required, the return address must be allowed, the ticket signs in once")
    func handoffSignsIn() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let user = "plain-\(UUID().uuidString.prefix(8))@example.org"
            #expect(try await Self.handoff(d, user, returnTo: "https://mail.example.org/webmail/", key: nil).status == 401)
            #expect(try await Self.handoff(d, user, returnTo: "https://mail.example.org/webmail/", key: "verify").status == 403)
            for bad in ["https://evil.example/", "//evil.example/", "https://mail.example.org/webmail/../x"] {
                let refused = try await Self.handoff(d, user, returnTo: bad)
                #expect(refused.status == 400 && refused.code == "invalid_request", "\(bad): \(refused.json)")
            }
            let made = try await Self.handoff(d, user, returnTo: "https://mail.example.org/webmail/inbox")
            #expect(made.status == 201, "\(made.json)")
            let url = try #require(made["url"] as? String)
            #expect(url.hasPrefix("/account/continue?ticket="))
            #expect(made["expires_at"] is String)

            // A user without two-step under an optional policy is signed in straight away.
            let browser = PageClient(base: d.node.baseURL)
            let landed = try await browser.get(url)
            #expect(landed.status == 303)
            #expect(landed.location == "https://mail.example.org/webmail/inbox")
            let token = try #require(browser.cookies["gatehouse_session"])
            let sessionCookie = landed.setCookie("gatehouse_session") ?? ""
            #expect(sessionCookie.contains("HttpOnly") && sessionCookie.contains("SameSite=Lax"), "\(landed.setCookies)")
            #expect(try await d.auth(token).status == 204)

            // The ticket is single-use.
            let again = try await PageClient(base: d.node.baseURL).get(url)
            #expect(again.status == 401)
            #expect(again.errorCode == "challenge_expired")
            // A made-up ticket is the same page.
            let madeUp = try await PageClient(base: d.node.baseURL).get("/account/continue?ticket=" + String(repeating: "A", count: 43))
            #expect(madeUp.status == 401 && madeUp.errorCode == "challenge_expired")
            d.expectLogsClean(of: [token, String(url.dropFirst("/account/continue?ticket=".count))])
        }
    }

    @Test("second step page: one-time-code input, CSRF required, wrong code in words, right code returns signed in")
    func secondStep() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, secret) = try await d.enrolledUser()
            let made = try await Self.handoff(d, user, returnTo: "/portal/home")
            let browser = PageClient(base: d.node.baseURL)
            let landed = try await browser.get(try #require(made["url"] as? String))
            #expect(landed.status == 303 && landed.location == "/account/second-step")
            #expect(browser.cookies["gatehouse_challenge"] != nil)
            #expect(browser.cookies["gatehouse_session"] == nil)

            let page = try await browser.get("/account/second-step")
            #expect(page.status == 200)
            #expect(page.body.contains(#"autocomplete="one-time-code""#))
            #expect(page.body.contains(#"inputmode="numeric""#))
            #expect(page.body.contains(#"id="remember""#))
            #expect(page.body.contains(#"id="email-me""#), "a verified recovery address offers emailed codes")
            #expect(page.body.contains(#"id="use-backup""#) == false, "an imported user has no backup codes")
            PageClient.expectPageHeaders(page)
            #expect(!page.body.contains("<script>"), "no inline script")

            // Without the CSRF field nothing is checked or counted.
            try await d.freshStep()
            let forged = try await browser.post("/account/second-step", ["method": "totp", "code": try await d.code(secret: secret)])
            #expect(forged.status == 403 && forged.errorCode == "csrf_failed")
            let csrf = try #require(page.csrf)
            // A token for another browser's cookie does not pass either.
            let other = PageClient(base: d.node.baseURL)
            _ = try await other.get(try #require(try await Self.handoff(d, user, returnTo: "/portal/home")["url"] as? String))
            let otherCSRF = try #require(try await other.get("/account/second-step").csrf)
            #expect(otherCSRF != csrf)
            let crossed = try await browser.post("/account/second-step", ["csrf": otherCSRF, "method": "totp", "code": "123456"])
            #expect(crossed.status == 403 && crossed.errorCode == "csrf_failed")
            let status = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect((status["throttle"] as? [String: Any])?["failures"] as? Int == 0, "refused forms count no failure: \(status.json)")

            let right = try await d.code(secret: secret)
            let wrong = right == "000000" ? "000001" : "000000"
            let refused = try await browser.post("/account/second-step", ["csrf": csrf, "method": "totp", "code": wrong])
            #expect(refused.status == 401 && refused.errorCode == "invalid_code")
            #expect(refused.body.contains("didn&#39;t work") || refused.body.contains("didn't work"))

            let done = try await browser.post("/account/second-step", ["csrf": csrf, "method": "totp", "code": right, "remember": "1"])
            #expect(done.status == 303 && done.location == "/portal/home", "\(done.status) \(done.body.prefix(300))")
            let token = try #require(browser.cookies["gatehouse_session"])
            #expect(try await d.auth(token).status == 204)
            #expect(browser.cookies["gatehouse_remember"] != nil)
            #expect(browser.cookies["gatehouse_challenge"] == nil)

            // Remembered: the next hand-off signs in without a second step, with a rotated token.
            let remembered = browser.cookies["gatehouse_remember"]
            let next = try await browser.get(try #require(try await Self.handoff(d, user, returnTo: "/portal/home")["url"] as? String))
            #expect(next.status == 303 && next.location == "/portal/home")
            #expect(browser.cookies["gatehouse_remember"] != remembered)
            d.expectLogsClean(of: [token, right])
        }
    }

    @Test("throttling shows the wait in words; an expired step says so")
    func throttledAndExpired() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, _) = try await d.enrolledUser()
            let browser = PageClient(base: d.node.baseURL)
            _ = try await browser.get(try #require(try await Self.handoff(d, user, returnTo: "/portal/home")["url"] as? String))
            let csrf = try #require(try await browser.get("/account/second-step").csrf)
            var last: PageClient.Page?
            for _ in 0..<7 {
                last = try await browser.post("/account/second-step", ["csrf": csrf, "method": "totp", "code": "000000"])
                if last?.status == 429 { break }
            }
            let throttled = try #require(last)
            #expect(throttled.status == 429 && throttled.errorCode == "rate_limited", "\(throttled.status)")
            #expect(throttled.body.contains("Too many attempts. Wait"))

            // Five minutes (and the verifier's 10 s of leeway) later the challenge has expired.
            d.clockOffset?.advance(by: 311)
            let expired = try await browser.post("/account/second-step", ["csrf": csrf, "method": "totp", "code": "000000"])
            #expect(expired.status == 401 && expired.errorCode == "challenge_expired")
            #expect(browser.cookies["gatehouse_challenge"] == nil)
        }
    }

    @Test("authenticator users with a verified recovery address are offered emailed codes, unless the domain disallows email")
    func emailOfferedToAuthenticatorUsers() async throws {
        try await Deployment.with { d in
            let (user, _) = try await d.enrolledUser()
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(start["methods"] as? [String] == ["totp", "email"], "\(start.json)")
            let domain = String(user.split(separator: "@").last!)
            let policy = try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "methods": ["totp"]])
            #expect(policy.status == 200, "\(policy.json)")
            let after = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(after["methods"] as? [String] == ["totp"], "\(after.json)")
            let challenge = ((after["challenge"] as? [String: Any])?["token"] as? String) ?? ""
            let mail = try await d.call("POST", "/v1/login/email-code", json: ["challenge": challenge])
            #expect(mail.status == 403 && mail.code == "method_not_allowed")
        }
    }

    @Test("pages refuse what is not a form, and answer unknown paths without a stack trace")
    func badInput() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, _) = try await d.enrolledUser()
            let browser = PageClient(base: d.node.baseURL)
            _ = try await browser.get(try #require(try await Self.handoff(d, user, returnTo: "/portal/home")["url"] as? String))
            let csrf = try #require(try await browser.get("/account/second-step").csrf)
            let json = try await browser.post("/account/second-step", ["csrf": csrf], headers: ["Content-Type": "application/json"])
            #expect(json.status == 400)
            let huge = try await browser.post("/account/second-step", ["csrf": csrf, "code": String(repeating: "1", count: 20_000)])
            #expect(huge.status == 400)
            let stranger = PageClient(base: d.node.baseURL)
            stranger.setCookie("gatehouse_csrf", try #require(browser.cookies["gatehouse_csrf"]))
            let noChallenge = try await stranger.post("/account/second-step", ["csrf": csrf, "method": "totp", "code": "123456"])
            #expect(noChallenge.status == 401 && noChallenge.errorCode == "challenge_expired")
            let demoOff = try await browser.get("/demo/login")
            #expect(demoOff.status == 404, "the stand-in webmail is off unless enabled")
        }
    }
}
