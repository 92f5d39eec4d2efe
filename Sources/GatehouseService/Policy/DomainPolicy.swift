/// A domain's two-step policy (docs/api.md, Domain policy).
public struct DomainPolicy: Sendable, Equatable, Codable {
    /// The policy mode.
    public enum Mode: String, Sendable, Codable, CaseIterable {
        /// No second step; self-service answers 403 `two_step_disabled`.
        case disabled
        /// Users may turn it on (the default for a domain never set).
        case optional
        /// Every login of a user who has not enrolled must enrol first.
        case enforced
    }

    /// Second-step methods. `totp` and `email` are what a user turns two-step on with; `passkey`
    /// is offered beside them to users who registered one (docs/passkeys.md).
    public enum Method: String, Sendable, Codable, CaseIterable {
        case totp, email, passkey
    }

    public var mode: Mode
    /// Second steps allowed.
    public var methods: [Method]
    /// Remember-me lifetime in days (0 turns it off).
    public var rememberDeviceDays: Int
    /// Session lifetime in hours.
    public var sessionHours: Int
    /// Whether app passwords may be revealed again after creation.
    public var appPasswordReveal: Bool

    enum CodingKeys: String, CodingKey {
        case mode, methods
        case rememberDeviceDays = "remember_device_days"
        case sessionHours = "session_hours"
        case appPasswordReveal = "app_password_reveal"
    }

    /// The defaults (a domain never set).
    public static let `default` = DomainPolicy(mode: .optional, methods: [.totp, .email], rememberDeviceDays: 30, sessionHours: 8, appPasswordReveal: false)

    /// Creates a policy.
    public init(mode: Mode, methods: [Method], rememberDeviceDays: Int, sessionHours: Int, appPasswordReveal: Bool) {
        self.mode = mode
        self.methods = methods
        self.rememberDeviceDays = rememberDeviceDays
        self.sessionHours = sessionHours
        self.appPasswordReveal = appPasswordReveal
    }

    /// Allowed ranges, enforced on every write.
    public static let rememberDeviceDaysRange = 0...365
    /// Allowed session lengths in hours (never past the 7-day absolute limit).
    public static let sessionHoursRange = 1...168

    /// Refuses a policy outside the allowed values (`invalid_request`): methods a non-empty list
    /// without repeats, ``rememberDeviceDaysRange`` and ``sessionHoursRange``, checked in that order.
    public func validate() throws(ServiceError) {
        guard !methods.isEmpty, Set(methods).count == methods.count else {
            throw ServiceError(.invalidRequest, "methods must be a non-empty list without repeats")
        }
        // Two-step is turned on with an authenticator or emailed codes; passkeys come on top.
        guard methods.contains(.totp) || methods.contains(.email) else {
            throw ServiceError(.invalidRequest, "methods must include totp or email (passkeys are added to an account that has one)")
        }
        guard Self.rememberDeviceDaysRange.contains(rememberDeviceDays) else {
            throw ServiceError(.invalidRequest, "remember_device_days must be 0...365")
        }
        guard Self.sessionHoursRange.contains(sessionHours) else {
            throw ServiceError(.invalidRequest, "session_hours must be 1...168")
        }
    }
}
