import GatehouseCore
import GatehouseService
package import HTTPTypes
import Metrics

/// The `GET /v1/auth` decision, shared by the channel fast path and the responder.
///
/// Synchronous and free of I/O: an API key lookup, one token verification and a revocation
/// lookup in memory. Answers carry no body (nginx `auth_request` reads only the status and
/// headers). The answer is put on the wire in one place (``FastPathEncoding/write(_:framing:date:into:)``);
/// the responder, which sees `/v1/auth` only behind a request Hummingbird took, uses
/// ``Answer/response``, the same status and fields as HTTPTypes.
struct AuthCheck: Sendable {
    let gatehouse: Gatehouse
    let apiKeys: APIKeyRegistry
    let ok = Counter(label: "gatehouse_auth_checks_total", dimensions: [("result", "ok")])
    let refused = Counter(label: "gatehouse_auth_checks_total", dimensions: [("result", "refused")])

    typealias Answer = AuthAnswer

    /// Decides from the credentials the request presents.
    func decide(_ credentials: PresentedCredentials) -> Answer {
        decide(caller: caller(credentials.bearerKey), session: credentials.sessionToken)
    }

    /// The API key presented as `Authorization: Bearer <key>`, if it is a configured one.
    func caller(_ key: Substring?) -> APIKeyRegistry.Entry? {
        key.flatMap { apiKeys.authenticate($0) }
    }

    /// Decides for an already identified caller.
    func decide(caller: APIKeyRegistry.Entry?, session: PresentedCredentials.Session) -> Answer {
        guard let caller, caller.scopes.contains(.verify) else {
            refused.increment()
            return caller == nil ? .unauthorized : .forbidden
        }
        guard case .token(let token) = session else {
            refused.increment()
            return .unauthorized
        }
        do {
            let claims = try gatehouse.verifySession(token)
            // The values become header fields: a user address (`UserID` refuses control
            // characters) and a base64url id. Anything else is refused rather than written.
            guard FastPathEncoding.isFieldValue(claims.common.user), FastPathEncoding.isFieldValue(claims.sessionID) else {
                refused.increment()
                return .unauthorized
            }
            ok.increment()
            return .valid(user: claims.common.user, sessionID: claims.sessionID, authTime: claims.authTime)
        } catch {
            refused.increment()
            return error.code == .unavailable ? .unavailable : .unauthorized
        }
    }

    /// The answer for the responder (HTTPTypes).
    func decide(_ fields: HTTPFields) -> HTTPResponse {
        decide(PresentedCredentials(fields)).response
    }

    static let userHeader = HTTPField.Name("Gatehouse-User")!
    static let sessionIDHeader = HTTPField.Name("Gatehouse-Session-Id")!
    static let authTimeHeader = HTTPField.Name("Gatehouse-Auth-Time")!
}

/// What `GET /v1/auth` answers (``AuthCheck``).
package enum AuthAnswer: Equatable, Sendable {
    case valid(user: String, sessionID: String, authTime: Int64)
    case unauthorized
    case forbidden
    case unavailable

    package var status: HTTPResponse.Status {
        switch self {
        case .valid: .noContent
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .unavailable: .serviceUnavailable
        }
    }

    /// The answer as HTTPTypes, for the responder: the same status and fields the fast path
    /// writes (Hummingbird adds `Content-Length: 0` to the bodiless 401, 403 and 503 itself).
    package var response: HTTPResponse {
        var response = HTTPResponse(status: status)
        switch self {
        case .valid(let user, let sessionID, let authTime):
            response.headerFields[AuthCheck.userHeader] = user
            response.headerFields[AuthCheck.sessionIDHeader] = sessionID
            response.headerFields[AuthCheck.authTimeHeader] = String(authTime)
        case .unavailable:
            response.headerFields[HTTPSupport.retryAfter] = "5"
        case .unauthorized, .forbidden:
            break
        }
        return response
    }
}
