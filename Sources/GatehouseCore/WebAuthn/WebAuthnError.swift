/// Why a passkey registration or sign-in was refused.
///
/// The one error type of Gatehouse's WebAuthn verification. `code` is opaque (compare with the
/// static members); `message` is for logs and never holds a challenge, key or signature. Most
/// codes mean "refuse the ceremony"; ``Code/signCountRegressed`` additionally means "record a
/// security event" (a possibly cloned authenticator), and carries both counters.
public struct WebAuthnError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// `clientDataJSON.type` is not `webauthn.create` (registration) / `webauthn.get` (sign-in).
        public static let wrongType = Code("wrong_type")
        /// `clientDataJSON.challenge` is not the challenge this ceremony issued.
        public static let challengeMismatch = Code("challenge_mismatch")
        /// `clientDataJSON.origin` is not one of the relying party's origins.
        public static let originNotAllowed = Code("origin_not_allowed")
        /// `clientDataJSON.crossOrigin` is true: the ceremony ran in a cross-origin iframe, which
        /// Gatehouse's pages never embed.
        public static let crossOriginNotAllowed = Code("cross_origin_not_allowed")
        /// `clientDataJSON` is not a UTF-8 JSON object with string `type`, `challenge`, `origin`.
        public static let malformedClientData = Code("malformed_client_data")
        /// The authenticator data's RP ID hash is not SHA-256 of the relying party ID.
        public static let rpIDMismatch = Code("rp_id_mismatch")
        /// The User Present flag is not set.
        public static let userNotPresent = Code("user_not_present")
        /// User verification is required and the User Verified flag is not set.
        public static let userNotVerified = Code("user_not_verified")
        /// The signature (assertion, or packed self-attestation) does not verify.
        public static let badSignature = Code("bad_signature")
        /// The credential key's algorithm (or key type / curve) is not ES256, EdDSA (Ed25519) or RS256.
        public static let unsupportedAlgorithm = Code("unsupported_algorithm")
        /// The attestation format is neither `none` nor `packed` self-attestation (`packed` with
        /// a certificate chain, `tpm`, `android-key`, `fido-u2f`, `apple`, … are not verified).
        public static let unsupportedAttestation = Code("unsupported_attestation")
        /// CBOR that is not well-formed CTAP2 canonical CBOR; `cbor` says what and where.
        public static let malformedCBOR = Code("malformed_cbor")
        /// The attestation object or its statement has the wrong shape (missing, extra or mistyped
        /// members; a `none` statement that is not empty).
        public static let malformedAttestation = Code("malformed_attestation")
        /// The authenticator data is too short, has trailing bytes, inconsistent flags (BS without
        /// BE, ED without extensions), or extensions that are not a map.
        public static let malformedAuthenticatorData = Code("malformed_authenticator_data")
        /// The credential public key is not a well-formed COSE key of its type (wrong lengths,
        /// missing or extra parameters, a point not on the curve, an RSA modulus under 2048 bits).
        public static let malformedCredentialKey = Code("malformed_credential_key")
        /// Registration authenticator data without attested credential data (AT flag clear).
        public static let attestedCredentialDataMissing = Code("attested_credential_data_missing")
        /// The credential ID is longer than 1023 bytes.
        public static let credentialIDTooLong = Code("credential_id_too_long")
        /// The signature counter did not advance: both counters are not zero and the new one is at
        /// or below the stored one. A signal that the authenticator may be cloned; `signCounts`
        /// holds the values.
        public static let signCountRegressed = Code("sign_count_regressed")
        /// An input is larger than Gatehouse accepts (before any parsing).
        public static let inputTooLarge = Code("input_too_large")

        public var description: String { name }
    }

    /// The stored and the received signature counter, for ``Code/signCountRegressed``.
    public struct SignCounts: Sendable, Hashable {
        /// The counter stored with the credential.
        public let stored: UInt32
        /// The counter in this assertion's authenticator data.
        public let received: UInt32

        /// Creates the pair.
        public init(stored: UInt32, received: UInt32) {
            self.stored = stored
            self.received = received
        }
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation without secrets.
    public let message: String
    /// For ``Code/malformedCBOR``: the defect and its offset.
    public let cbor: CBORError?
    /// For ``Code/signCountRegressed``: both counters.
    public let signCounts: SignCounts?
    /// Where the error was raised.
    public let file: String
    /// Line where the error was raised.
    public let line: Int

    /// Creates an error; `file`/`line` default to the call site.
    public init(
        _ code: Code, _ message: String, cbor: CBORError? = nil, signCounts: SignCounts? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cbor = cbor
        self.signCounts = signCounts
        self.file = file
        self.line = line
    }

    /// A ``Code/malformedCBOR`` error for a defect in `what`.
    static func cbor(_ error: CBORError, in what: String, file: String = #fileID, line: Int = #line) -> WebAuthnError {
        WebAuthnError(.malformedCBOR, "\(what): \(error)", cbor: error, file: file, line: line)
    }

    public var description: String { "\(code): \(message)" }
}
