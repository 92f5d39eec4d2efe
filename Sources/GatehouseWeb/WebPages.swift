import Foundation
import GatehouseCore
public import GatehouseService
public import Hummingbird

/// The pages a person uses, served by the node beside the API (docs/web-pages.md):
///
/// - `/account/continue`, `/account/second-step` — the hand-off from the webmail and the second
///   step (``SignInPages``);
/// - `/account/enroll` — turning two-step on, also when the domain enforces it at sign-in
///   (``EnrollmentPages``);
/// - `/account/settings` — status, app passwords, devices, sessions, security events
///   (``SettingsPages``);
/// - `/account/forgot-password` — the password reset by recovery email (``RecoveryPages``);
/// - `/demo/` — a stand-in webmail, only when enabled (``DemoWebmail``).
///
/// The pages call the same service layer as the JSON API; no API key reaches a browser. Every
/// form carries a CSRF token, every page a strict Content-Security-Policy and `no-store`.
public struct WebPages: Sendable {
    let kit: PageKit

    /// Compiles the templates; throws if one does not parse.
    public init(gatehouse: Gatehouse) throws {
        self.kit = PageKit(gatehouse: gatehouse, templates: try PageTemplates())
    }

    /// The stand-in webmail's password for every address.
    public static var demoPassword: String { DemoWebmail.defaultPassword }

    /// The routes, for the node's router.
    public var routes: RouteCollection<BasicRequestContext> {
        let routes = RouteCollection(context: BasicRequestContext.self)
        routes.get("/account/assets/:name") { _, context in
            guard let name = context.parameters.get("name"), let response = Assets.response(Substring(name)) else {
                return Response(status: .notFound)
            }
            return response
        }
        let account = AccountPrincipal(kit: kit)
        SignInPages(kit: kit).add(to: routes)
        EnrollmentPages(kit: kit, account: account).add(to: routes)
        SettingsPages(kit: kit, account: account).add(to: routes)
        RecoveryPages(kit: kit).add(to: routes)
        if kit.gatehouse.configuration.web.demo == true {
            DemoWebmail(kit: kit).add(to: routes)
        }
        return routes
    }
}

/// Who the browser is: its session cookie, or during an enforced enrolment its challenge cookie.
struct AccountPrincipal: Sendable {
    let kit: PageKit

    /// The signed-in user (session cookie only).
    func session(_ request: Request) throws(PageError) -> (principal: Principal, user: UserID, sessionID: String) {
        guard let token = PageKit.value(request, CookieName.session),
              let principal = try? kit.gatehouse.principal(sessionToken: token, challengeToken: nil),
              case .session(let claims, let user) = principal
        else { throw PageError.notSignedIn }
        return (principal, user, claims.sessionID)
    }

    /// The session, or else an enrolment challenge.
    func sessionOrEnrollment(_ request: Request) throws(PageError) -> Principal {
        if let signedIn = try? session(request) { return signedIn.principal }
        guard let challenge = PageKit.value(request, CookieName.challenge),
              let principal = try? kit.gatehouse.principal(sessionToken: nil, challengeToken: challenge)
        else { throw PageError.notSignedIn }
        return principal
    }
}
