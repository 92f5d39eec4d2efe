/// An attestation object (WebAuthn §6.5.4): `{"fmt": text, "attStmt": map, "authData": bytes}`,
/// read strictly.
///
/// The CBOR must be CTAP2 canonical (``CBORReader``), the map must hold exactly those three
/// members with those types (else ``WebAuthnError/Code/malformedAttestation``), and the
/// authenticator data is read by ``AuthenticatorData``.
///
/// Attestation statements verified (``verifyStatement(credentialKey:clientDataHash:)``):
/// - `none` (§8.7): the statement must be an empty map;
/// - `packed` self-attestation (§8.2 without `x5c`): `alg` must equal the credential key's
///   algorithm and `sig` must verify with the credential key over `authData ‖ clientDataHash`.
///
/// Everything else is ``WebAuthnError/Code/unsupportedAttestation``: `packed` with a certificate
/// chain (`x5c`) or ECDAA, and the formats `tpm`, `android-key`, `android-safetynet`,
/// `fido-u2f`, `apple` and any unknown one. Gatehouse does not judge authenticator models, so it
/// asks for `attestation: "none"` in its creation options, and browsers then send `none`.
public struct AttestationObject: Sendable {
    /// The attestation statement format identifier, e.g. `none`, `packed`.
    public let format: String
    /// The attestation statement (a map).
    public let statement: CBORValue
    /// The authenticator data.
    public let authenticatorData: AuthenticatorData

    /// Reads an attestation object.
    public init(bytes: [UInt8]) throws(WebAuthnError) {
        guard bytes.count <= CBORReader.defaultMaximumLength else {
            throw WebAuthnError(.inputTooLarge, "attestation object longer than \(CBORReader.defaultMaximumLength) bytes")
        }
        let value: CBORValue
        do throws(CBORError) { value = try CBORReader().decode(bytes) } catch { throw .cbor(error, in: "attestation object") }
        guard case .map(let entries) = value else {
            throw WebAuthnError(.malformedAttestation, "attestation object is not a map")
        }
        var format: String?, statement: CBORValue?, authData: [UInt8]?
        for entry in entries {
            switch (entry.key, entry.value) {
            case (.text("fmt"), .text(let text)): format = text
            case (.text("attStmt"), .map): statement = entry.value
            case (.text("authData"), .bytes(let b)): authData = b
            default:
                throw WebAuthnError(.malformedAttestation, "attestation object member is unknown or of the wrong type")
            }
        }
        guard let format, let statement, let authData else {
            throw WebAuthnError(.malformedAttestation, "attestation object lacks fmt, attStmt or authData")
        }
        self.format = format
        self.statement = statement
        self.authenticatorData = try AuthenticatorData(bytes: authData)
    }

    /// The kind of attestation a verified statement conveyed.
    public enum AttestationType: String, Sendable, Hashable {
        /// `none`: no statement about the authenticator.
        case none
        /// `packed` signed by the credential key itself: proves possession of the key, nothing
        /// about the authenticator model.
        case selfAttestation = "self"
    }

    /// Verifies the statement (WebAuthn §7.1 steps 18–19) for `credentialKey`, the key in the
    /// attested credential data, and `clientDataHash`, SHA-256 of `clientDataJSON`.
    public func verifyStatement(credentialKey: COSEKey, clientDataHash: [UInt8]) throws(WebAuthnError) -> AttestationType {
        guard case .map(let entries) = statement else {
            throw WebAuthnError(.malformedAttestation, "attestation statement is not a map")
        }
        switch format {
        case "none":
            guard entries.isEmpty else {
                throw WebAuthnError(.malformedAttestation, "a none attestation statement must be empty")
            }
            return .none
        case "packed":
            var alg: Int64?, sig: [UInt8]?
            for entry in entries {
                switch (entry.key, entry.value) {
                case (.text("alg"), let value):
                    guard let a = value.integer else { throw WebAuthnError(.malformedAttestation, "packed alg is not an integer") }
                    alg = a
                case (.text("sig"), .bytes(let b)):
                    sig = b
                case (.text("x5c"), _):
                    throw WebAuthnError(.unsupportedAttestation, "packed attestation with a certificate chain (x5c) is not verified; request attestation \"none\"")
                case (.text("ecdaaKeyId"), _):
                    throw WebAuthnError(.unsupportedAttestation, "ECDAA attestation is not supported")
                default:
                    throw WebAuthnError(.malformedAttestation, "packed attestation statement member is unknown or of the wrong type")
                }
            }
            guard let alg, let sig else {
                throw WebAuthnError(.malformedAttestation, "packed attestation statement lacks alg or sig")
            }
            guard alg == credentialKey.algorithm.rawValue else {
                throw WebAuthnError(.malformedAttestation, "packed self-attestation alg \(alg) is not the credential key's algorithm")
            }
            guard credentialKey.isValidSignature(sig, authenticatorData: authenticatorData.bytes, clientDataHash: clientDataHash) else {
                throw WebAuthnError(.badSignature, "packed self-attestation signature does not verify")
            }
            return .selfAttestation
        default:
            throw WebAuthnError(.unsupportedAttestation, "attestation format \(format.prefix(40).debugDescription) is not supported")
        }
    }
}
