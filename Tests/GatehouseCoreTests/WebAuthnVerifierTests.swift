import Foundation
import GatehouseCore
import GatehouseTesting
import GatehouseCrypto
import Testing

/// The W3C test vectors (published bytes made by the spec's own generator).
@Suite("WebAuthn: the specification's test vectors")
struct WebAuthnW3CVectorTests {
    // The vectors' RP: example.org, https://example.org. Several vectors leave UV clear.
    static let rp = RelyingParty(id: "example.org", allowedOrigins: ["https://example.org"], requireUserVerification: false)

    static func register(_ v: W3CVector, rp: RelyingParty = rp) throws(WebAuthnError) -> NewCredential {
        try rp.verifyRegistration(clientDataJSON: v.registrationClientDataJSON, attestationObject: v.attestationObject, expectedChallenge: v.registrationChallenge)
    }

    static func signIn(_ v: W3CVector, publicKey: [UInt8], signCount: UInt32 = 0, rp: RelyingParty = rp) throws(WebAuthnError) -> AssertionResult {
        try rp.verifyAssertion(
            credential: StoredCredential(publicKey: publicKey, signCount: signCount), clientDataJSON: v.assertionClientDataJSON,
            authenticatorData: v.authenticatorData, signature: v.signature, expectedChallenge: v.assertionChallenge
        )
    }

    @Test("registration and sign-in verify (none, packed self-attestation, 1023-byte credential ID)", arguments: [
        W3CVectors.noneES256, W3CVectors.packedSelfES256, W3CVectors.longCredentialIDES256,
    ])
    func registerAndSignIn(vector: W3CVector) throws {
        let credential = try Self.register(vector)
        #expect(credential.credentialID == vector.credentialID)
        #expect(credential.algorithm == .es256)
        #expect(credential.signCount == 0)
        let result = try Self.signIn(vector, publicKey: credential.publicKey)
        #expect(result.newSignCount == 0)
        #expect(!result.counterRegressed)
        // Tampered: the same response with another challenge, or one flipped signature bit.
        #expect(webAuthnError { _ = try Self.register(W3CVector(copying: vector, registrationChallenge: vector.assertionChallenge)) }?.code == .challengeMismatch)
        var signature = vector.signature
        signature[signature.count - 2] ^= 0x01
        #expect(webAuthnError { _ = try Self.signIn(W3CVector(copying: vector, signature: signature), publicKey: credential.publicKey) }?.code == .badSignature)
    }

    @Test("ES256 with no attestation: every field of the registration")
    func noneFields() throws {
        let credential = try Self.register(W3CVectors.noneES256)
        #expect(credential.attestationFormat == "none")
        #expect(credential.attestationType == .none)
        #expect(credential.aaguid == hex("8446ccb9ab1db374750b2367ff6f3a1f"))
        #expect(credential.flags.rawValue == 0x59)  // UP, BE, BS, AT
        #expect(credential.backupEligible && credential.backedUp && !credential.userVerified)
        #expect(credential.credentialID.count == 32)
        let packed = try Self.register(W3CVectors.packedSelfES256)
        #expect(packed.attestationFormat == "packed" && packed.attestationType == .selfAttestation)
        #expect(try Self.register(W3CVectors.longCredentialIDES256).credentialID.count == 1023)
    }

    @Test("packed with a certificate chain, TPM: unsupportedAttestation; their sign-ins still verify", arguments: [
        (W3CVectors.packedES256, COSEAlgorithm.es256), (W3CVectors.packedRS256, .rs256), (W3CVectors.packedEd25519, .edDSA),
        (W3CVectors.tpmES256, .es256),
    ])
    func unsupportedAttestation(vector: W3CVector, algorithm: COSEAlgorithm) throws {
        #expect(webAuthnError { _ = try Self.register(vector) }?.code == .unsupportedAttestation)
        // The sign-in is the spec's own ES256 / RS256 / Ed25519 assertion with the key from the
        // attestation object's authenticator data.
        let key = try WebAuthnCOSETests.w3cKey(vector)
        #expect(try COSEKey(bytes: key).algorithm == algorithm)
        let result = try Self.signIn(vector, publicKey: key)
        #expect(result.newSignCount == 0)
        var authData = vector.authenticatorData
        authData[33 + 3] = 1  // signature counter 0 → 1: no longer what was signed
        #expect(webAuthnError {
            _ = try Self.rp.verifyAssertion(
                credential: StoredCredential(publicKey: key, signCount: 0), clientDataJSON: vector.assertionClientDataJSON,
                authenticatorData: authData, signature: vector.signature, expectedChallenge: vector.assertionChallenge
            )
        }?.code == .badSignature)
    }

    @Test("an ES384 credential is unsupportedAlgorithm, at registration and at sign-in")
    func es384() throws {
        #expect(webAuthnError { _ = try Self.register(W3CVectors.packedES384) }?.code == .unsupportedAlgorithm)
        let key = try WebAuthnCOSETests.w3cKey(W3CVectors.packedES384)
        #expect(webAuthnError { _ = try Self.signIn(W3CVectors.packedES384, publicKey: key) }?.code == .unsupportedAlgorithm)
    }

    @Test("crossOrigin: true (also with topOrigin) is refused at registration and sign-in", arguments: [
        W3CVectors.crossOriginES256, W3CVectors.topOriginES256,
    ])
    func crossOrigin(vector: W3CVector) throws {
        #expect(webAuthnError { _ = try Self.register(vector) }?.code == .crossOriginNotAllowed)
        let key = try WebAuthnCOSETests.w3cKey(vector)
        #expect(webAuthnError { _ = try Self.signIn(vector, publicKey: key) }?.code == .crossOriginNotAllowed)
    }

    @Test("the vectors under a relying party with another ID, origin or a UV requirement")
    func otherRelyingParty() throws {
        let v = W3CVectors.noneES256
        let otherID = RelyingParty(id: "example.com", allowedOrigins: ["https://example.org"], requireUserVerification: false)
        #expect(webAuthnError { _ = try Self.register(v, rp: otherID) }?.code == .rpIDMismatch)
        let otherOrigin = RelyingParty(id: "example.org", allowedOrigins: ["https://www.example.org"], requireUserVerification: false)
        #expect(webAuthnError { _ = try Self.register(v, rp: otherOrigin) }?.code == .originNotAllowed)
        let uv = RelyingParty(id: "example.org", allowedOrigins: ["https://example.org"], requireUserVerification: true)
        #expect(webAuthnError { _ = try Self.register(v, rp: uv) }?.code == .userNotVerified)  // flags 0x59: no UV
        let credential = try Self.register(v)
        #expect(webAuthnError { _ = try Self.signIn(v, publicKey: credential.publicKey, rp: uv) }?.code == .userNotVerified)
        #expect(webAuthnError { _ = try Self.signIn(v, publicKey: credential.publicKey, rp: otherID) }?.code == .rpIDMismatch)
    }
}

extension W3CVector {
    /// A copy with some fields replaced.
    init(copying v: W3CVector, registrationChallenge: [UInt8]? = nil, signature: [UInt8]? = nil) {
        self.name = v.name
        self.anchor = v.anchor
        self.registrationChallenge = registrationChallenge ?? v.registrationChallenge
        self.registrationClientDataJSON = v.registrationClientDataJSON
        self.attestationObject = v.attestationObject
        self.credentialID = v.credentialID
        self.assertionChallenge = v.assertionChallenge
        self.authenticatorData = v.authenticatorData
        self.assertionClientDataJSON = v.assertionClientDataJSON
        self.signature = signature ?? v.signature
    }
}

/// Ceremonies built by hand with keys generated in the test.
@Suite("WebAuthn: hand-built registrations and sign-ins")
struct WebAuthnVerifierTests {
    typealias F = WebAuthnFixture

    static func register(_ r: F.Registration, rp: RelyingParty = F.relyingParty(), challenge: [UInt8]? = nil) throws(WebAuthnError) -> NewCredential {
        try rp.verifyRegistration(clientDataJSON: r.clientDataJSON, attestationObject: r.attestationObject, expectedChallenge: challenge ?? r.challenge)
    }

    static func signIn(
        _ a: F.Assertion, key: [UInt8], signCount: UInt32 = 0, rp: RelyingParty = F.relyingParty(), challenge: [UInt8]? = nil
    ) throws(WebAuthnError) -> AssertionResult {
        try rp.verifyAssertion(
            credential: StoredCredential(publicKey: key, signCount: signCount), clientDataJSON: a.clientDataJSON,
            authenticatorData: a.authenticatorData, signature: a.signature, expectedChallenge: challenge ?? a.challenge
        )
    }

    static func code(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> WebAuthnError.Code? {
        webAuthnError(sourceLocation: sourceLocation, body)?.code
    }

    @Test("P-256 (none), Ed25519 and RSA (packed self-attestation): register, then sign in twice")
    func happyPaths() throws {
        for (authenticator, format) in [(try TestAuthenticator.p256(), "none"), (try TestAuthenticator.ed25519(), "packed"),
                                        (try TestAuthenticator.p256(), "packed"), (try TestAuthenticator.rsa(), "packed")] {
            let credential = try Self.register(F.registration(authenticator, format: format, signCount: 3))
            #expect(credential.credentialID == authenticator.credentialID)
            #expect(credential.publicKey == authenticator.coseKeyBytes)
            #expect(credential.algorithm.rawValue == authenticator.algorithm)
            #expect(credential.signCount == 3 && credential.aaguid == authenticator.aaguid && credential.userVerified)
            #expect(credential.attestationType == (format == "none" ? .none : .selfAttestation))
            let first = try Self.signIn(F.assertion(authenticator, signCount: 4), key: credential.publicKey, signCount: credential.signCount)
            #expect(first.newSignCount == 4 && first.userVerified && !first.counterRegressed)
            let second = try Self.signIn(F.assertion(authenticator, flags: [.userPresent], signCount: 9), key: credential.publicKey, signCount: first.newSignCount)
            #expect(second.newSignCount == 9 && !second.userVerified)
        }
    }

    @Test("wrong origin, RP ID, challenge or type")
    func clientDataChecks() throws {
        let a = try TestAuthenticator.p256()
        #expect(Self.code { _ = try Self.register(F.registration(a, origin: "https://evil.example")) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.register(F.registration(a, origin: "https://example.org:443")) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.register(F.registration(a, origin: "https://EXAMPLE.org")) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.register(F.registration(a, origin: "https://example.org/")) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.register(F.registration(a, origin: "http://example.org")) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.register(F.registration(a, rpID: "evil.example")) } == .rpIDMismatch)
        #expect(Self.code { _ = try Self.register(F.registration(a, rpID: "mail.example.org")) } == .rpIDMismatch)
        #expect(Self.code { _ = try Self.register(F.registration(a), challenge: try F.challenge()) } == .challengeMismatch)
        #expect(Self.code { _ = try Self.register(F.registration(a, type: "webauthn.get")) } == .wrongType)
        #expect(Self.code { _ = try Self.register(F.registration(a, type: "webauthn.create ")) } == .wrongType)
        // The second allowed origin works.
        _ = try Self.register(F.registration(a, origin: "https://mail.example.org"))

        let key = a.coseKeyBytes
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, origin: "https://example.net"), key: key) } == .originNotAllowed)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, rpID: "example.net"), key: key) } == .rpIDMismatch)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a), key: key, challenge: try F.challenge()) } == .challengeMismatch)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, type: "webauthn.create"), key: key) } == .wrongType)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, crossOrigin: true), key: key) } == .crossOriginNotAllowed)
        // crossOrigin absent means false; extra members (as Chromium adds) are ignored.
        _ = try Self.signIn(F.assertion(a, crossOrigin: nil), key: key)
        _ = try Self.signIn(F.assertion(a, extra: ",\"other_keys_can_be_added_here\":\"do not compare clientDataJSON against a template\",\"topOrigin\":\"https://x.example\""), key: key)
        // A caller that passes too short an expected challenge is refused rather than trusted.
        #expect(Self.code { _ = try Self.signIn(F.assertion(a), key: key, challenge: []) } == .challengeMismatch)
    }

    @Test("a replay is the store's to refuse: the verifier is stateless, the counter catches counting authenticators")
    func replay() throws {
        // The same response verified twice against the same challenge passes twice: only deleting
        // the challenge when it is used (the service's Redis script) stops a replay.
        let a = try TestAuthenticator.p256()
        let assertion = try F.assertion(a, signCount: 0)
        _ = try Self.signIn(assertion, key: a.coseKeyBytes)
        _ = try Self.signIn(assertion, key: a.coseKeyBytes)
        // With a counter, the stored value after the first use makes the second a regression.
        let counted = try F.assertion(a, signCount: 7)
        let first = try Self.signIn(counted, key: a.coseKeyBytes, signCount: 6)
        #expect(Self.code { _ = try Self.signIn(counted, key: a.coseKeyBytes, signCount: first.newSignCount) } == .signCountRegressed)
    }

    @Test("tampered signature, authenticator data or client data")
    func tampering() throws {
        for a in [try TestAuthenticator.p256(), try TestAuthenticator.ed25519()] {
            let key = a.coseKeyBytes
            let good = try F.assertion(a, signCount: 5)
            var s = good
            s.signature[s.signature.count / 2] ^= 0x20
            #expect(Self.code { _ = try Self.signIn(s, key: key) } == .badSignature)
            s = good
            s.signature = Array(s.signature.dropLast())
            #expect(Self.code { _ = try Self.signIn(s, key: key) } == .badSignature)
            s = good
            s.signature = []
            #expect(Self.code { _ = try Self.signIn(s, key: key) } == .badSignature)
            var d = good
            d.authenticatorData[36] = 6  // counter 5 → 6
            #expect(Self.code { _ = try Self.signIn(d, key: key) } == .badSignature)
            d = good
            d.authenticatorData[32] ^= AuthenticatorData.Flags.userVerified.rawValue  // drop UV
            #expect(Self.code { _ = try Self.signIn(d, key: key) } == .badSignature)
            var c = good
            c.clientDataJSON = F.clientDataJSON(type: "webauthn.get", challenge: good.challenge, extra: ",\"x\":1")
            #expect(Self.code { _ = try Self.signIn(c, key: key) } == .badSignature)
            // Another credential's key.
            #expect(Self.code { _ = try Self.signIn(good, key: try TestAuthenticator.p256().coseKeyBytes) } == .badSignature)
            _ = try Self.signIn(good, key: key)
        }
    }

    @Test("packed self-attestation: signature, alg and statement shape")
    func packedStatements() throws {
        let a = try TestAuthenticator.p256()
        var r = try F.registration(a, format: "packed")
        _ = try Self.register(r)
        // A statement signed over other authenticator data.
        let other = try F.registration(a, format: "packed", signCount: 1)
        let value = try CBORReader().decode(other.attestationObject)
        r.attestationObject = F.attestationObject(fmt: "packed", attStmt: value["attStmt"]!, authData: r.authData)
        #expect(Self.code { _ = try Self.register(r) } == .badSignature)
        // alg other than the credential key's.
        let sig = try a.sign(authenticatorData: r.authData, clientDataJSON: r.clientDataJSON)
        func statement(_ entries: [(CBORValue, CBORValue)], fmt: String = "packed") -> F.Registration {
            var copy = r
            copy.attestationObject = F.attestationObject(fmt: fmt, attStmt: CBORWriter.canonicalMap(entries), authData: r.authData)
            return copy
        }
        _ = try Self.register(statement([(.text("alg"), .int(-7)), (.text("sig"), .bytes(sig))]))
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .int(-257)), (.text("sig"), .bytes(sig))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(statement([(.text("sig"), .bytes(sig))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .text("ES256")), (.text("sig"), .bytes(sig))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .int(-7)), (.text("sig"), .bytes(sig)), (.text("foo"), .int(1))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .int(-7)), (.text("sig"), .bytes(sig)), (.text("x5c"), .array([.bytes([0x30])]))])) } == .unsupportedAttestation)
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .int(-7)), (.text("sig"), .bytes(sig)), (.text("ecdaaKeyId"), .bytes([1]))])) } == .unsupportedAttestation)
        // none with a statement; other formats.
        #expect(Self.code { _ = try Self.register(statement([(.text("alg"), .int(-7))], fmt: "none")) } == .malformedAttestation)
        for fmt in ["fido-u2f", "tpm", "android-key", "android-safetynet", "apple", "None", ""] {
            #expect(Self.code { _ = try Self.register(statement([], fmt: fmt)) } == .unsupportedAttestation, "\(fmt)")
        }
    }

    @Test("attestation object shape")
    func attestationObjectShape() throws {
        let a = try TestAuthenticator.p256()
        var r = try F.registration(a)
        func with(_ entries: [(CBORValue, CBORValue)]) -> F.Registration {
            var copy = r
            copy.attestationObject = CBORWriter.encode(CBORWriter.canonicalMap(entries))
            return copy
        }
        let fmt: (CBORValue, CBORValue) = (.text("fmt"), .text("none")), stmt: (CBORValue, CBORValue) = (.text("attStmt"), .map([]))
        let auth: (CBORValue, CBORValue) = (.text("authData"), .bytes(r.authData))
        _ = try Self.register(with([fmt, stmt, auth]))
        #expect(Self.code { _ = try Self.register(with([fmt, auth])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(with([fmt, stmt, auth, (.text("extra"), .int(1))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(with([fmt, stmt, (.text("authData"), .text("x"))])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(with([(.text("fmt"), .int(1)), stmt, auth])) } == .malformedAttestation)
        #expect(Self.code { _ = try Self.register(with([fmt, (.text("attStmt"), .array([])), auth])) } == .malformedAttestation)
        r.attestationObject = CBORWriter.encode(.array([.text("none")]))
        #expect(Self.code { _ = try Self.register(r) } == .malformedAttestation)
    }

    @Test("truncated and oversized CBOR in the attestation object")
    func malformedCBOR() throws {
        let a = try TestAuthenticator.p256()
        let r = try F.registration(a)
        for cut in [1, 5, r.attestationObject.count / 2, r.attestationObject.count - 1] {
            var t = r
            t.attestationObject = Array(r.attestationObject.prefix(cut))
            let error = webAuthnError { _ = try Self.register(t) }
            #expect(error?.code == .malformedCBOR, "cut at \(cut)")
            #expect(error?.cbor?.kind == .truncated || error?.cbor?.kind == .lengthExceedsInput)
        }
        // authData declared with a length far beyond the input.
        var big = r
        big.attestationObject = hex("a3 63666d74 646e6f6e65 6761747453746d74 a0 686175746844617461 5a 7fffffff") + r.authData
        #expect(webAuthnError { _ = try Self.register(big) }?.cbor?.kind == .lengthExceedsInput)
        // Trailing bytes, a float, a tag.
        var t = r
        t.attestationObject = r.attestationObject + [0x00]
        #expect(webAuthnError { _ = try Self.register(t) }?.cbor?.kind == .trailingBytes)
        t.attestationObject = [0xC0] + r.attestationObject
        #expect(webAuthnError { _ = try Self.register(t) }?.cbor?.kind == .tagNotAllowed)
        // Non-canonical: the outer map with authData before attStmt.
        t.attestationObject = CBORWriter.encode(.map([
            CBORMapEntry(key: .text("fmt"), value: .text("none")), CBORMapEntry(key: .text("authData"), value: .bytes(r.authData)),
            CBORMapEntry(key: .text("attStmt"), value: .map([])),
        ]))
        #expect(webAuthnError { _ = try Self.register(t) }?.cbor?.kind == .mapKeysOutOfOrder)
        // Larger than the limit.
        t.attestationObject = [UInt8](repeating: 0, count: CBORReader.defaultMaximumLength + 1)
        #expect(Self.code { _ = try Self.register(t) } == .inputTooLarge)
        // A COSE key inside authData that is cut short, or non-canonical.
        var key = a.coseKeyBytes
        key.removeLast(3)
        #expect(Self.code { _ = try Self.register(F.registration(a, key: key)) } == .malformedCBOR)
        #expect(Self.code { _ = try Self.register(F.registration(a, key: [0xA5, 0x03, 0x26] + Array(a.coseKeyBytes.dropFirst(1)))) } == .malformedCBOR)
    }

    @Test("authenticator data: flags, lengths, credential ID bound, extensions")
    func authenticatorData() throws {
        let a = try TestAuthenticator.p256()
        #expect(Self.code { _ = try Self.register(F.registration(a, flags: [.userVerified])) } == .userNotPresent)
        #expect(Self.code { _ = try Self.register(F.registration(a, flags: [.userPresent]), rp: F.relyingParty(requireUV: true)) } == .userNotVerified)
        _ = try Self.register(F.registration(a, flags: [.userPresent, .userVerified]), rp: F.relyingParty(requireUV: true))
        #expect(Self.code { _ = try Self.register(F.registration(a, flags: [.userPresent, .backedUp])) } == .malformedAuthenticatorData)
        let synced = try Self.register(F.registration(a, flags: [.userPresent, .backupEligible, .backedUp]))
        #expect(synced.backupEligible && synced.backedUp)
        // Credential IDs: 1023 bytes accepted, 1024 refused.
        _ = try Self.register(F.registration(a, credentialID: Array(repeating: 7, count: 1023)))
        #expect(Self.code { _ = try Self.register(F.registration(a, credentialID: Array(repeating: 7, count: 1024))) } == .credentialIDTooLong)
        #expect(Self.code { _ = try Self.register(F.registration(a, credentialID: Array(repeating: 7, count: 40_000))) } == .credentialIDTooLong)
        // Extensions: a map is accepted and ignored; anything else is refused.
        let extensions = CBORWriter.encode(CBORWriter.canonicalMap([(.text("credProtect"), .int(2))]))
        _ = try Self.register(F.registration(a, extensions: extensions))
        _ = try Self.signIn(F.assertion(a, extensions: extensions), key: a.coseKeyBytes)
        #expect(Self.code { _ = try Self.register(F.registration(a, extensions: CBORWriter.encode(.array([])))) } == .malformedAuthenticatorData)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, extensions: [0xA1, 0x61]), key: a.coseKeyBytes) } == .malformedCBOR)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, extensions: [0xF9, 0x3C, 0x00]), key: a.coseKeyBytes) } == .malformedCBOR)

        // Registration without attested credential data.
        var r = try F.registration(a)
        let plain = F.authenticatorData(flags: [.userPresent], signCount: 0)
        r.attestationObject = F.attestationObject(fmt: "none", attStmt: .map([]), authData: plain)
        #expect(Self.code { _ = try Self.register(r) } == .attestedCredentialDataMissing)

        // Parsing alone: short, trailing bytes, ED without data, AT cut short.
        func parse(_ bytes: [UInt8]) -> WebAuthnError.Code? { webAuthnError { _ = try AuthenticatorData(bytes: bytes) }?.code }
        #expect(parse(Array(plain.prefix(36))) == .malformedAuthenticatorData)
        #expect(parse([]) == .malformedAuthenticatorData)
        #expect(parse(plain + [0]) == .malformedAuthenticatorData)
        #expect(parse(F.authenticatorData(flags: [.userPresent], signCount: 0, rawFlags: 0x81)) == .malformedAuthenticatorData)
        #expect(parse(F.authenticatorData(flags: [.userPresent], signCount: 0, rawFlags: 0x41)) == .malformedAuthenticatorData)
        let full = F.authenticatorData(flags: [.userPresent], signCount: 0, attested: (a.aaguid, a.credentialID, a.coseKeyBytes))
        for cut in [38, 37 + 17, 37 + 18, 37 + 18 + 31, 37 + 18 + 32] {
            let code = parse(Array(full.prefix(cut)))
            #expect(code == .malformedAuthenticatorData || code == .malformedCBOR, "cut at \(cut)")
        }
        #expect(parse(full) == nil)
        #expect(parse(full + [0xA0]) == .malformedAuthenticatorData)  // a map, but ED is clear
        let parsed = try AuthenticatorData(bytes: F.authenticatorData(flags: [.userPresent], signCount: 0x01020304))
        #expect(parsed.signCount == 0x01020304 && parsed.attestedCredentialData == nil && parsed.extensions == nil)
        // An assertion whose authenticator data carries (well-formed) attested credential data:
        // verified, the attested data ignored.
        var withAT = try F.assertion(a)
        withAT.authenticatorData = full
        withAT.signature = try a.sign(authenticatorData: full, clientDataJSON: withAT.clientDataJSON)
        _ = try Self.signIn(withAT, key: a.coseKeyBytes)
    }

    @Test("sign-in: user presence and verification")
    func assertionFlags() throws {
        let a = try TestAuthenticator.ed25519()
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, flags: []), key: a.coseKeyBytes) } == .userNotPresent)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a, flags: [.userPresent]), key: a.coseKeyBytes, rp: F.relyingParty(requireUV: true)) } == .userNotVerified)
        let ok = try Self.signIn(F.assertion(a, flags: [.userPresent, .userVerified]), key: a.coseKeyBytes, rp: F.relyingParty(requireUV: true))
        #expect(ok.userVerified)
    }

    @Test("signature counter: advances, both zero, regressions carry both values", arguments: [
        // (stored, received, regressed)
        (UInt32(0), UInt32(0), false), (0, 1, false), (5, 6, false), (5, 5, true), (5, 4, true), (5, 0, true),
        (UInt32.max - 1, UInt32.max, false), (UInt32.max, UInt32.max, true),
    ])
    func signCounter(stored: UInt32, received: UInt32, regressed: Bool) throws {
        let a = try TestAuthenticator.p256()
        let assertion = try F.assertion(a, signCount: received)
        let error = webAuthnError { _ = try Self.signIn(assertion, key: a.coseKeyBytes, signCount: stored) }
        if regressed {
            #expect(error?.code == .signCountRegressed)
            #expect(error?.signCounts == WebAuthnError.SignCounts(stored: stored, received: received))
            let reported = try Self.signIn(assertion, key: a.coseKeyBytes, signCount: stored, rp: F.relyingParty(policy: .report))
            #expect(reported.counterRegressed && reported.newSignCount == stored)
        } else {
            #expect(error == nil)
            let result = try Self.signIn(assertion, key: a.coseKeyBytes, signCount: stored)
            #expect(result.newSignCount == received && !result.counterRegressed)
        }
        // A forged assertion never reaches the counter: the signature is checked first.
        var forged = assertion
        forged.signature[10] ^= 1
        #expect(Self.code { _ = try Self.signIn(forged, key: a.coseKeyBytes, signCount: stored) } == .badSignature)
    }

    @Test("unsupported algorithm at registration and a stored key that no longer reads")
    func unsupportedAlgorithm() throws {
        let a = try TestAuthenticator.p256()
        guard case .map(var entries) = a.coseKey else { Issue.record("not a map"); return }
        entries[1] = CBORMapEntry(key: .int(3), value: .int(-35))
        #expect(Self.code { _ = try Self.register(F.registration(a, key: CBORWriter.encode(.map(entries)))) } == .unsupportedAlgorithm)
        entries[1] = CBORMapEntry(key: .int(3), value: .int(-7))
        entries[0] = CBORMapEntry(key: .int(1), value: .int(1))
        #expect(Self.code { _ = try Self.register(F.registration(a, key: CBORWriter.encode(.map(entries)))) } == .unsupportedAlgorithm)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a), key: [0xA0]) } == .malformedCredentialKey)
        #expect(Self.code { _ = try Self.signIn(F.assertion(a), key: []) } == .malformedCBOR)
    }

    @Test("malformed clientDataJSON")
    func malformedClientData() throws {
        let a = try TestAuthenticator.p256()
        let challenge = try F.challenge()
        let c = Base64URL.encode(challenge)
        let cases = [
            "", "null", "[]", "{", "{\"type\":\"webauthn.get\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"origin\":1}",
            "{\"type\":1,\"challenge\":\"\(c)\",\"origin\":\"https://example.org\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)=\",\"origin\":\"https://example.org\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c.replacingOccurrences(of: "_", with: "/").replacingOccurrences(of: "-", with: "+"))+/\",\"origin\":\"https://example.org\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"challenge\":\"\(c)\",\"origin\":\"https://example.org\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"origin\":\"https://example.org\",\"crossOrigin\":\"false\"}",
            "{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"origin\":\"https://example.org\"} x",
            "\u{FEFF}{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"origin\":\"https://example.org\"}",
        ]
        for text in cases {
            var assertion = try F.assertion(a)
            assertion.clientDataJSON = Array(text.utf8)
            assertion.signature = try a.sign(authenticatorData: assertion.authenticatorData, clientDataJSON: assertion.clientDataJSON)
            #expect(Self.code { _ = try Self.signIn(assertion, key: a.coseKeyBytes, challenge: challenge) } == .malformedClientData, "\(text)")
        }
        var invalidUTF8 = try F.assertion(a)
        invalidUTF8.clientDataJSON = Array("{\"type\":\"webauthn.get\",\"challenge\":\"\(c)\",\"origin\":\"https://example.org\",\"x\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect(Self.code { _ = try Self.signIn(invalidUTF8, key: a.coseKeyBytes, challenge: challenge) } == .malformedClientData)
        var huge = try F.assertion(a)
        huge.clientDataJSON = Array(repeating: 0x20, count: CollectedClientData.maximumLength + 1)
        #expect(Self.code { _ = try Self.signIn(huge, key: a.coseKeyBytes) } == .inputTooLarge)
        // An origin that is canonically equivalent Unicode, but not the same bytes, is not allowed.
        let rp = RelyingParty(id: "example.org", allowedOrigins: ["https://caf\u{00E9}.example.org"], requireUserVerification: false)
        let decomposed = try F.assertion(a, origin: "https://cafe\u{0301}.example.org")
        #expect(Self.code { _ = try Self.signIn(decomposed, key: a.coseKeyBytes, rp: rp) } == .originNotAllowed)
        _ = try Self.signIn(try F.assertion(a, origin: "https://caf\u{00E9}.example.org"), key: a.coseKeyBytes, rp: rp)
    }
}
