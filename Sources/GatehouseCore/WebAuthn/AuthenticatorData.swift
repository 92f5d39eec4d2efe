/// Authenticator data (WebAuthn §6.1): what the authenticator signs about itself and the
/// ceremony, read strictly.
///
/// Layout: `rpIdHash` (32) ‖ `flags` (1) ‖ `signCount` (4, big-endian) ‖ attested credential
/// data (when AT) ‖ extensions (a CBOR map, when ED). Refused as
/// ``WebAuthnError/Code/malformedAuthenticatorData``: fewer than 37 bytes, a field cut short, BS
/// set without BE, ED set without a map after it, and any byte after the last field. The COSE key
/// and the extensions must be CTAP2 canonical CBOR (``WebAuthnError/Code/malformedCBOR``); the
/// extensions are checked for well-formedness and otherwise ignored (Gatehouse requests none).
public struct AuthenticatorData: Sendable {
    /// The flags byte.
    public struct Flags: OptionSet, Sendable, Hashable {
        /// The byte as the authenticator wrote it.
        public let rawValue: UInt8
        /// Creates flags from the byte.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// UP: a user was present (bit 0).
        public static let userPresent = Flags(rawValue: 0x01)
        /// UV: the user was verified (PIN, biometrics; bit 2).
        public static let userVerified = Flags(rawValue: 0x04)
        /// BE: the credential may be backed up / synced (bit 3).
        public static let backupEligible = Flags(rawValue: 0x08)
        /// BS: the credential is backed up now (bit 4).
        public static let backedUp = Flags(rawValue: 0x10)
        /// AT: attested credential data follows (bit 6).
        public static let attestedCredentialData = Flags(rawValue: 0x40)
        /// ED: extension outputs follow (bit 7).
        public static let extensionData = Flags(rawValue: 0x80)
    }

    /// Longest credential ID accepted (WebAuthn §6.5.1: "Value MUST be ≤ 1023").
    public static let maximumCredentialIDLength = 1023

    /// The bytes as received and signed.
    public let bytes: [UInt8]
    /// SHA-256 of the RP ID the authenticator scoped the credential to.
    public var rpIDHash: ArraySlice<UInt8> { bytes[0..<32] }
    /// The flags.
    public let flags: Flags
    /// The signature counter (0 when the authenticator keeps none).
    public let signCount: UInt32
    /// Present when AT is set.
    public let attestedCredentialData: AttestedCredentialData?
    /// The authenticator extension outputs when ED is set (a CBOR map; not interpreted).
    public let extensions: CBORValue?

    /// Reads authenticator data; nothing may follow its last field.
    public init(bytes: [UInt8]) throws(WebAuthnError) {
        guard bytes.count <= CBORReader.defaultMaximumLength else {
            throw WebAuthnError(.inputTooLarge, "authenticator data longer than \(CBORReader.defaultMaximumLength) bytes")
        }
        guard bytes.count >= 37 else {
            throw WebAuthnError(.malformedAuthenticatorData, "authenticator data is \(bytes.count) bytes, at least 37 are needed")
        }
        let flags = Flags(rawValue: bytes[32])
        if flags.contains(.backedUp), !flags.contains(.backupEligible) {
            throw WebAuthnError(.malformedAuthenticatorData, "backup state (BS) set on a credential that is not backup eligible (BE)")
        }
        self.flags = flags
        self.signCount = UInt32(bytes[33]) << 24 | UInt32(bytes[34]) << 16 | UInt32(bytes[35]) << 8 | UInt32(bytes[36])
        var position = 37
        let reader = CBORReader()
        var attested: AttestedCredentialData?
        if flags.contains(.attestedCredentialData) {
            guard bytes.count - position >= 18 else {
                throw WebAuthnError(.malformedAuthenticatorData, "attested credential data cut short before the credential ID length")
            }
            let aaguid = Array(bytes[position..<position + 16])
            let idLength = Int(bytes[position + 16]) << 8 | Int(bytes[position + 17])
            position += 18
            guard idLength <= Self.maximumCredentialIDLength else {
                throw WebAuthnError(.credentialIDTooLong, "credential ID of \(idLength) bytes (at most \(Self.maximumCredentialIDLength))")
            }
            guard bytes.count - position >= idLength else {
                throw WebAuthnError(.malformedAuthenticatorData, "credential ID cut short")
            }
            let credentialID = Array(bytes[position..<position + idLength])
            position += idLength
            guard position < bytes.count else {
                throw WebAuthnError(.malformedAuthenticatorData, "attested credential data has no public key")
            }
            let keyStart = position
            let key: CBORValue
            do throws(CBORError) { (key, position) = try reader.decodePrefix(bytes, from: position) } catch {
                throw .cbor(error, in: "credential public key in authenticator data")
            }
            attested = AttestedCredentialData(
                aaguid: aaguid, credentialID: credentialID,
                credentialPublicKey: Array(bytes[keyStart..<position]), decodedPublicKey: key
            )
        }
        var extensions: CBORValue?
        if flags.contains(.extensionData) {
            guard position < bytes.count else {
                throw WebAuthnError(.malformedAuthenticatorData, "extension data flag (ED) set but no extensions follow")
            }
            let value: CBORValue
            do throws(CBORError) { (value, position) = try reader.decodePrefix(bytes, from: position) } catch {
                throw .cbor(error, in: "extensions in authenticator data")
            }
            guard case .map = value else {
                throw WebAuthnError(.malformedAuthenticatorData, "authenticator extension outputs are not a map")
            }
            extensions = value
        }
        guard position == bytes.count else {
            throw WebAuthnError(.malformedAuthenticatorData, "\(bytes.count - position) bytes after the last field of the authenticator data")
        }
        self.attestedCredentialData = attested
        self.extensions = extensions
        self.bytes = bytes
    }
}

/// The credential a registration creates (WebAuthn §6.5.1), from authenticator data with AT set.
public struct AttestedCredentialData: Sendable {
    /// The authenticator model's AAGUID (all zero when the client or authenticator hides it).
    public let aaguid: [UInt8]
    /// The credential ID, at most 1023 bytes.
    public let credentialID: [UInt8]
    /// The COSE_Key bytes exactly as the authenticator encoded them (what the service stores).
    public let credentialPublicKey: [UInt8]
    /// The same key, decoded (well-formed canonical CBOR, not yet checked as a COSE key).
    let decodedPublicKey: CBORValue
}
