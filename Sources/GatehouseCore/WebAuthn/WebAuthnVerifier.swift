import GatehouseCrypto

/// A WebAuthn Relying Party: checks passkey registrations (WebAuthn Level 2 §7.1) and sign-ins
/// (§7.2) for one RP ID, with no I/O.
///
/// What stays with the caller (the service layer, over Redis): issuing each challenge (at least
/// 16 random bytes), keeping it for one ceremony and deleting it when it is used — a replayed
/// response carries a challenge that no longer exists, which only the store can know; checking
/// that a new credential ID is not registered already (§7.1 step 22); finding the stored
/// credential by the credential ID and checking it belongs to the user (§7.2 steps 5–7); and
/// storing the new signature counter, atomically with the sign-in. `docs/passkeys.md` lists every
/// step and what is skipped.
public struct RelyingParty: Sendable {
    /// What to do when the signature counter did not advance.
    public enum SignCountRegressionPolicy: Sendable, Hashable {
        /// Refuse the sign-in with ``WebAuthnError/Code/signCountRegressed`` (the default).
        case reject
        /// Accept it and report ``AssertionResult/counterRegressed`` for the caller's risk
        /// decision (WebAuthn leaves the choice to the RP).
        case report
    }

    /// The RP ID: a registrable domain suffix of the origins, e.g. `example.org`.
    public let id: String
    /// The origins ceremonies may come from, compared byte for byte with `clientDataJSON.origin`
    /// (scheme, host and port as the browser serialises them: `https://mail.example.org`).
    public let allowedOrigins: [String]
    /// Whether the User Verified flag is required (PIN or biometrics, not only a touch).
    public let requireUserVerification: Bool
    /// What a counter that went backwards does.
    public let signCountRegression: SignCountRegressionPolicy
    private let rpIDHash: [UInt8]

    /// Shortest challenge accepted from the caller (WebAuthn §13.4.3 asks for at least 16 random bytes).
    public static let minimumChallengeLength = 16

    /// A relying party for `id`, accepting ceremonies from `allowedOrigins`.
    public init(
        id: String, allowedOrigins: [String], requireUserVerification: Bool,
        signCountRegression: SignCountRegressionPolicy = .reject
    ) {
        self.id = id
        self.allowedOrigins = allowedOrigins
        self.requireUserVerification = requireUserVerification
        self.signCountRegression = signCountRegression
        self.rpIDHash = Digest.hash(.sha256, Array(id.utf8))
    }

    // MARK: Registration (§7.1)

    /// Verifies a registration response (`navigator.credentials.create()`), following WebAuthn
    /// Level 2 §7.1 in order, and returns what the service stores.
    ///
    /// - Parameters:
    ///   - clientDataJSON: `response.clientDataJSON`, the bytes as sent.
    ///   - attestationObject: `response.attestationObject`.
    ///   - expectedChallenge: the challenge this registration was issued (raw bytes).
    public func verifyRegistration(
        clientDataJSON: [UInt8], attestationObject: [UInt8], expectedChallenge: [UInt8]
    ) throws(WebAuthnError) -> NewCredential {
        // Steps 5–6: UTF-8 JSON parse of clientDataJSON.
        let clientData = try CollectedClientData(json: clientDataJSON)
        // Steps 7–9 (and crossOrigin, §5.8.1): type, challenge, origin.
        try checkClientData(clientData, expectedType: "webauthn.create", expectedChallenge: expectedChallenge)
        // Step 10 (Token Binding) is skipped: no browser sends it any more (Level 3 removed it).
        // Step 11: hash of the client data.
        let clientDataHash = Digest.hash(.sha256, clientDataJSON)
        // Step 12: decode the attestation object (fmt, attStmt, authData).
        let attestation = try AttestationObject(bytes: attestationObject)
        let authData = attestation.authenticatorData
        // Steps 13–15: RP ID hash, User Present, User Verified when required.
        try checkAuthenticatorData(authData)
        // The credential itself: attested credential data must be there (AT), its ID at most
        // 1023 bytes (checked while reading it).
        guard let attested = authData.attestedCredentialData else {
            throw WebAuthnError(.attestedCredentialDataMissing, "registration authenticator data has no attested credential data (AT flag clear)")
        }
        // Step 16: the credential key's algorithm is one Gatehouse offered (ES256, EdDSA, RS256).
        let key = try COSEKey(attested.decodedPublicKey)
        // Step 17: extension outputs. Gatehouse requests no extensions; authenticator outputs were
        // checked to be a well-formed map and are ignored, client outputs never reach this layer.
        // Steps 18–19: the attestation statement format and its verification.
        let attestationType = try attestation.verifyStatement(credentialKey: key, clientDataHash: clientDataHash)
        // Steps 20–21 (trust anchors, trustworthiness): none and self attestation have no trust
        // path; Gatehouse accepts both (§7.1 step 21 allows it by policy).
        // Step 22 (credential ID not yet registered) is the caller's, against its store.
        // Step 23: the credential to register.
        return NewCredential(
            credentialID: attested.credentialID,
            publicKey: attested.credentialPublicKey,
            algorithm: key.algorithm,
            signCount: authData.signCount,
            flags: authData.flags,
            aaguid: attested.aaguid,
            attestationFormat: attestation.format,
            attestationType: attestationType
        )
    }

    // MARK: Authentication (§7.2)

    /// Verifies a sign-in response (`navigator.credentials.get()`), following WebAuthn Level 2
    /// §7.2 steps 8–21 in order, for the credential the service looked up by `credential.id`.
    ///
    /// Throws ``WebAuthnError/Code/signCountRegressed`` (after the signature verified) when the
    /// counter did not advance and ``signCountRegression`` is `.reject`: the caller refuses the
    /// sign-in *and* records a security event, since the credential's key may have been copied.
    public func verifyAssertion(
        credential: StoredCredential, clientDataJSON: [UInt8], authenticatorData: [UInt8], signature: [UInt8],
        expectedChallenge: [UInt8]
    ) throws(WebAuthnError) -> AssertionResult {
        guard signature.count <= 1024 else {  // RSA-8192 is 1024 bytes; ECDSA and Ed25519 far less
            throw WebAuthnError(.inputTooLarge, "signature longer than 1024 bytes")
        }
        // Steps 9–10: UTF-8 JSON parse of clientDataJSON.
        let clientData = try CollectedClientData(json: clientDataJSON)
        // Steps 11–13 (and crossOrigin): type, challenge, origin.
        try checkClientData(clientData, expectedType: "webauthn.get", expectedChallenge: expectedChallenge)
        // Step 14 (Token Binding) is skipped, as in registration.
        // Steps 15–17: RP ID hash, User Present, User Verified when required. Attested credential
        // data (AT) has no meaning in an assertion: if present it must be well-formed and is ignored.
        let authData = try AuthenticatorData(bytes: authenticatorData)
        try checkAuthenticatorData(authData)
        // Step 18: extension outputs, ignored as in registration.
        // Step 19: hash of the client data.
        let clientDataHash = Digest.hash(.sha256, clientDataJSON)
        // Step 20: the signature over authData ‖ hash with the stored credential key.
        let key = try COSEKey(bytes: credential.publicKey)
        guard key.isValidSignature(signature, authenticatorData: authenticatorData, clientDataHash: clientDataHash) else {
            throw WebAuthnError(.badSignature, "assertion signature does not verify with the stored credential key")
        }
        // Step 21: the signature counter. Both zero: the authenticator keeps no counter (synced
        // passkeys). Otherwise it must have grown; if not, the key may exist twice.
        let stored = credential.signCount, received = authData.signCount
        var regressed = false
        if stored != 0 || received != 0, received <= stored {
            switch signCountRegression {
            case .reject:
                throw WebAuthnError(
                    .signCountRegressed, "signature counter \(received) is not above the stored \(stored): the authenticator may be cloned",
                    signCounts: WebAuthnError.SignCounts(stored: stored, received: received)
                )
            case .report:
                regressed = true
            }
        }
        return AssertionResult(
            newSignCount: max(stored, received),
            userVerified: authData.flags.contains(.userVerified),
            backedUp: authData.flags.contains(.backedUp),
            counterRegressed: regressed
        )
    }

    // MARK: Shared steps

    /// `type`, `challenge` (constant time), `origin` (byte for byte), `crossOrigin` not true.
    private func checkClientData(_ clientData: CollectedClientData, expectedType: StaticString, expectedChallenge: [UInt8]) throws(WebAuthnError) {
        let typeMatches = expectedType.withUTF8Buffer { clientData.type.utf8.elementsEqual($0) }
        guard typeMatches else {
            throw WebAuthnError(.wrongType, "clientDataJSON type is not \(expectedType)")
        }
        guard expectedChallenge.count >= Self.minimumChallengeLength else {
            throw WebAuthnError(.challengeMismatch, "the expected challenge is shorter than \(Self.minimumChallengeLength) bytes")
        }
        guard ConstantTime.equals(clientData.challenge, expectedChallenge) else {
            throw WebAuthnError(.challengeMismatch, "clientDataJSON challenge is not the one issued for this ceremony")
        }
        // Byte comparison: Swift's String == treats canonically equivalent Unicode as equal.
        guard allowedOrigins.contains(where: { $0.utf8.elementsEqual(clientData.origin.utf8) }) else {
            throw WebAuthnError(.originNotAllowed, "origin \(clientData.origin.prefix(200).debugDescription) is not allowed")
        }
        guard !clientData.crossOrigin else {
            throw WebAuthnError(.crossOriginNotAllowed, "the ceremony ran in a cross-origin iframe")
        }
    }

    /// RP ID hash, UP, UV when required.
    private func checkAuthenticatorData(_ authData: AuthenticatorData) throws(WebAuthnError) {
        guard authData.rpIDHash.elementsEqual(rpIDHash) else {
            throw WebAuthnError(.rpIDMismatch, "authenticator data is for another RP ID than \(id)")
        }
        guard authData.flags.contains(.userPresent) else {
            throw WebAuthnError(.userNotPresent, "user present flag (UP) not set")
        }
        if requireUserVerification, !authData.flags.contains(.userVerified) {
            throw WebAuthnError(.userNotVerified, "user verification required, user verified flag (UV) not set")
        }
    }
}

/// A credential to store after a verified registration.
public struct NewCredential: Sendable, Hashable {
    /// The credential ID (at most 1023 bytes): the key to look the credential up by at sign-in.
    public let credentialID: [UInt8]
    /// The credential public key, COSE_Key bytes exactly as the authenticator encoded them.
    public let publicKey: [UInt8]
    /// Its algorithm.
    public let algorithm: COSEAlgorithm
    /// The initial signature counter.
    public let signCount: UInt32
    /// All flags of the registration's authenticator data.
    public let flags: AuthenticatorData.Flags
    /// The authenticator model's AAGUID (16 bytes; zero when hidden).
    public let aaguid: [UInt8]
    /// The attestation format received: `none` or `packed`.
    public let attestationFormat: String
    /// What the attestation proved.
    public let attestationType: AttestationObject.AttestationType

    /// UV at registration.
    public var userVerified: Bool { flags.contains(.userVerified) }
    /// BE: the credential may be synced to other devices (a passkey in a password manager).
    public var backupEligible: Bool { flags.contains(.backupEligible) }
    /// BS: the credential is backed up now.
    public var backedUp: Bool { flags.contains(.backedUp) }
}

/// What the service keeps of a credential and hands back for each sign-in.
public struct StoredCredential: Sendable, Hashable {
    /// The COSE_Key bytes from ``NewCredential/publicKey``.
    public var publicKey: [UInt8]
    /// The last signature counter stored.
    public var signCount: UInt32

    /// Creates the record.
    public init(publicKey: [UInt8], signCount: UInt32) {
        self.publicKey = publicKey
        self.signCount = signCount
    }
}

/// The outcome of a verified sign-in.
public struct AssertionResult: Sendable, Hashable {
    /// The counter to store (never lower than the stored one).
    public let newSignCount: UInt32
    /// UV: the user was verified, not only present.
    public let userVerified: Bool
    /// BS: the credential is backed up now (it may change between sign-ins).
    public let backedUp: Bool
    /// True only under ``RelyingParty/SignCountRegressionPolicy/report`` when the counter did not
    /// advance (under `.reject` that case throws instead).
    public let counterRegressed: Bool
}
