/// The one error type of the service layer. Each code is one of the API's problem codes
/// (docs/api.md, Errors); the HTTP edge turns it into `application/problem+json` and chooses the
/// status (`HTTPSupport.status(of:)`): this layer knows nothing of HTTP. Messages never contain
/// codes, secrets or tokens.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    /// A problem code (opaque: the static members are all there are).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The snake_case code clients see.
        public let name: String
        private init(_ name: String) {
            self.name = name
        }
        public static let invalidRequest = Code("invalid_request")
        public static let unauthorized = Code("unauthorized")
        public static let forbidden = Code("forbidden")
        public static let invalidToken = Code("invalid_token")
        public static let invalidCode = Code("invalid_code")
        public static let challengeExpired = Code("challenge_expired")
        public static let rateLimited = Code("rate_limited")
        public static let twoStepDisabled = Code("two_step_disabled")
        public static let reauthenticationRequired = Code("reauthentication_required")
        public static let recoveryEmailRequired = Code("recovery_email_required")
        public static let notEnrolled = Code("not_enrolled")
        public static let methodNotAllowed = Code("method_not_allowed")
        public static let notFound = Code("not_found")
        /// `/v1/mail/authenticate`: not an app password of this user for this service.
        public static let denied = Code("denied")
        public static let unavailable = Code("unavailable")
        public var description: String { name }
    }

    /// The problem code.
    public let code: Code
    /// Human-readable detail (safe to show the caller).
    public let detail: String
    /// For 429: seconds until a retry may succeed.
    public var retryAfterSeconds: Int?
    /// For `invalid_code`: failures left before the throttle starts.
    public var attemptsRemaining: Int?
    /// The error underneath (for logs), if any.
    public let underlying: (any Error)?
    /// Where it was raised.
    public let file: String
    /// Line where it was raised.
    public let line: Int

    /// Creates an error.
    public init(
        _ code: Code, _ detail: String, retryAfterSeconds: Int? = nil, attemptsRemaining: Int? = nil,
        underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.detail = detail
        self.retryAfterSeconds = retryAfterSeconds
        self.attemptsRemaining = attemptsRemaining
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String { "\(code.name): \(detail)" }

    /// Redis could not be reached or answered wrongly: fail closed.
    static func unavailable(_ error: any Error, file: String = #fileID, line: Int = #line) -> ServiceError {
        if let error = error as? ServiceError { return error }
        return ServiceError(.unavailable, "the state store is unavailable; try again shortly", retryAfterSeconds: 5, underlying: error, file: file, line: line)
    }
}
