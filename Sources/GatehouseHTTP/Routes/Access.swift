import GatehouseCore
import GatehouseService
import HTTPTypes
import Hummingbird

/// Who is asking: the checks every route makes before it acts (API key scope, signed-in user).
struct Access: Sendable {
    let gatehouse: Gatehouse
    let authCheck: AuthCheck

    /// The API key must be known and carry `scope`.
    func require(_ scope: APIKeyConfiguration.Scope, _ request: Request) throws(ServiceError) {
        let credentials = PresentedCredentials(request.headers)
        guard let caller = authCheck.caller(credentials.bearerKey) else {
            throw ServiceError(.unauthorized, credentials.authorization == .repeated
                ? "two Authorization fields: send the API key once"
                : "an API key is required: Authorization: Bearer <key>")
        }
        guard caller.scopes.contains(scope) else { throw ServiceError(.forbidden, "this API key lacks the '\(scope.rawValue)' scope") }
    }

    /// The user behind a self-service call: a session token, or a challenge token during a login.
    func principal(_ request: Request) throws(ServiceError) -> Principal {
        let credentials = PresentedCredentials(request.headers)
        let session: String?
        switch credentials.sessionToken {
        case .none: session = nil
        case .token(let token): session = token
        case .ambiguous: throw ServiceError(.invalidToken, "two Gatehouse-Session fields: send the session once")
        }
        guard credentials.challenge != .repeated else { throw ServiceError(.invalidToken, "two Gatehouse-Challenge fields: send the challenge once") }
        return try gatehouse.principal(sessionToken: session, challengeToken: credentials.challenge.value)
    }

    /// The signed-in session behind a call (a challenge token is not enough).
    func session(_ request: Request) throws(ServiceError) -> (claims: SessionClaims, user: UserID) {
        guard case .session(let claims, let user) = try principal(request) else {
            throw ServiceError(.invalidToken, "a signed-in session is required")
        }
        return (claims, user)
    }

    /// The route's answer when a path names nothing it serves.
    static var noSuchEndpoint: ServiceError { ServiceError(.notFound, "no such endpoint") }
}

extension RouteCollection where Context == BasicRequestContext {
    /// One area's routes: `build` adds them to a new collection.
    static func area(_ build: (RouteCollection<BasicRequestContext>) -> Void) -> RouteCollection<BasicRequestContext> {
        let routes = RouteCollection(context: BasicRequestContext.self)
        build(routes)
        return routes
    }
}
