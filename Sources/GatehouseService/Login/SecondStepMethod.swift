/// A second step a login can finish with (the `method` of `POST /v1/login/finish`, the `methods`
/// of a `second_step` answer, and the detail of the code-check security events).
///
/// ``DomainPolicy/Method`` is the part of it a user enrols in and a domain may allow; backup codes
/// come with either and are always allowed, so they are here and not in a policy.
public enum SecondStepMethod: String, Sendable, CaseIterable {
    /// A code from an authenticator app.
    case totp
    /// A code mailed to the verified recovery address.
    case email
    /// A single-use backup code (xxxxx-xxxxx).
    case backupCode = "backup_code"
    /// A registered passkey (a WebAuthn assertion).
    case passkey

    /// The second step of an enrolled method.
    public init(_ method: DomainPolicy.Method) {
        switch method {
        case .totp: self = .totp
        case .email: self = .email
        case .passkey: self = .passkey
        }
    }
}
