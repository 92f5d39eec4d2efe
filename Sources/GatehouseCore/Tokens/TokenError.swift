/// Why a token was refused. Every case maps to the same `401 invalid_token` at the HTTP edge; the
/// distinction is for logs and metrics (never log the token itself).
///
/// A small enum rather than `CoreError` so the verifier can use typed throws without boxing.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Longer than `TokenAuthority.maximumTokenLength` (checked before any parsing).
    case oversized
    /// Not three canonical base64url segments of strict JSON.
    case malformed
    /// `alg` is not the algorithm the named key uses for this kind (`none` included).
    case algorithmMismatch
    /// `kid` names no key that may verify (unknown, retired or hostile).
    case unknownKey
    /// `typ` is not the expected kind.
    case wrongType
    /// The signature does not verify.
    case badSignature
    /// `exp` has passed (beyond the leeway).
    case expired
    /// `iat` lies in the future (beyond the leeway).
    case issuedInFuture
    /// Claims are missing, duplicated, unexpected, of the wrong type or inconsistent.
    case invalidClaims
    /// `iss` is not this deployment's issuer.
    case wrongIssuer
    /// Signing failed (no active key, or the crypto library failed).
    case signingFailed

    public var description: String {
        switch self {
        case .oversized: "token too large"
        case .malformed: "token malformed"
        case .algorithmMismatch: "algorithm not allowed for key"
        case .unknownKey: "unknown key id"
        case .wrongType: "wrong token type"
        case .badSignature: "bad signature"
        case .expired: "token expired"
        case .issuedInFuture: "token issued in the future"
        case .invalidClaims: "invalid claims"
        case .wrongIssuer: "wrong issuer"
        case .signingFailed: "signing failed"
        }
    }
}
