import Foundation
import GatehouseCore
import GatehouseService
import HTTPTypes
import Hummingbird

/// Turning two-step on (`/account/enroll`), as a mail provider's settings do it: a confirmed
/// recovery email first (needed either way: password resets, a lost phone, mailed codes), then
/// the choice of authenticator app or mailed codes, then the authenticator's key, then the backup
/// codes and the IMAP/POP/SMTP app password, shown once.
///
/// The browser is the signed-in session, or — when the domain enforces two-step and the sign-in
/// found the account not enrolled — the enrolment challenge from the hand-off. Then the
/// enrolment finishes the sign-in: the session cookie is set and the last page continues to the
/// webmail's return address.
struct EnrollmentPages: Sendable {
    let kit: PageKit
    let account: AccountPrincipal
    var gatehouse: Gatehouse { kit.gatehouse }

    func add(to routes: RouteCollection<BasicRequestContext>) {
        routes.get("/account/enroll") { request, _ in await Self.run { () async throws(Stop) in try await show(request) } }
        routes.post("/account/enroll/recovery-email") { request, _ in
            await Self.run { () async throws(Stop) in try await sendRecoveryCode(request) }
        }
        routes.post("/account/enroll/recovery-email/confirm") { request, _ in
            await Self.run { () async throws(Stop) in try await confirmRecoveryEmail(request) }
        }
        routes.post("/account/enroll/totp") { request, _ in await Self.run { () async throws(Stop) in try await startTOTP(request) } }
        routes.post("/account/enroll/totp/confirm") { request, _ in
            await Self.run { () async throws(Stop) in try await confirmTOTP(request) }
        }
        routes.post("/account/enroll/email") { request, _ in await Self.run { () async throws(Stop) in try await chooseEmail(request) } }
    }

    /// A page that ends a handler early: not signed in, a bad form, two-step already on.
    struct Stop: Error {
        let response: Response
    }

    static func run(_ handler: () async throws(Stop) -> Response) async -> Response {
        do { return try await handler() } catch { return error.response }
    }

    /// What a page needs to know about the account to pick its step.
    private struct Account {
        var principal: Principal
        var status: MeStatus
        var user: UserID { principal.user }
    }

    /// The principal and its status, or the page to show instead (not signed in, two-step
    /// disabled for the domain, or already on).
    private func resolve(_ request: Request) async throws(Stop) -> Account {
        let principal: Principal
        do { principal = try account.sessionOrEnrollment(request) } catch {
            throw Stop(response: kit.errorPage(error, cookies: [kit.expired(CookieName.challenge)]))
        }
        let status: MeStatus
        do throws(ServiceError) { status = try await gatehouse.status(of: principal.user) } catch {
            throw Stop(response: kit.errorPage(PageError(error)))
        }
        if status.policy.mode == .disabled {
            throw Stop(response: kit.errorPage(PageError(ServiceError(.twoStepDisabled, "disabled")), back: "/account/settings"))
        }
        if status.record.twoStepEnabled {
            throw Stop(response: kit.page("message", [
                "title": "Two-step verification is on", "signedInAs": principal.user.value,
                "message": "Two-step verification is already on for this account. You can change it in your security settings.",
                "back": "/account/settings",
            ]))
        }
        return Account(principal: principal, status: status)
    }

    /// Reads a posted form and checks its CSRF token (before anything else is looked at).
    private func checkedForm(_ request: Request) async throws(Stop) -> Form {
        let form: Form
        do { form = try await kit.form(request) } catch { throw Stop(response: kit.errorPage(error)) }
        guard kit.csrfValid(request, form) else { throw Stop(response: kit.errorPage(.csrf, back: "/account/enroll")) }
        return form
    }

    // MARK: GET

    /// `GET /account/enroll`: the step the account is at.
    func show(_ request: Request) async throws(Stop) -> Response {
        let account = try await resolve(request)
        let record = account.status.record
        guard record.recoveryVerified, record.recoveryEmail != nil else {
            return recoveryEmailPage(request, account)
        }
        // An authenticator enrolment under way (within its 10 minutes) shows the same key
        // again: the person may already have scanned it.
        if account.status.policy.methods.contains(.totp), let pending = try? await gatehouse.pendingTOTPEnrollment(account.principal) {
            return totpPage(request, account, pending)
        }
        let notice = request.uri.queryParameters.get("confirmed") == "recovery-email"
            ? "Your recovery email \(record.recoveryEmail.map(Gatehouse.maskAddress) ?? "") is confirmed." : nil
        return choosePage(request, account, notice: notice)
    }

    // MARK: Step 1: recovery email

    private func recoveryEmailPage(_ request: Request, _ account: Account, address: String = "", error: PageError? = nil) -> Response {
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = [
            "title": "Add a recovery email", "step": 1, "signedInAs": account.user.value, "csrf": csrf.token, "address": address,
        ]
        Self.add(error, to: &values)
        return kit.page("enroll-recovery", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    private func recoveryCodePage(_ request: Request, _ account: Account, notice: String? = nil, error: PageError? = nil) -> Response {
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = ["title": "Confirm your recovery email", "step": 1, "signedInAs": account.user.value, "csrf": csrf.token]
        if let notice { values["notice"] = notice }
        Self.add(error, to: &values)
        return kit.page("enroll-recovery-code", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// `POST /account/enroll/recovery-email`: the address twice; a code goes to it.
    func sendRecoveryCode(_ request: Request) async throws(Stop) -> Response {
        let form = try await checkedForm(request)
        let account = try await resolve(request)
        let address = (form["recovery_email"] ?? "").trimmingCharacters(in: .whitespaces)
        let again = (form["recovery_email_again"] ?? "").trimmingCharacters(in: .whitespaces)
        guard !address.isEmpty, address.utf8.count <= 254 else {
            return recoveryEmailPage(request, account, error: PageError(.invalidRequest, "Enter an email address such as name@example.net."))
        }
        // Typed twice so a typo does not send the code (and later the password resets) to a
        // stranger; case does not matter in an address.
        guard address.lowercased() == again.lowercased() else {
            return recoveryEmailPage(request, account, address: address, error: PageError(
                .invalidRequest, "The two addresses are not the same. Enter your recovery address twice, exactly alike."
            ))
        }
        do throws(ServiceError) {
            _ = try await gatehouse.setRecoveryEmail(account.principal, address: address)
            let notice = "We sent a 6-digit code to \(Gatehouse.maskAddress(address.lowercased())). It works for 10 minutes."
            return recoveryCodePage(request, account, notice: notice)
        } catch {
            return recoveryEmailPage(request, account, address: address, error: PageError(error))
        }
    }

    /// `POST /account/enroll/recovery-email/confirm`: the mailed code.
    func confirmRecoveryEmail(_ request: Request) async throws(Stop) -> Response {
        let form = try await checkedForm(request)
        let account = try await resolve(request)
        let code = (form["code"] ?? "").filter { $0 != " " }
        guard !code.isEmpty, code.utf8.count <= 64 else {
            return recoveryCodePage(request, account, error: PageError(.invalidRequest, "Enter the 6-digit code from the email."))
        }
        do throws(ServiceError) {
            _ = try await gatehouse.confirmRecoveryEmail(account.principal, code: code, clientIP: nil)
            return kit.redirect("/account/enroll?confirmed=recovery-email")
        } catch {
            return recoveryCodePage(request, account, error: PageError(error))
        }
    }

    // MARK: Step 2: the choice

    private func choosePage(_ request: Request, _ account: Account, notice: String? = nil, error: PageError? = nil) -> Response {
        let csrf = kit.csrf(for: request)
        let methods = account.status.policy.methods
        var values: [String: Any] = [
            "title": "Choose your second step", "step": 2, "signedInAs": account.user.value, "csrf": csrf.token,
            "offerTOTP": methods.contains(.totp), "offerEmail": methods.contains(.email),
            "recoveryAddress": account.status.record.recoveryEmail.map(Gatehouse.maskAddress) ?? "",
        ]
        if let notice { values["notice"] = notice }
        Self.add(error, to: &values)
        return kit.page("enroll-choose", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// The page for an error after the recovery step: the choice, with the error on it.
    private func chooseOrRecovery(_ request: Request, _ account: Account, error: PageError) -> Response {
        if error.code.name == ServiceError.Code.recoveryEmailRequired.name { return recoveryEmailPage(request, account, error: error) }
        return choosePage(request, account, error: error)
    }

    // MARK: Step 3: authenticator app

    /// `POST /account/enroll/totp`: a new key (replacing one under way), then the key's page.
    func startTOTP(_ request: Request) async throws(Stop) -> Response {
        _ = try await checkedForm(request)
        let account = try await resolve(request)
        guard account.status.record.recoveryVerified else {
            return recoveryEmailPage(request, account, error: PageError(ServiceError(.recoveryEmailRequired, "first")))
        }
        do throws(ServiceError) {
            _ = try await gatehouse.startTOTPEnrollment(account.principal)
            // The GET shows the key under way, so a reload does not make a new one.
            return kit.redirect("/account/enroll")
        } catch {
            return choosePage(request, account, error: PageError(error))
        }
    }

    private func totpPage(_ request: Request, _ account: Account, _ pending: PendingTOTP, error: PageError? = nil) -> Response {
        let csrf = kit.csrf(for: request)
        let digits = gatehouse.configuration.totp.digits
        var values: [String: Any] = [
            "title": "Set up your authenticator app", "step": 3, "signedInAs": account.user.value, "csrf": csrf.token,
            "qr": pending.qrSVG, "secret": Self.grouped(pending.secret), "otpauth": pending.otpauthURI,
            "digits": digits, "codePattern": "[0-9]{\(digits)}",
            "offerEmail": account.status.policy.methods.contains(.email),
        ]
        Self.add(error, to: &values)
        return kit.page("enroll-totp", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// `POST /account/enroll/totp/confirm`: the first code turns two-step on.
    func confirmTOTP(_ request: Request) async throws(Stop) -> Response {
        let form = try await checkedForm(request)
        let account = try await resolve(request)
        let code = (form["code"] ?? "").filter { $0 != " " }
        let failed = { (error: PageError) async -> Response in
            // The same key again (the person has it in the app already); gone after 10 minutes.
            if let pending = try? await gatehouse.pendingTOTPEnrollment(account.principal) {
                return totpPage(request, account, pending, error: error)
            }
            return chooseOrRecovery(request, account, error: error.code.name == ServiceError.Code.notEnrolled.name
                ? PageError(.notFound, "The key was not confirmed within 10 minutes. Choose your second step again to get a new one.")
                : error)
        }
        guard !code.isEmpty, code.utf8.count <= 64 else {
            return await failed(PageError(.invalidRequest, "Enter the code your authenticator app shows."))
        }
        do throws(ServiceError) {
            let enabled = try await gatehouse.confirmTOTPEnrollment(
                account.principal, code: code, clientIP: nil, userAgent: request.headers[.userAgent].map { String($0.prefix(256)) }
            )
            return finished(request, account, enabled)
        } catch {
            return await failed(PageError(error))
        }
    }

    // MARK: Emailed codes

    /// `POST /account/enroll/email`: two-step on with codes mailed to the recovery address.
    func chooseEmail(_ request: Request) async throws(Stop) -> Response {
        _ = try await checkedForm(request)
        let account = try await resolve(request)
        do throws(ServiceError) {
            let enabled = try await gatehouse.enableEmailTwoStep(
                account.principal, clientIP: nil, userAgent: request.headers[.userAgent].map { String($0.prefix(256)) }
            )
            return finished(request, account, enabled)
        } catch {
            return chooseOrRecovery(request, account, error: PageError(error))
        }
    }

    // MARK: Step 4: done

    /// The codes page after turning two-step on; when that finished a sign-in, the browser now
    /// gets its session and goes on to the webmail.
    private func finished(_ request: Request, _ account: Account, _ enabled: TwoStepEnabled) -> Response {
        var cookies: [Cookie] = []
        var continueTo = "/account/settings"
        var label = "Go to your security settings"
        if let session = enabled.session {
            continueTo = SignInPages(kit: kit).returnAddress(request)
            label = "Continue to your mail"
            cookies = [kit.sessionCookie(session), kit.expired(CookieName.challenge), kit.expired(CookieName.returnTo)]
        }
        let how = enabled.method == .totp ? "your authenticator app" : "a code we email to your recovery address"
        return Self.backupCodesPage(
            kit: kit, request: request, user: account.user, codes: enabled.backupCodes, appPassword: enabled.appPassword.password,
            heading: "Two-step verification is on",
            notice: "From now on, signing in asks for your password and then \(how).",
            continueTo: continueTo, continueLabel: label, enrolled: true, cookies: cookies
        )
    }

    /// The backup codes, shown once: a list, a print button, a download as a text file, and
    /// (after turning two-step on) the mail-app password. The settings page uses it for
    /// "new backup codes" (`appPassword` nil, `enrolled` false). Never answer a GET with it.
    static func backupCodesPage(
        kit: PageKit, request: Request, user: UserID, codes: [String], appPassword: String?,
        heading: String = "Your new backup codes",
        notice: String? = "Your old backup codes no longer work.",
        continueTo: String = "/account/settings", continueLabel: String = "Back to your security settings",
        enrolled: Bool = false, cookies: [Cookie] = []
    ) -> Response {
        var values: [String: Any] = [
            "title": heading, "heading": heading, "signedInAs": user.value, "step": 4, "enrolled": enrolled,
            "codes": codes, "download": downloadURL(codes: codes, user: user, issuer: kit.gatehouse.configuration.issuer),
            "hasAppPassword": appPassword != nil, "appPassword": appPassword ?? "",
            "continueTo": continueTo, "continueLabel": continueLabel, "scripts": ["print.js"],
        ]
        if let notice { values["notice"] = notice }
        var all = cookies
        if let csrf = kit.csrf(for: request).newCookie { all.append(csrf) }
        return kit.page("enroll-done", values, cookies: all)
    }

    /// A `data:` URL of the codes as a text file (percent-encoded; only unreserved ASCII stays).
    static func downloadURL(codes: [String], user: UserID, issuer: String) -> String {
        var text = "Backup codes for \(user.value) (\(issuer))\n"
        text += "Each code signs you in once, when you cannot get a code otherwise. Keep them safe.\n\n"
        for (n, code) in codes.enumerated() { text += "\(n + 1). \(code)\n" }
        return "data:text/plain;charset=utf-8," + percentEncoded(text)
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// "ABCD EFGH IJKL …": a key typed by hand is easier to check in groups of four.
    static func grouped(_ secret: String) -> String {
        var out = ""
        for (i, c) in secret.enumerated() {
            if i > 0, i % 4 == 0 { out.append(" ") }
            out.append(c)
        }
        return out
    }

    static func add(_ error: PageError?, to values: inout [String: Any]) {
        guard let error else { return }
        values["error"] = error.message
        values["errorCode"] = error.code.name
    }
}
