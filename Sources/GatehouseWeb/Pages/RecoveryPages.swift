import Foundation
import GatehouseCore
import GatehouseService
import HTTPTypes
import Hummingbird

/// Forgot password (`/account/forgot-password`): the password reset by recovery email.
///
/// Gatehouse does not own the password; it proves the person can read the account's confirmed
/// recovery address and hands a single-use reset token, by form post, to the provider's page
/// that sets the new password (`GATEHOUSE_WEB_PASSWORD_RESET_URL`; the stand-in webmail's
/// `/demo/reset-password` when the demo is on). The pages answer alike for every address, so they
/// tell nobody whether an account or a recovery address exists.
struct RecoveryPages: Sendable {
    let kit: PageKit
    var gatehouse: Gatehouse { kit.gatehouse }

    func add(to routes: RouteCollection<BasicRequestContext>) {
        routes.get("/account/forgot-password") { request, _ in start(request) }
        routes.post("/account/forgot-password") { request, _ in await sendCode(request) }
        routes.post("/account/forgot-password/code") { request, _ in await checkCode(request) }
    }

    /// Where the reset token goes: the configured page, else the demo's, else nowhere.
    var resetTarget: String? {
        let web = gatehouse.configuration.web
        if let url = web.passwordResetURL { return url }
        return web.demo == true ? "/demo/reset-password" : nil
    }

    /// Without a page that sets passwords there is nothing to reset with: said before a code is
    /// sent, rather than after.
    func unavailable() -> Response {
        kit.page("message", [
            "title": "Password reset is not available here", "isError": true, "code": "reset_unavailable",
            "message": "Your provider does not reset passwords on this page. Contact your provider's support to reset your password.",
        ], status: .notFound)
    }

    /// `GET /account/forgot-password`: the address form.
    func start(_ request: Request, user: String = "", error: PageError? = nil) -> Response {
        guard resetTarget != nil else { return unavailable() }
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = ["title": "Forgot your password?", "csrf": csrf.token, "user": user]
        EnrollmentPages.add(error, to: &values)
        return kit.page("forgot-start", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// The code form, the same for every address.
    func codePage(_ request: Request, user: String, notice: String? = nil, error: PageError? = nil) -> Response {
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = ["title": "Check your recovery email", "csrf": csrf.token, "user": user]
        if let notice { values["notice"] = notice }
        EnrollmentPages.add(error, to: &values)
        return kit.page("forgot-code", values, status: error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// A posted form whose CSRF token checked out, or the page to show instead.
    private enum Posted {
        case form(Form)
        case refused(Response)
    }

    private func posted(_ request: Request) async -> Posted {
        let form: Form
        do { form = try await kit.form(request) } catch { return .refused(kit.errorPage(error)) }
        guard kit.csrfValid(request, form) else { return .refused(kit.errorPage(.csrf, back: "/account/forgot-password")) }
        return .form(form)
    }

    /// `POST /account/forgot-password`: mails a code when the address has a confirmed recovery
    /// email, and answers the same page in every case (also for text that is no address, for
    /// which nothing is sent). The lookup and the mail happen after the answer.
    func sendCode(_ request: Request) async -> Response {
        let form: Form
        switch await posted(request) {
        case .form(let f): form = f
        case .refused(let page): return page
        }
        guard resetTarget != nil else { return unavailable() }
        let typed = String((form["user"] ?? "").trimmingCharacters(in: .whitespaces).prefix(254))
        guard !typed.isEmpty else { return start(request, error: PageError(.invalidRequest, "Enter your email address.")) }
        if let user = UserID(typed) { gatehouse.startRecovery(user: user) }
        return codePage(request, user: typed, notice: "If this address has a confirmed recovery email, we sent a code to it. The code works for 10 minutes.")
    }

    /// `POST /account/forgot-password/code`: a right code hands the reset token on.
    func checkCode(_ request: Request) async -> Response {
        let form: Form
        switch await posted(request) {
        case .form(let f): form = f
        case .refused(let page): return page
        }
        guard let target = resetTarget else { return unavailable() }
        let typed = String((form["user"] ?? "").trimmingCharacters(in: .whitespaces).prefix(254))
        let code = (form["code"] ?? "").filter { $0 != " " }
        // Checked here for every address alike, so the answer to a malformed code says nothing
        // about the address either.
        guard code.utf8.count == 6, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return codePage(request, user: typed, error: PageError(.invalidRequest, "Enter the 6-digit code from the email."))
        }
        guard let user = UserID(typed) else {
            return codePage(request, user: typed, error: PageError(ServiceError(.invalidCode, "no such address")))
        }
        do throws(ServiceError) {
            let reset = try await gatehouse.finishRecovery(user: user, code: code, clientIP: nil)
            // The token travels in a form post, never in a URL; the CSRF token only where the
            // form posts to this node (it is bound to this browser's cookie here, of no use to
            // another site).
            let csrf = kit.csrf(for: request)
            let sameOrigin = target.hasPrefix("/")
            return kit.page("forgot-continue", [
                "title": "Choose a new password", "user": user.value, "action": target, "resetToken": reset.token,
                "withCSRF": sameOrigin, "csrf": csrf.token,
                "minutes": max(1, Int(reset.expiresAt - gatehouse.now) / 60),
            ], cookies: csrf.newCookie.map { [$0] } ?? [])
        } catch {
            return codePage(request, user: typed, error: PageError(error))
        }
    }
}
