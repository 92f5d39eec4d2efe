/// The four token kinds (docs/api.md, Tokens). Each is signed with its own derived key, so a
/// token of one kind never verifies as another even before `typ` is compared.
public enum TokenKind: Int, Sendable, CaseIterable {
    case session = 0, remember, challenge, reset

    /// The JWS `typ` header value.
    public var typ: String {
        switch self {
        case .session: "gh-session"
        case .remember: "gh-remember"
        case .challenge: "gh-challenge"
        case .reset: "gh-reset"
        }
    }

    /// The label the per-kind HMAC key is derived with: HMAC-SHA256(secret, label).
    public var derivationLabel: String { "gatehouse/v1/\(name)" }

    /// Short name (`session`, …).
    public var name: String {
        switch self {
        case .session: "session"
        case .remember: "remember"
        case .challenge: "challenge"
        case .reset: "reset"
        }
    }
}

/// Signature algorithms a key may use. Fixed per key (and kind), never read from a token.
public enum TokenAlgorithm: String, Sendable, Codable {
    /// HMAC-SHA256 with the per-kind derived key.
    case hs256 = "HS256"
    /// Ed25519 (session tokens only), so front ends can verify offline from the JWKS.
    case edDSA = "EdDSA"
}

/// How the user proved who they are (`amr` claim), as a set.
public struct AuthMethods: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Primary password (checked by the front end).
    public static let password = AuthMethods(rawValue: 1 << 0)
    /// Authenticator app code.
    public static let otp = AuthMethods(rawValue: 1 << 1)
    /// Code mailed to the recovery address.
    public static let email = AuthMethods(rawValue: 1 << 2)
    /// Backup code.
    public static let backup = AuthMethods(rawValue: 1 << 3)
    /// A remembered device stood in for the second step.
    public static let remember = AuthMethods(rawValue: 1 << 4)
    /// A passkey (WebAuthn assertion).
    public static let passkey = AuthMethods(rawValue: 1 << 5)

    /// The `amr` values in their canonical order.
    public static let names: [(AuthMethods, String)] = [
        (.password, "pwd"), (.otp, "otp"), (.email, "email"), (.backup, "backup"), (.remember, "remember"), (.passkey, "passkey"),
    ]

    /// The `amr` strings of this set, in canonical order.
    public var strings: [String] { Self.names.filter { contains($0.0) }.map(\.1) }

    /// True when a second step (or its remembered stand-in) is part of the set.
    public var hasSecondStep: Bool { !isDisjoint(with: [.otp, .email, .backup, .remember, .passkey]) }
}
