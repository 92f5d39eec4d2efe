/// The client data of a ceremony (WebAuthn §5.8.1 `CollectedClientData`), read strictly from
/// `clientDataJSON`.
///
/// The bytes must be one JSON object in UTF-8 (no byte-order mark), read with
/// ``JSONObjectReader`` (so a member name may appear only once: two `challenge` members are
/// refused, not resolved). `type`, `challenge` and `origin` must be strings and `challenge`
/// canonical unpadded base64url; `crossOrigin`, when present, must be a boolean. `topOrigin`,
/// `tokenBinding` and members added by browsers (Chromium sometimes adds one on purpose) are
/// ignored. Anything else is ``WebAuthnError/Code/malformedClientData``.
public struct CollectedClientData: Sendable {
    /// Longest `clientDataJSON` accepted, in bytes (a browser's is a few hundred).
    public static let maximumLength = 16 * 1024

    /// `webauthn.create` or `webauthn.get` (anything else is kept, and refused by the verifier).
    public let type: String
    /// The challenge, base64url-decoded.
    public let challenge: [UInt8]
    /// The origin of the page that ran the ceremony, e.g. `https://mail.example.org`.
    public let origin: String
    /// True when the ceremony ran in an iframe not same-origin with its ancestors (absent: false).
    public let crossOrigin: Bool
    /// The top-level origin for a cross-origin ceremony (informational only).
    public let topOrigin: String?

    /// Reads `clientDataJSON`.
    public init(json: [UInt8]) throws(WebAuthnError) {
        guard json.count <= Self.maximumLength else {
            throw WebAuthnError(.inputTooLarge, "clientDataJSON longer than \(Self.maximumLength) bytes")
        }
        let value: JSONValue
        do throws(JSONObjectReader.Failure) {
            value = try json.withUnsafeBytes { raw in Result { () throws(JSONObjectReader.Failure) in try JSONObjectReader.parse(raw) } }.get()
        } catch {
            throw WebAuthnError(.malformedClientData, "clientDataJSON is not one well-formed JSON value (\(error))")
        }
        guard case .object(let members) = value else {
            throw WebAuthnError(.malformedClientData, "clientDataJSON is not a JSON object")
        }
        guard case .string(let type)? = members["type"] else {
            throw WebAuthnError(.malformedClientData, "clientDataJSON lacks a string type")
        }
        guard case .string(let encodedChallenge)? = members["challenge"] else {
            throw WebAuthnError(.malformedClientData, "clientDataJSON lacks a string challenge")
        }
        guard let challenge = Base64URL.decode(encodedChallenge) else {
            throw WebAuthnError(.malformedClientData, "clientDataJSON challenge is not canonical base64url")
        }
        guard case .string(let origin)? = members["origin"] else {
            throw WebAuthnError(.malformedClientData, "clientDataJSON lacks a string origin")
        }
        switch members["crossOrigin"] {
        case nil: crossOrigin = false
        case .bool(let flag)?: crossOrigin = flag
        default: throw WebAuthnError(.malformedClientData, "clientDataJSON crossOrigin is not a boolean")
        }
        if case .string(let top)? = members["topOrigin"] { topOrigin = top } else { topOrigin = nil }
        self.type = type
        self.challenge = challenge
        self.origin = origin
    }
}
