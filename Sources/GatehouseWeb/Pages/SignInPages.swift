import Foundation
import GatehouseCore
import GatehouseService
import Hummingbird

/// The hand-off landing and the second step: `/account/continue`, `/account/second-step` (a code,
/// or a passkey through `passkey.js`), `/account/sign-out`.
struct SignInPages: Sendable {
    let kit: PageKit
    var gatehouse: Gatehouse { kit.gatehouse }

    func add(to routes: RouteCollection<BasicRequestContext>) {
        routes.get("/account/continue") { request, _ in await handoff(request) }
        routes.get("/account/second-step") { request, _ in await secondStep(request) }
        routes.post("/account/second-step") { request, _ in await finish(request) }
        routes.post("/account/second-step/email") { request, _ in await emailCode(request) }
        routes.post("/account/second-step/passkey-options") { request, _ in await passkeyOptions(request) }
        routes.post("/account/second-step/passkey") { request, _ in await finishPasskey(request) }
        routes.post("/account/sign-out") { request, _ in await signOut(request) }
    }

    /// Where the browser goes once signed in: the hand-off's return address if it is still
    /// allowed, else the settings page.
    func returnAddress(_ request: Request) -> String {
        if let address = PageKit.value(request, CookieName.returnTo).flatMap({ $0.removingPercentEncoding }), gatehouse.allowsReturn(to: address) {
            return address
        }
        return "/account/settings"
    }

    /// `GET /account/continue?ticket=…`: redeems the webmail's ticket and runs the login.
    func handoff(_ request: Request) async -> Response {
        guard let ticket = request.uri.queryParameters.get("ticket") else {
            return kit.errorPage(PageError(.invalidRequest, "This link is incomplete. Sign in to your webmail again."))
        }
        do throws(ServiceError) {
            let handoff = try await gatehouse.redeemHandoff(ticket: ticket)
            let result = try await gatehouse.startLogin(
                user: handoff.user, clientIP: handoff.clientIP, userAgent: handoff.userAgent,
                rememberToken: PageKit.value(request, CookieName.remember)
            )
            let returnCookie = kit.cookie(CookieName.returnTo, handoff.returnTo.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "", maxAge: 900)
            switch result {
            case .authenticated(let session, let remember):
                var cookies = [kit.sessionCookie(session), kit.expired(CookieName.challenge)]
                if let remember { cookies.append(kit.rememberCookie(remember)) }
                return kit.redirect(handoff.returnTo, cookies: cookies)
            case .secondStep(let challenge, let expiresAt, _):
                let cookie = kit.cookie(CookieName.challenge, challenge, maxAge: Int(expiresAt - gatehouse.now))
                return kit.redirect("/account/second-step", cookies: [cookie, returnCookie])
            case .enrollmentRequired(let challenge, let expiresAt):
                let cookie = kit.cookie(CookieName.challenge, challenge, maxAge: Int(expiresAt - gatehouse.now))
                return kit.redirect("/account/enroll", cookies: [cookie, returnCookie])
            }
        } catch {
            return kit.errorPage(PageError(error))
        }
    }

    /// The second-step form for the challenge in the browser's cookie.
    func secondStep(_ request: Request, method chosen: SecondStepMethod? = nil, notice: String? = nil, error: PageError? = nil) async -> Response {
        guard let challenge = PageKit.value(request, CookieName.challenge) else {
            return kit.errorPage(PageError(ServiceError(.challengeExpired, "no challenge cookie")))
        }
        let options: SecondStepOptions
        do throws(ServiceError) { options = try await gatehouse.secondStepOptions(challenge: challenge) } catch {
            return kit.errorPage(PageError(error), cookies: [kit.expired(CookieName.challenge)])
        }
        // The form takes a code; a passkey is the button above it, beside whichever code comes first.
        let codeMethods = options.methods.filter { $0 != .passkey }
        let offerPasskey = options.methods.contains(.passkey)
        let asked = chosen ?? request.uri.queryParameters.get("method").flatMap { SecondStepMethod(rawValue: String($0)) }
        let method = asked.flatMap { codeMethods.contains($0) ? $0 : nil } ?? codeMethods.first
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = [
            "title": "Verify it's you", "user": options.user.value, "csrf": csrf.token,
            "hasMethod": method != nil, "method": method?.rawValue ?? "",
            "offerPasskey": offerPasskey, "noMethod": method == nil && !offerPasskey,
            "scripts": offerPasskey ? ["passkey.js"] : [String](),
            "numeric": method != .backupCode,
            "showRemember": options.rememberDays > 0, "rememberDays": options.rememberDays,
            "offerEmail": options.emailSentTo != nil,
            "emailSentTo": options.emailSentTo ?? "",
            "offerTOTP": options.methods.contains(.totp) && method != .totp,
            "offerBackup": options.methods.contains(.backupCode) && method != .backupCode,
        ]
        switch method {
        case .totp?:
            values["prompt"] = "Open your authenticator app and enter the 6-digit code it shows for this account."
            values["codeLabel"] = "Code from your authenticator app"
        case .email?:
            values["prompt"] = "We can email a 6-digit code to your recovery address \(options.emailSentTo ?? "")."
            values["codeLabel"] = "Code from the email"
        case .backupCode?:
            values["prompt"] = "Enter one of the backup codes you saved when you turned on two-step verification. Each works once."
            values["codeLabel"] = "Backup code (xxxxx-xxxxx)"
        case .passkey?, nil:
            values["prompt"] = offerPasskey ? "Use the passkey you registered for this account." : ""
        }
        if let notice { values["notice"] = notice }
        if let error { values["error"] = error.message; values["errorCode"] = error.code.name }
        return kit.page("second-step", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// `POST /account/second-step`: checks the code; signed in, the browser goes back to the webmail.
    func finish(_ request: Request) async -> Response {
        await kit.posted(request, back: "/account/second-step") { form in await finish(request, form) }
    }

    func finish(_ request: Request, _ form: Form) async -> Response {
        guard let challenge = PageKit.value(request, CookieName.challenge) else {
            return kit.errorPage(PageError(ServiceError(.challengeExpired, "no challenge cookie")))
        }
        guard let method = form["method"].flatMap(SecondStepMethod.init(rawValue:)), method != .passkey else {
            return await secondStep(request, error: PageError(.invalidRequest, "Choose how to verify."))
        }
        let code = (form["code"] ?? "").trimmingCharacters(in: .whitespaces)
        guard !code.isEmpty, code.utf8.count <= 32 else {
            return await secondStep(request, method: method, error: PageError(.invalidRequest, "Enter the code."))
        }
        return await conclude(request, method: method) { () async throws(ServiceError) -> LoginResult in
            try await gatehouse.finishLogin(
                challenge: challenge, method: method, code: code, remember: form["remember"] == "1", clientIP: nil,
                userAgent: request.headers[.userAgent].map { String($0.prefix(256)) }
            )
        }
    }

    /// The end of a second step, a code or a passkey alike: signed in, the browser gets its
    /// cookies and goes back to the webmail; refused, the page again with the error (the code
    /// form of `method`); an expired step, the message page and the challenge cookie dropped.
    func conclude(
        _ request: Request, method: SecondStepMethod?, words: (ServiceError) -> PageError = { PageError($0) },
        _ attempt: () async throws(ServiceError) -> LoginResult
    ) async -> Response {
        do throws(ServiceError) {
            let result = try await attempt()
            guard case .authenticated(let session, let remember) = result else {
                return kit.errorPage(PageError(ServiceError(.challengeExpired, "unexpected login state")))
            }
            var cookies = [kit.sessionCookie(session), kit.expired(CookieName.challenge), kit.expired(CookieName.returnTo)]
            if let remember { cookies.append(kit.rememberCookie(remember)) }
            return kit.redirect(returnAddress(request), cookies: cookies)
        } catch {
            if error.code == .challengeExpired {
                return kit.errorPage(PageError(error), cookies: [kit.expired(CookieName.challenge)])
            }
            return await secondStep(request, method: method, error: words(error))
        }
    }

    /// `POST /account/second-step/passkey-options` (from passkey.js): the options for
    /// `navigator.credentials.get()` for this sign-in, as JSON.
    func passkeyOptions(_ request: Request) async -> Response {
        await kit.posted(request, json: true) { _ in
            guard let challenge = PageKit.value(request, CookieName.challenge) else {
                return kit.jsonError(PageError(ServiceError(.challengeExpired, "no challenge cookie")))
            }
            do throws(ServiceError) {
                let options = try await gatehouse.startPasskeyLogin(challenge: challenge)
                return kit.json(#"{"public_key":"# + options.webAuthnJSON + "}")
            } catch {
                return kit.jsonError(PageError(error))
            }
        }
    }

    /// `POST /account/second-step/passkey` (`#passkey-form`, filled by passkey.js): the
    /// assertion, checked like a code.
    func finishPasskey(_ request: Request) async -> Response {
        await kit.posted(request, back: "/account/second-step") { form in
            guard let challenge = PageKit.value(request, CookieName.challenge) else {
                return kit.errorPage(PageError(ServiceError(.challengeExpired, "no challenge cookie")))
            }
            guard let id = form["credential_id"], (1...1400).contains(id.utf8.count), Base64URL.decode(id) != nil,
                  let clientData = Self.bytes(form["client_data_json"]), let authenticatorData = Self.bytes(form["authenticator_data"]),
                  let signature = Self.bytes(form["signature"])
            else {
                return await secondStep(request, error: PageError(
                    .invalidRequest, "Your browser sent no passkey answer. Use your passkey again, or enter a code."
                ))
            }
            let assertion = PasskeyAssertion(credentialID: id, clientDataJSON: clientData, authenticatorData: authenticatorData, signature: signature)
            return await conclude(request, method: nil, words: { PageError(passkey: $0) }) { () async throws(ServiceError) -> LoginResult in
                try await gatehouse.finishPasskeyLogin(
                    challenge: challenge, assertion: assertion, remember: form["remember"] == "1", clientIP: nil,
                    userAgent: request.headers[.userAgent].map { String($0.prefix(256)) }
                )
            }
        }
    }

    /// A non-empty base64url field's bytes.
    static func bytes(_ field: String?) -> [UInt8]? {
        guard let field, !field.isEmpty, let bytes = Base64URL.decode(field), !bytes.isEmpty else { return nil }
        return bytes
    }

    /// `POST /account/second-step/email`: mails a code to the recovery address.
    func emailCode(_ request: Request) async -> Response {
        await kit.posted(request, back: "/account/second-step") { _ in
            guard let challenge = PageKit.value(request, CookieName.challenge) else {
                return kit.errorPage(PageError(ServiceError(.challengeExpired, "no challenge cookie")))
            }
            do throws(ServiceError) {
                let sent = try await gatehouse.sendLoginCode(challenge: challenge)
                return await secondStep(request, method: .email, notice: "We sent a code to \(sent.sentTo). It works for 10 minutes.")
            } catch {
                return await secondStep(request, method: .email, error: PageError(error))
            }
        }
    }

    /// `POST /account/sign-out`: ends this session and forgets its cookie.
    func signOut(_ request: Request) async -> Response {
        await kit.posted(request) { _ in await signOutChecked(request) }
    }

    private func signOutChecked(_ request: Request) async -> Response {
        if let token = PageKit.value(request, CookieName.session) { try? await gatehouse.revokeSession(token) }
        let cookies = [kit.expired(CookieName.session, path: "/")]
        if gatehouse.configuration.web.demo == true { return kit.redirect("/demo/login", cookies: cookies) }
        return kit.page("message", ["title": "Signed out", "message": "You are signed out."], cookies: cookies)
    }
}
