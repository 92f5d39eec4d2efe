import GatehouseCrypto

/// The COSE signature algorithms (IANA "COSE Algorithms") that Gatehouse verifies for passkeys.
///
/// These three cover every authenticator in use: platform passkeys and security keys sign with
/// ES256, some security keys with EdDSA, Windows Hello with RS256. The service lists them, in
/// this order, in `pubKeyCredParams`.
public enum COSEAlgorithm: Int64, Sendable, CaseIterable {
    /// ECDSA with SHA-256 on P-256 (kty EC2, crv 1).
    case es256 = -7
    /// EdDSA, with Ed25519 (kty OKP, crv 6) the only curve accepted.
    case edDSA = -8
    /// RSASSA-PKCS1-v1_5 with SHA-256 (kty RSA), modulus at least 2048 bits.
    case rs256 = -257
}

/// A credential public key in COSE_Key form (RFC 9052 §7), read strictly and loaded into libcrypto.
///
/// Accepted, and nothing else (anything else with a well-formed `kty`/`alg` is
/// ``WebAuthnError/Code/unsupportedAlgorithm``):
/// - EC2: `{1: 2, 3: -7, -1: 1, -2: x (32 bytes), -3: y (32 bytes)}` — a point on P-256;
/// - OKP: `{1: 1, 3: -8, -1: 6, -2: x (32 bytes)}` — Ed25519;
/// - RSA: `{1: 3, 3: -257, -1: n, -2: e}` — n of 2048…8192 bits, e odd, both without leading
///   zero bytes (RFC 8230 §4).
///
/// WebAuthn §6.5.1 says the key "MUST contain the alg parameter and MUST NOT contain any other
/// OPTIONAL parameters", so any label outside those lists (`kid`, `key_ops`, private-key
/// members, …) is ``WebAuthnError/Code/malformedCredentialKey``. The CBOR itself must be CTAP2
/// canonical (see ``CBORReader``).
public struct COSEKey: Sendable {
    /// The key material, by key type.
    public enum Parameters: Sendable, Hashable {
        /// A P-256 point.
        case p256(x: [UInt8], y: [UInt8])
        /// An Ed25519 public key.
        case ed25519(x: [UInt8])
        /// An RSA public key.
        case rsa(modulus: [UInt8], exponent: [UInt8])
    }

    /// The signature algorithm the key is bound to.
    public let algorithm: COSEAlgorithm
    /// The key material.
    public let parameters: Parameters
    private let verifier: Verifier

    /// The key loaded into libcrypto (each case a final class owning its `EVP_PKEY`).
    private enum Verifier: Sendable {
        case p256(P256PublicKey)
        case ed25519(Ed25519PublicKey)
        case rsa(RSAPublicKey)
    }

    // COSE_Key labels (RFC 9052 §7.1, RFC 9053 §7, RFC 8230 §4).
    private static let kty: Int64 = 1, alg: Int64 = 3, crv: Int64 = -1, x: Int64 = -2, y: Int64 = -3
    private static let rsaN: Int64 = -1, rsaE: Int64 = -2

    /// Reads the COSE key encoded in `bytes` (the whole input: a stored credential key).
    public init(bytes: [UInt8]) throws(WebAuthnError) {
        let value: CBORValue
        do throws(CBORError) { value = try CBORReader().decode(bytes) } catch { throw .cbor(error, in: "credential public key") }
        try self.init(value)
    }

    /// Reads a COSE key that has already been decoded.
    public init(_ value: CBORValue) throws(WebAuthnError) {
        guard case .map(let entries) = value else { throw WebAuthnError(.malformedCredentialKey, "COSE key is not a map") }
        var members: [Int64: CBORValue] = [:]
        for entry in entries {
            // Keys are unique already (the reader refuses duplicates); labels here are integers.
            guard let label = entry.key.integer else {
                throw WebAuthnError(.malformedCredentialKey, "COSE key has a label that is not an integer")
            }
            members[label] = entry.value
        }
        guard let kty = members[Self.kty]?.integer, let alg = members[Self.alg]?.integer else {
            throw WebAuthnError(.malformedCredentialKey, "COSE key lacks an integer kty or alg")
        }
        func allowOnly(_ labels: Set<Int64>) throws(WebAuthnError) {
            for label in members.keys where !labels.contains(label) {
                throw WebAuthnError(.malformedCredentialKey, "COSE key has parameter \(label), which WebAuthn does not allow here")
            }
        }
        func bytes(_ label: Int64, _ name: String) throws(WebAuthnError) -> [UInt8] {
            guard case .bytes(let b)? = members[label] else {
                throw WebAuthnError(.malformedCredentialKey, "COSE key parameter \(name) is missing or not a byte string")
            }
            return b
        }
        switch (kty, alg) {
        case (2, COSEAlgorithm.es256.rawValue):
            guard members[Self.crv]?.integer == 1 else {
                throw WebAuthnError(.unsupportedAlgorithm, "ES256 key on a curve other than P-256")
            }
            try allowOnly([Self.kty, Self.alg, Self.crv, Self.x, Self.y])
            let x = try bytes(Self.x, "x"), y = try bytes(Self.y, "y")  // y as a bool (compressed) is refused here
            guard x.count == 32, y.count == 32 else {
                throw WebAuthnError(.malformedCredentialKey, "P-256 coordinates must be 32 bytes each")
            }
            do { verifier = .p256(try P256PublicKey(x: x, y: y)) } catch {
                throw WebAuthnError(.malformedCredentialKey, "not a point on P-256")
            }
            algorithm = .es256
            parameters = .p256(x: x, y: y)
        case (1, COSEAlgorithm.edDSA.rawValue):
            guard members[Self.crv]?.integer == 6 else {
                throw WebAuthnError(.unsupportedAlgorithm, "EdDSA key on a curve other than Ed25519")
            }
            try allowOnly([Self.kty, Self.alg, Self.crv, Self.x])
            let x = try bytes(Self.x, "x")
            guard x.count == 32 else { throw WebAuthnError(.malformedCredentialKey, "Ed25519 key must be 32 bytes") }
            do { verifier = .ed25519(try Ed25519PublicKey(rawRepresentation: x)) } catch {
                throw WebAuthnError(.malformedCredentialKey, "libcrypto refused the Ed25519 key")
            }
            algorithm = .edDSA
            parameters = .ed25519(x: x)
        case (3, COSEAlgorithm.rs256.rawValue):
            try allowOnly([Self.kty, Self.alg, Self.rsaN, Self.rsaE])
            let n = try bytes(Self.rsaN, "n"), e = try bytes(Self.rsaE, "e")
            do throws(CryptoError) { verifier = .rsa(try RSAPublicKey(modulus: n, exponent: e)) } catch {
                throw WebAuthnError(.malformedCredentialKey, "RSA key refused: \(error.message)")
            }
            algorithm = .rs256
            parameters = .rsa(modulus: n, exponent: e)
        default:
            throw WebAuthnError(.unsupportedAlgorithm, "COSE key type \(kty) with algorithm \(alg) is not supported")
        }
    }

    /// True when `signature` is this key's signature of `authenticatorData ‖ clientDataHash`, the
    /// message of WebAuthn assertions and of packed self-attestation. ES256 and RS256 hash the two
    /// parts without joining them; Ed25519 signs the message itself, so it is joined.
    public func isValidSignature(
        _ signature: [UInt8], authenticatorData: [UInt8], clientDataHash: [UInt8]
    ) -> Bool {
        switch verifier {
        case .p256(let key):
            return Self.withDigest(authenticatorData, clientDataHash) { digest in
                signature.withUnsafeBytes { key.isValidSignature($0, digest: digest) }
            }
        case .rsa(let key):
            return Self.withDigest(authenticatorData, clientDataHash) { digest in
                signature.withUnsafeBytes { key.isValidPKCS1SHA256Signature($0, digest: digest) }
            }
        case .ed25519(let key):
            let message = authenticatorData + clientDataHash
            return signature.withUnsafeBytes { s in message.withUnsafeBytes { key.isValidSignature(s, for: $0) } }
        }
    }

    private static func withDigest(_ first: [UInt8], _ second: [UInt8], _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest in
            first.withUnsafeBytes { a in second.withUnsafeBytes { b in Digest.sha256(a, b, into: digest) } }
            return body(UnsafeRawBufferPointer(digest))
        }
    }
}
