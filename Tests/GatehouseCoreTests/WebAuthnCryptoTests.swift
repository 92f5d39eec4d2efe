import GatehouseCrypto
import Testing

@Suite("WebAuthn: signature verification in GatehouseCrypto")
struct WebAuthnCryptoTests {
    static func verify(_ key: P256PublicKey, _ signature: [UInt8], _ message: [UInt8]) -> Bool {
        signature.withUnsafeBytes { s in message.withUnsafeBytes { key.isValidSignature(s, for: $0) } }
    }

    @Test("P-256: a generated key's signatures verify, others do not")
    func p256RoundTrip() throws {
        let key = try P256PrivateKey()
        let message = Array("authenticator data and client data hash".utf8)
        let signature = try key.signature(for: message)
        #expect(Self.verify(key.publicKey, signature, message))
        #expect(!Self.verify(key.publicKey, signature, message + [0]))
        #expect(!Self.verify(try P256PrivateKey().publicKey, signature, message))
        var flipped = signature
        flipped[flipped.count - 1] ^= 0x01
        #expect(!Self.verify(key.publicKey, flipped, message))
        #expect(!Self.verify(key.publicKey, [], message))
        // The same point loaded from its coordinates verifies too.
        let reloaded = try P256PublicKey(x: key.publicKey.x, y: key.publicKey.y)
        #expect(Self.verify(reloaded, signature, message))
        // Digest form.
        let digest = Digest.hash(.sha256, message)
        #expect(signature.withUnsafeBytes { s in digest.withUnsafeBytes { reloaded.isValidSignature(s, digest: $0) } })
        #expect(!signature.withUnsafeBytes { s in Array(digest.prefix(31)).withUnsafeBytes { reloaded.isValidSignature(s, digest: $0) } })
    }

    /// `SEQUENCE { INTEGER r, INTEGER s }` parts of a DER signature.
    static func integers(_ der: [UInt8]) -> (r: [UInt8], s: [UInt8]) {
        precondition(der[0] == 0x30 && der[1] < 0x80)
        let rLength = Int(der[3])
        let r = Array(der[4..<4 + rLength])
        let s = Array(der[(6 + rLength)...])
        return (r, s)
    }

    static func sequence(_ body: [UInt8], longForm: Bool = false) -> [UInt8] {
        longForm ? [0x30, 0x81, UInt8(body.count)] + body : [0x30, UInt8(body.count)] + body
    }

    @Test("P-256: only DER is accepted (libcrypto re-encodes and compares)")
    func p256DERStrictness() throws {
        let key = try P256PrivateKey()
        let message = Array("message".utf8)
        let der = try key.signature(for: message)
        #expect(Self.verify(key.publicKey, der, message))
        let (r, s) = Self.integers(der)
        let canonical = Self.sequence([0x02, UInt8(r.count)] + r + [0x02, UInt8(s.count)] + s)
        #expect(canonical == der)
        // Long-form length of the SEQUENCE (BER, not DER).
        #expect(!Self.verify(key.publicKey, Self.sequence([0x02, UInt8(r.count)] + r + [0x02, UInt8(s.count)] + s, longForm: true), message))
        // A superfluous leading zero on r.
        #expect(!Self.verify(key.publicKey, Self.sequence([0x02, UInt8(r.count + 1), 0x00] + r + [0x02, UInt8(s.count)] + s), message))
        // Long-form length of an INTEGER.
        #expect(!Self.verify(key.publicKey, Self.sequence([0x02, 0x81, UInt8(r.count)] + r + [0x02, UInt8(s.count)] + s), message))
        // Trailing garbage after the SEQUENCE, and inside it.
        #expect(!Self.verify(key.publicKey, der + [0x00], message))
        #expect(!Self.verify(key.publicKey, Self.sequence([0x02, UInt8(r.count)] + r + [0x02, UInt8(s.count)] + s + [0x05, 0x00]), message))
        // The raw r ‖ s form (JOSE/IEEE P1363) is not DER either.
        #expect(!Self.verify(key.publicKey, Array((Array(repeating: 0, count: 32) + r).suffix(32)) + Array((Array(repeating: 0, count: 32) + s).suffix(32)), message))
    }

    @Test("P-256: coordinates must be 32 bytes and the point on the curve")
    func p256KeyValidation() throws {
        let key = try P256PrivateKey().publicKey
        #expect(throws: CryptoError.self) { try P256PublicKey(x: Array(key.x.dropFirst()), y: key.y) }
        #expect(throws: CryptoError.self) { try P256PublicKey(x: key.x, y: key.y + [0]) }
        var offCurve = key.y
        offCurve[31] ^= 0x01
        #expect(throws: CryptoError.self) { try P256PublicKey(x: key.x, y: offCurve) }
        #expect(throws: CryptoError.self) { try P256PublicKey(x: Array(repeating: 0, count: 32), y: Array(repeating: 0, count: 32)) }
        // Coordinates ≥ p are not field elements.
        #expect(throws: CryptoError.self) { try P256PublicKey(x: Array(repeating: 0xFF, count: 32), y: key.y) }
    }

    @Test("RSA: PKCS #1 v1.5 SHA-256 round trip, exact signature length, 2048-bit minimum")
    func rsa() throws {
        let key = try RSAPrivateKey(bits: 2048)
        let message = Array("assertion".utf8)
        let signature = try key.signature(for: message)
        let publicKey = try RSAPublicKey(modulus: key.modulus, exponent: key.exponent)
        #expect(publicKey.modulusBits == 2048)
        func verify(_ sig: [UInt8], _ msg: [UInt8]) -> Bool {
            sig.withUnsafeBytes { s in msg.withUnsafeBytes { publicKey.isValidPKCS1SHA256Signature(s, for: $0) } }
        }
        #expect(verify(signature, message))
        #expect(!verify(signature, message + [1]))
        var flipped = signature
        flipped[100] ^= 0x80
        #expect(!verify(flipped, message))
        #expect(!verify([0] + signature, message))
        #expect(!verify(Array(signature.dropFirst()), message))
        let short = try RSAPrivateKey(bits: 1024)
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: short.modulus, exponent: short.exponent) }
    }

    @Test("Ed25519 verification is GatehouseCrypto's existing Ed25519PublicKey")
    func ed25519() throws {
        let key = try Ed25519PrivateKey(seed: Array(repeating: 7, count: 32))
        let message = Array("message".utf8)
        let signature = try message.withUnsafeBytes { try key.signature(for: $0) }
        #expect(signature.withUnsafeBytes { s in message.withUnsafeBytes { key.publicKey.isValidSignature(s, for: $0) } })
        #expect(!(signature + [0]).withUnsafeBytes { s in message.withUnsafeBytes { key.publicKey.isValidSignature(s, for: $0) } })
    }

    @Test("SHA-256 of two parts equals SHA-256 of their concatenation")
    func twoPartDigest() {
        let a = Array("authenticator data".utf8), b = Array(repeating: UInt8(9), count: 32)
        var out = [UInt8](repeating: 0, count: 32)
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in out.withUnsafeMutableBytes { Digest.sha256(x, y, into: $0) } } }
        #expect(out == Digest.hash(.sha256, a + b))
    }
}
