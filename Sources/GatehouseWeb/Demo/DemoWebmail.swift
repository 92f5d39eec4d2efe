import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseService
import Hummingbird
import Synchronization

/// A stand-in webmail, for trying Gatehouse and for its browser tests — not a mail service. It
/// shows how a provider's webmail uses the hand-off: check the primary password itself, ask for
/// a hand-off ticket, send the browser to `/account/continue`, and afterwards trust the
/// `gatehouse_session` cookie (here checked in-process; a real webmail asks `GET /v1/auth` or
/// `POST /v1/sessions/verify`, or sits behind nginx's `auth_request`).
///
/// Every address has the demo password ``defaultPassword`` until the forgot-password flow sets
/// another; those changes live in this node's memory only and are gone after a restart.
struct DemoWebmail: Sendable {
    let kit: PageKit
    var gatehouse: Gatehouse { kit.gatehouse }

    /// The password every demo account starts with (printed by `gatehouse serve`).
    static let defaultPassword = "demo-password"

    /// Passwords set through the reset flow, by address (hashed with SHA-256: a demo, but no
    /// plain passwords in memory dumps either).
    private static let changed = Mutex<[String: [UInt8]]>([:])

    static func passwordMatches(user: UserID, _ password: String) -> Bool {
        let hash = Digest.hash(.sha256, Array(password.utf8))
        let stored = changed.withLock { $0[user.value] } ?? Digest.hash(.sha256, Array(defaultPassword.utf8))
        return ConstantTime.equals(hash, stored)
    }

    func add(to routes: RouteCollection<BasicRequestContext>) {
        routes.get("/demo") { _, _ in kit.redirect("/demo/login") }
        routes.get("/demo/login") { request, _ in login(request) }
        routes.post("/demo/login") { request, _ in await signIn(request) }
        routes.get("/demo/inbox") { request, _ in inbox(request) }
        routes.post("/demo/reset-password") { request, _ in await resetForm(request) }
        routes.post("/demo/reset-password/set") { request, _ in await setPassword(request) }
    }

    func login(_ request: Request, error: String? = nil, notice: String? = nil, user: String = "") -> Response {
        let csrf = kit.csrf(for: request)
        var values: [String: Any] = ["title": "Demo webmail", "csrf": csrf.token, "user": user, "password": Self.defaultPassword]
        if let error { values["error"] = error }
        if let notice { values["notice"] = notice }
        return kit.page("demo-login", values, status: error == nil ? .ok : .unauthorized, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// Checks the demo password, then hands the browser to Gatehouse.
    func signIn(_ request: Request) async -> Response {
        await kit.posted(request, back: "/demo/login") { form in await signIn(request, form) }
    }

    private func signIn(_ request: Request, _ form: Form) async -> Response {
        let typed = (form["user"] ?? "").trimmingCharacters(in: .whitespaces)
        guard let user = UserID(typed) else { return login(request, error: "Enter an email address such as kate@example.org.", user: typed) }
        guard Self.passwordMatches(user: user, form["password"] ?? "") else {
            return login(request, error: "Wrong address or password.", user: typed)
        }
        do throws(ServiceError) {
            let ticket = try await gatehouse.createHandoff(Handoff(
                user: user, returnTo: "/demo/inbox", clientIP: nil, userAgent: request.headers[.userAgent].map { String($0.prefix(256)) }
            ))
            return kit.redirect("/account/continue?ticket=" + ticket.ticket)
        } catch {
            return kit.errorPage(PageError(error), back: "/demo/login")
        }
    }

    func inbox(_ request: Request) -> Response {
        guard let token = PageKit.value(request, CookieName.session), let claims = try? gatehouse.verifySession(token) else {
            return kit.redirect("/demo/login")
        }
        let csrf = kit.csrf(for: request)
        return kit.page("demo-inbox", [
            "title": "Inbox", "signedInAs": claims.common.user, "user": claims.common.user, "csrf": csrf.token,
            "methods": claims.methods.strings.joined(separator: ", "),
        ], cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// The end of Gatehouse's forgot-password flow: the reset token arrives by form post.
    func resetForm(_ request: Request) async -> Response {
        let form: Form
        do { form = try await kit.form(request) } catch { return kit.errorPage(error) }
        guard let token = form["reset_token"], !token.isEmpty, token.utf8.count <= 4096 else {
            return kit.errorPage(PageError(.invalidRequest, "The reset link is incomplete."), back: "/account/forgot-password")
        }
        let csrf = kit.csrf(for: request)
        return kit.page("demo-reset", ["title": "Choose a new password", "csrf": csrf.token, "resetToken": token], cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    func setPassword(_ request: Request) async -> Response {
        await kit.posted(request) { form in await setPassword(request, form) }
    }

    private func setPassword(_ request: Request, _ form: Form) async -> Response {
        let password = form["password"] ?? ""
        guard password.count >= 8, password == form["password_again"] else {
            let csrf = kit.csrf(for: request)
            return kit.page("demo-reset", [
                "title": "Choose a new password", "csrf": csrf.token, "resetToken": form["reset_token"] ?? "",
                "error": "Enter the same password twice, at least 8 characters.",
            ], status: .badRequest)
        }
        // The provider's side of a reset: redeem the token once, then set the password.
        let user: UserID
        do throws(ServiceError) { user = try await gatehouse.consumeReset(form["reset_token"] ?? "") } catch {
            if error.code == .unavailable { return kit.errorPage(PageError(error)) }
            return kit.errorPage(PageError(.invalidRequest, "This reset link has expired or was already used. Start again from “Forgot password”."), back: "/account/forgot-password")
        }
        let hash = Digest.hash(.sha256, Array(password.utf8))
        Self.changed.withLock { $0[user.value] = hash }
        // Whoever knew the old password is signed out everywhere.
        do throws(ServiceError) { try await gatehouse.revokeAllSessions(of: user) } catch { return kit.errorPage(PageError(error)) }
        return login(request, notice: "Your password was changed. Sign in with the new one.", user: user.value)
    }
}
