import Foundation
import GatehouseCore
import GatehouseService
import GatehouseTesting
import Testing

/// The passkey parts of the pages over HTTP, without a browser: the settings card (options as
/// JSON, registration, removal) and the second step's passkey button and post, with
/// GatehouseTesting's authenticators holding real keys in place of the browser's WebAuthn. The
/// node's relying party is `example.org` with the origin `https://example.org`, as in
/// ``PasskeyTests``; the same flows with Chromium's virtual authenticator are ``BrowserTests``.
@Suite("Passkey pages: settings card, second step", .timeLimit(.minutes(3)))
struct PasskeyPagesTests {
    static let environment = PasskeyTests.environment.merging(WebHandoffTests.environment) { $1 }
    static let settings = "/account/settings"

    /// Allows or disallows passkeys in `user`'s domain.
    static func allowPasskeys(_ d: Deployment, _ user: String, _ allowed: Bool = true) async throws {
        let domain = String(user.split(separator: "@").last!)
        let methods = allowed ? ["totp", "email", "passkey"] : ["totp", "email"]
        let policy = try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "methods": methods])
        try #require(policy.status == 200, "\(policy.json)")
    }

    /// A user with the authenticator on, signed in with it (a fresh sign-in), and a browser
    /// holding that session.
    static func signedIn(_ d: Deployment) async throws -> (user: String, session: String, browser: PageClient) {
        let (user, secret) = try await d.enrolledUser()
        let session = try await d.signIn(user, secret: secret)
        let browser = PageClient(base: d.node.baseURL)
        browser.setCookie("gatehouse_session", session)
        return (user, session, browser)
    }

    static func json(_ page: PageClient.Page) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(page.body.utf8))) as? [String: Any]) ?? [:]
    }

    /// The `public_key` of a JSON answer, and its challenge.
    static func publicKey(_ page: PageClient.Page, sourceLocation: SourceLocation = #_sourceLocation) throws -> (options: [String: Any], challenge: [UInt8]) {
        #expect(page.status == 200, "\(page.status) \(page.body.prefix(300))", sourceLocation: sourceLocation)
        #expect(page.header("content-type") == "application/json; charset=utf-8", sourceLocation: sourceLocation)
        #expect(page.header("cache-control") == "no-store", sourceLocation: sourceLocation)
        let options = try #require(json(page)["public_key"] as? [String: Any], "\(page.body.prefix(300))", sourceLocation: sourceLocation)
        let challenge = try #require((options["challenge"] as? String).flatMap(Base64URL.decode), sourceLocation: sourceLocation)
        return (options, challenge)
    }

    /// A registration response by `key` to `challenge`: (client_data_json, attestation_object).
    static func registration(_ key: TestAuthenticator, challenge: [UInt8], origin: String = WebAuthnFixture.origin) -> (String, String) {
        let clientData = WebAuthnFixture.clientDataJSON(type: "webauthn.create", challenge: challenge, origin: origin)
        let authData = WebAuthnFixture.authenticatorData(
            flags: [.userPresent, .userVerified], signCount: 0, attested: (key.aaguid, key.credentialID, key.coseKeyBytes)
        )
        let attestation = WebAuthnFixture.attestationObject(fmt: "none", attStmt: .map([]), authData: authData)
        return (Base64URL.encode(clientData), Base64URL.encode(attestation))
    }

    /// The passkey table's row ids.
    static func rows(_ page: PageClient.Page) -> [String] { SettingsPagesTests.rowIDs("passkeys", in: page.body) }

    /// The passkey table's "last used" cells.
    static func lastUsed(_ page: PageClient.Page) -> [String] {
        guard let start = page.body.range(of: "<table id=\"passkeys\""), let end = page.body[start.upperBound...].range(of: "</table>") else { return [] }
        return PageClient.all(#"<td class="last-used">([^<]*)</td>"#, in: String(page.body[start.lowerBound..<end.upperBound]))
    }

    @Test("the passkey card is there only where the domain allows passkeys and two-step is on; passkey.js is served")
    func cardWhereAllowed() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, _, browser) = try await Self.signedIn(d)
            let before = try await browser.get(Self.settings)
            #expect(before.status == 200)
            #expect(!before.has(id: "passkeys") && !before.has(id: "add-passkey-form") && !before.body.contains("passkey.js"))

            try await Self.allowPasskeys(d, user)
            let page = try await browser.get(Self.settings)
            PageClient.expectPageHeaders(page)
            #expect(page.has(id: "passkeys") && page.has(id: "no-passkeys"))
            #expect(page.has(id: "add-passkey-form") && page.has(id: "passkey-name") && page.has(id: "add-passkey") && page.has(id: "passkey-status"))
            #expect(page.body.contains(#"<label for="passkey-name">Name, e.g. “Laptop” or “Phone”</label>"#))
            #expect(page.attribute("action", id: "add-passkey-form") == "/account/settings/passkeys")
            #expect(page.attribute("data-options", id: "add-passkey-form") == "/account/settings/passkeys/options")
            #expect(page.body.contains(#"<script src="/account/assets/passkey.js"></script>"#))
            #expect(!page.body.contains("<script>"), "no inline script")

            // Two-step off: no card, in the same domain.
            let plain = "plain-\(UUID().uuidString.prefix(8))@example.org"
            let start = try await d.call("POST", "/v1/login/start", json: ["user": plain])
            let token = try #require((start["session"] as? [String: Any])?["token"] as? String, "\(start.json)")
            let other = PageClient(base: d.node.baseURL)
            other.setCookie("gatehouse_session", token)
            let off = try await other.get(Self.settings)
            #expect(off.status == 200 && off.text(id: "two-step-status") == "Off")
            #expect(!off.has(id: "passkeys") && !off.has(id: "add-passkey-form"))

            let script = try await browser.get("/account/assets/passkey.js")
            #expect(script.status == 200 && script.header("content-type") == "text/javascript; charset=utf-8")
            #expect(script.body.contains("navigator.credentials.create") && script.body.contains("navigator.credentials.get"))
        }
    }

    @Test("options and registration posts without the CSRF field are refused with 403 and store nothing")
    func csrfRefused() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, session, browser) = try await Self.signedIn(d)
            try await Self.allowPasskeys(d, user)
            let page = try await browser.get(Self.settings)
            let csrf = try #require(page.csrf)

            let bare = try await browser.post("/account/settings/passkeys/options")
            #expect(bare.status == 403 && bare.header("content-type") == "application/json; charset=utf-8", "\(bare.status) \(bare.body.prefix(200))")
            #expect(Self.json(bare)["code"] as? String == "csrf_failed")
            #expect((Self.json(bare)["error"] as? String ?? "").contains("reload the page"))
            let other = browser.copy()
            other.setCookie("gatehouse_csrf", String(repeating: "A", count: 22))
            let crossed = try await other.post("/account/settings/passkeys/options", ["csrf": csrf])
            #expect(crossed.status == 403 && Self.json(crossed)["code"] as? String == "csrf_failed")

            let key = try TestAuthenticator.p256()
            let (clientData, attestation) = Self.registration(key, challenge: try WebAuthnFixture.challenge())
            let forged = try await browser.post("/account/settings/passkeys", [
                "name": "Laptop", "client_data_json": clientData, "attestation_object": attestation,
            ])
            #expect(forged.status == 403 && forged.errorCode == "csrf_failed")

            // The refused options started no registration: a response with the right token has
            // nothing to answer.
            let orphan = try await browser.post("/account/settings/passkeys", [
                "csrf": csrf, "name": "Laptop", "client_data_json": clientData, "attestation_object": attestation,
            ])
            #expect(orphan.status == 401 && orphan.errorCode == "challenge_expired", "\(orphan.status)")
            #expect(orphan.attribute("value", id: "passkey-name") == "Laptop", "the name entered is kept")
            // Without the browser's answer (no WebAuthn, no script): said, nothing stored.
            let empty = try await browser.post("/account/settings/passkeys", ["csrf": csrf, "name": "Laptop", "client_data_json": "", "attestation_object": ""])
            #expect(empty.status == 400 && empty.errorCode == "invalid_request" && empty.body.contains("sent no passkey"))

            let listed = try await d.call("GET", "/v1/me/passkeys", headers: ["Gatehouse-Session": session])
            #expect((listed["passkeys"] as? [Any])?.count == 0, "\(listed.json)")
        }
    }

    @Test("a passkey registered through the page's posts gets a row; a wrong origin is refused; remove works; a stale sign-in is asked to sign in again")
    func registerAndRemove() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, session, browser) = try await Self.signedIn(d)
            try await Self.allowPasskeys(d, user)
            let csrf = try #require(try await browser.get(Self.settings).csrf)

            let (options, challenge) = try Self.publicKey(try await browser.post("/account/settings/passkeys/options", ["csrf": csrf]))
            #expect((options["rp"] as? [String: Any])?["id"] as? String == WebAuthnFixture.rpID)
            #expect((options["user"] as? [String: Any])?["name"] as? String == user)
            #expect((options["excludeCredentials"] as? [Any])?.isEmpty == true)
            #expect(options["attestation"] as? String == "none")

            let key = try TestAuthenticator.p256()
            let id = Base64URL.encode(key.credentialID)
            let (clientData, attestation) = Self.registration(key, challenge: challenge)
            let added = try await browser.post("/account/settings/passkeys", [
                "csrf": csrf, "name": "Laptop", "client_data_json": clientData, "attestation_object": attestation,
            ])
            #expect(added.status == 303 && added.location == "/account/settings?done=passkey-added", "\(added.status) \(added.body.prefix(300))")
            let page = try await browser.follow(added)
            #expect(Self.rows(page) == [id])
            #expect(page.body.contains(#"<td class="name">Laptop</td>"#))
            #expect(Self.lastUsed(page) == ["Never used"])
            #expect(page.text(id: "notice")?.hasPrefix("Passkey added.") == true)
            #expect(SettingsPagesTests.events(in: page.body).contains("The passkey “Laptop” was added"))

            // The second one is excluded from the next options; a response from another origin is
            // refused in words and adds nothing.
            let (again, secondChallenge) = try Self.publicKey(try await browser.post("/account/settings/passkeys/options", ["csrf": csrf]))
            #expect((again["excludeCredentials"] as? [[String: Any]])?.first?["id"] as? String == id)
            let (badData, badAttestation) = Self.registration(try TestAuthenticator.p256(), challenge: secondChallenge, origin: "https://evil.example")
            let refused = try await browser.post("/account/settings/passkeys", [
                "csrf": csrf, "name": "Phone", "client_data_json": badData, "attestation_object": badAttestation,
            ])
            #expect(refused.status == 400 && refused.errorCode == "invalid_request", "\(refused.status)")
            #expect(refused.text(id: "error")?.contains("origin") == true)
            #expect(Self.rows(refused) == [id])

            // Remove: refused without the token, then gone.
            let forged = try await browser.post("/account/settings/passkeys/\(id)/remove")
            #expect(forged.status == 403 && forged.errorCode == "csrf_failed")
            let removed = try await browser.post("/account/settings/passkeys/\(id)/remove", ["csrf": csrf])
            #expect(removed.status == 303 && removed.location == "/account/settings?done=passkey-removed")
            let after = try await browser.follow(removed)
            #expect(Self.rows(after).isEmpty && after.has(id: "no-passkeys"))
            #expect(after.text(id: "notice")?.contains("passkey was removed") == true)
            let listed = try await d.call("GET", "/v1/me/passkeys", headers: ["Gatehouse-Session": session])
            #expect((listed["passkeys"] as? [Any])?.count == 0)
            let twice = try await browser.post("/account/settings/passkeys/\(id)/remove", ["csrf": csrf])
            #expect(twice.status == 404 && twice.errorCode == "not_found")

            // Eleven minutes after the sign-in, adding a passkey needs a new one: said in JSON.
            d.clockOffset?.advance(by: 660)
            let stale = try await browser.post("/account/settings/passkeys/options", ["csrf": csrf])
            #expect(stale.status == 403 && Self.json(stale)["code"] as? String == "reauthentication_required", "\(stale.status) \(stale.body)")
            #expect((Self.json(stale)["error"] as? String ?? "").contains("sign in again"))
        }
    }

    @Test("the second step offers a passkey to a user with one; it signs in like a code; a tampered signature is a wrong answer")
    func secondStep() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, session, _) = try await Self.signedIn(d)
            try await Self.allowPasskeys(d, user)
            let key = try TestAuthenticator.p256()
            #expect(try await PasskeyTests.register(d, session: session, key).status == 201)
            let id = Base64URL.encode(key.credentialID)

            // Someone without a passkey, in the same domain: no button.
            let (plain, _) = try await d.enrolledUser()
            let without = PageClient(base: d.node.baseURL)
            _ = try await without.get(try #require(try await WebHandoffTests.handoff(d, plain, returnTo: "/portal/home")["url"] as? String))
            let plainPage = try await without.get("/account/second-step")
            #expect(plainPage.status == 200 && plainPage.has(id: "code-form"))
            #expect(!plainPage.has(id: "use-passkey") && !plainPage.has(id: "passkey-form") && !plainPage.body.contains("passkey.js"))

            let browser = PageClient(base: d.node.baseURL)
            _ = try await browser.get(try #require(try await WebHandoffTests.handoff(d, user, returnTo: "/portal/home")["url"] as? String))
            let page = try await browser.get("/account/second-step")
            PageClient.expectPageHeaders(page)
            #expect(page.has(id: "use-passkey") && page.text(id: "use-passkey") == "Use a passkey")
            #expect(page.attribute("action", id: "passkey-form") == "/account/second-step/passkey")
            #expect(page.body.contains(#"<script src="/account/assets/passkey.js"></script>"#))
            // The code form stays the default, and a passkey is never a code form.
            #expect(page.has(id: "code-form") && page.body.contains(#"name="method" value="totp""#))
            let asked = try await browser.get("/account/second-step?method=passkey")
            #expect(asked.body.contains(#"name="method" value="totp""#) && asked.has(id: "use-passkey"))
            let csrf = try #require(page.csrf)

            let bare = try await browser.post("/account/second-step/passkey-options")
            #expect(bare.status == 403 && Self.json(bare)["code"] as? String == "csrf_failed")

            /// An assertion for fresh options, as passkey.js would post it.
            func assertion(signCount: UInt32, tamper: Bool = false) async throws -> (clientData: String, authData: String, signature: String) {
                let (options, challenge) = try Self.publicKey(try await browser.post("/account/second-step/passkey-options", ["csrf": csrf]))
                #expect(options["rpId"] as? String == WebAuthnFixture.rpID)
                #expect((options["allowCredentials"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
                let clientData = WebAuthnFixture.clientDataJSON(type: "webauthn.get", challenge: challenge)
                let authData = WebAuthnFixture.authenticatorData(flags: [.userPresent, .userVerified], signCount: signCount)
                var signature = try key.sign(authenticatorData: authData, clientDataJSON: clientData)
                if tamper { signature[signature.count / 2] ^= 0x01 }
                return (Base64URL.encode(clientData), Base64URL.encode(authData), Base64URL.encode(signature))
            }

            let bad = try await assertion(signCount: 1, tamper: true)
            let forged = try await browser.post("/account/second-step/passkey", [
                "credential_id": id, "client_data_json": bad.clientData, "authenticator_data": bad.authData, "signature": bad.signature,
            ])
            #expect(forged.status == 403 && forged.errorCode == "csrf_failed")
            let tampered = try await browser.post("/account/second-step/passkey", [
                "csrf": csrf, "credential_id": id, "client_data_json": bad.clientData, "authenticator_data": bad.authData,
                "signature": bad.signature, "remember": "",
            ])
            #expect(tampered.status == 401 && tampered.errorCode == "invalid_code", "\(tampered.status) \(tampered.body.prefix(300))")
            #expect(tampered.text(id: "error")?.hasPrefix("Your passkey was not accepted.") == true)
            #expect(tampered.has(id: "use-passkey") && tampered.has(id: "code-form"))
            #expect(browser.cookies["gatehouse_session"] == nil)
            let garbled = try await browser.post("/account/second-step/passkey", ["csrf": csrf, "credential_id": id, "client_data_json": "***"])
            #expect(garbled.status == 400 && garbled.errorCode == "invalid_request")

            let good = try await assertion(signCount: 1)
            let done = try await browser.post("/account/second-step/passkey", [
                "csrf": csrf, "credential_id": id, "client_data_json": good.clientData, "authenticator_data": good.authData,
                "signature": good.signature, "remember": "1",
            ])
            #expect(done.status == 303 && done.location == "/portal/home", "\(done.status) \(done.body.prefix(300))")
            let token = try #require(browser.cookies["gatehouse_session"])
            #expect(try await d.auth(token).status == 204)
            let verified = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
            #expect(verified["amr"] as? [String] == ["pwd", "passkey"], "\(verified.json)")
            #expect(browser.cookies["gatehouse_remember"] != nil)
            #expect(browser.cookies["gatehouse_challenge"] == nil)

            // The settings page says how this session signed in, and when the passkey was used.
            let settings = try await browser.get(Self.settings)
            #expect(settings.body.contains(#"<td class="how">Password and passkey</td>"#))
            #expect(Self.rows(settings) == [id])
            #expect(Self.lastUsed(settings).count == 1 && Self.lastUsed(settings).first?.hasSuffix(" UTC") == true, "\(Self.lastUsed(settings))")
            #expect(SettingsPagesTests.events(in: settings.body).contains("Signed in with a passkey"))
            #expect(SettingsPagesTests.events(in: settings.body).contains("A passkey sign-in was refused"))
            d.expectLogsClean(of: [token, good.signature, bad.signature])
        }
    }
}
