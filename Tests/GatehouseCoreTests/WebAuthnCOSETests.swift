import GatehouseCore
import GatehouseTesting
import GatehouseCrypto
import Testing

@Suite("WebAuthn: COSE credential keys")
struct WebAuthnCOSETests {
    /// The credential key of a W3C vector's registration, as the authenticator encoded it.
    static func w3cKey(_ vector: W3CVector) throws -> [UInt8] {
        let value = try CBORReader().decode(vector.attestationObject)
        guard case .bytes(let authData)? = value["authData"] else { throw WebAuthnError(.malformedAttestation, "no authData") }
        return try #require(try AuthenticatorData(bytes: authData).attestedCredentialData).credentialPublicKey
    }

    static func key(_ entries: [(CBORValue, CBORValue)]) -> [UInt8] {
        CBORWriter.encode(CBORWriter.canonicalMap(entries))
    }

    static func code(_ bytes: [UInt8]) -> WebAuthnError.Code? {
        webAuthnError { _ = try COSEKey(bytes: bytes) }?.code
    }

    /// The W3C ES256 key's coordinates (from its attestation object), for building variants.
    static func es256(_ extra: [(CBORValue, CBORValue)] = [], crv: Int64 = 1, alg: Int64 = -7, x: CBORValue? = nil, y: CBORValue? = nil) throws -> [UInt8] {
        let parsed = try COSEKey(bytes: w3cKey(W3CVectors.noneES256))
        guard case .p256(let px, let py) = parsed.parameters else { throw WebAuthnError(.malformedCredentialKey, "not EC2") }
        return key([(.int(1), .int(2)), (.int(3), .int(alg)), (.int(-1), .int(crv)), (.int(-2), x ?? .bytes(px)), (.int(-3), y ?? .bytes(py))] + extra)
    }

    @Test("the W3C vectors' ES256, RS256 and Ed25519 keys are read with their algorithm")
    func w3cKeys() throws {
        let es = try COSEKey(bytes: Self.w3cKey(W3CVectors.noneES256))
        #expect(es.algorithm == .es256)
        // §16 "ES256 Credential with No Attestation": x = afefa16f…, y = 930a56b8….
        #expect(es.parameters == .p256(
            x: hex("afefa16f97ca9b2d23eb86ccb64098d20db90856062eb249c33a9b672f26df61"),
            y: hex("930a56b87a2fca66334b03458abf879717c12cc68ed73290af2e2664796b9220")
        ))
        let rsa = try COSEKey(bytes: Self.w3cKey(W3CVectors.packedRS256))
        #expect(rsa.algorithm == .rs256)
        if case .rsa(let n, let e) = rsa.parameters {
            // The spec builds it from the Mersenne primes 2^1279 - 1 and 2^2203 - 1: 3482 bits.
            #expect(n.count == 436 && e == [0x01, 0x00, 0x01])
        } else { Issue.record("not an RSA key") }
        let ed = try COSEKey(bytes: Self.w3cKey(W3CVectors.packedEd25519))
        #expect(ed.algorithm == .edDSA)
        if case .ed25519(let x) = ed.parameters { #expect(x.count == 32) } else { Issue.record("not an Ed25519 key") }
    }

    @Test("generated keys of the three algorithms are read back")
    func generatedKeys() throws {
        for authenticator in [try TestAuthenticator.p256(), try TestAuthenticator.ed25519()] {
            let key = try COSEKey(bytes: authenticator.coseKeyBytes)
            #expect(key.algorithm.rawValue == authenticator.algorithm)
        }
    }

    @Test("other algorithms, key types and curves are unsupportedAlgorithm")
    func unsupported() throws {
        #expect(Self.code(try Self.w3cKey(W3CVectors.packedES384)) == .unsupportedAlgorithm)  // EC2, -35, P-384
        #expect(Self.code(try Self.es256(alg: -35)) == .unsupportedAlgorithm)  // ES384 label on a P-256 key
        #expect(Self.code(try Self.es256(crv: 2)) == .unsupportedAlgorithm)  // ES256 on P-384
        #expect(Self.code(try Self.es256(alg: -47)) == .unsupportedAlgorithm)  // ES256K
        #expect(Self.code(Self.key([(.int(1), .int(1)), (.int(3), .int(-8)), (.int(-1), .int(7)), (.int(-2), .bytes(Array(repeating: 1, count: 57)))])) == .unsupportedAlgorithm)  // Ed448
        #expect(Self.code(Self.key([(.int(1), .int(3)), (.int(3), .int(-37)), (.int(-1), .bytes([1])), (.int(-2), .bytes([1, 0, 1]))])) == .unsupportedAlgorithm)  // PS256
        #expect(Self.code(Self.key([(.int(1), .int(4)), (.int(3), .int(5)), (.int(-1), .bytes(Array(repeating: 1, count: 32)))])) == .unsupportedAlgorithm)  // symmetric
        #expect(Self.code(Self.key([(.int(1), .int(2)), (.int(3), .int(-8)), (.int(-1), .int(6)), (.int(-2), .bytes(Array(repeating: 1, count: 32)))])) == .unsupportedAlgorithm)  // EdDSA on EC2
    }

    @Test("malformed keys are malformedCredentialKey")
    func malformed() throws {
        // Missing alg (WebAuthn: the key MUST carry it).
        #expect(Self.code(Self.key([(.int(1), .int(2)), (.int(-1), .int(1)), (.int(-2), .bytes(Array(repeating: 1, count: 32))), (.int(-3), .bytes(Array(repeating: 1, count: 32)))])) == .malformedCredentialKey)
        // A coordinate of the wrong length, or y as the compressed-point sign.
        #expect(Self.code(try Self.es256(x: .bytes(Array(repeating: 1, count: 31)))) == .malformedCredentialKey)
        #expect(Self.code(try Self.es256(y: .bool(true))) == .malformedCredentialKey)
        // A point that is not on the curve.
        #expect(Self.code(try Self.es256(y: .bytes(Array(repeating: 0x42, count: 32)))) == .malformedCredentialKey)
        // Optional parameters WebAuthn forbids: kid (2), key_ops (4); a private key member (-4).
        #expect(Self.code(try Self.es256([(.int(2), .bytes([1, 2]))])) == .malformedCredentialKey)
        #expect(Self.code(try Self.es256([(.int(4), .array([.int(2)]))])) == .malformedCredentialKey)
        #expect(Self.code(try Self.es256([(.int(-4), .bytes(Array(repeating: 1, count: 32)))])) == .malformedCredentialKey)
        // A text label; not a map at all.
        #expect(Self.code(try Self.es256([(.text("kid"), .bytes([1]))])) == .malformedCredentialKey)
        #expect(Self.code(CBORWriter.encode(.array([.int(1)]))) == .malformedCredentialKey)
        // Ed25519 of the wrong length.
        #expect(Self.code(Self.key([(.int(1), .int(1)), (.int(3), .int(-8)), (.int(-1), .int(6)), (.int(-2), .bytes(Array(repeating: 1, count: 33)))])) == .malformedCredentialKey)
    }

    @Test("RSA keys: at least 2048 bits, odd, no leading zeros, a sane exponent")
    func rsaRules() throws {
        guard case .rsa(let n, let e) = try COSEKey(bytes: Self.w3cKey(W3CVectors.packedRS256)).parameters else {
            Issue.record("not RSA"); return
        }
        func rsa(_ n: [UInt8], _ e: [UInt8]) -> [UInt8] {
            Self.key([(.int(1), .int(3)), (.int(3), .int(-257)), (.int(-1), .bytes(n)), (.int(-2), .bytes(e))])
        }
        #expect(Self.code(rsa(n, e)) == nil)
        #expect(Self.code(rsa(Array(n.prefix(128)) + [], e)) == .malformedCredentialKey)  // 1024 bits
        #expect(Self.code(rsa([0] + n, e)) == .malformedCredentialKey)  // leading zero
        #expect(Self.code(rsa(n, [0] + e)) == .malformedCredentialKey)
        #expect(Self.code(rsa(n, [0x01, 0x00, 0x00])) == .malformedCredentialKey)  // even exponent
        #expect(Self.code(rsa(n, [0x01])) == .malformedCredentialKey)
        #expect(Self.code(rsa(n, Array(repeating: 0xFF, count: 9))) == .malformedCredentialKey)  // > 8 bytes
        #expect(Self.code(rsa(Array(repeating: 0xFF, count: 1025), e)) == .malformedCredentialKey)  // > 8192 bits
        var even = n
        even[even.count - 1] &= 0xFE
        #expect(Self.code(rsa(even, e)) == .malformedCredentialKey)
    }

    @Test("keys must be canonical CBOR")
    func canonical() throws {
        var bytes = try Self.w3cKey(W3CVectors.noneES256)
        #expect(Self.code(bytes + [0x00]) == .malformedCBOR)  // trailing byte
        // Swap kty and alg entries: {3: -7, 1: 2, …}.
        bytes.replaceSubrange(1..<5, with: [0x03, 0x26, 0x01, 0x02])
        let error = webAuthnError { _ = try COSEKey(bytes: bytes) }
        #expect(error?.code == .malformedCBOR)
        #expect(error?.cbor?.kind == .mapKeysOutOfOrder)
    }
}
