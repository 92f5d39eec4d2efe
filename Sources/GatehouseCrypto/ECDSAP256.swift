internal import CLibCrypto

/// An ECDSA verification key on NIST P-256 (secp256r1), as COSE `ES256` (-7) and JOSE `ES256`
/// use it, held in libcrypto (`EVP_PKEY`) and freed on deinit.
///
/// Signatures are ASN.1 DER `Ecdsa-Sig-Value` (`SEQUENCE { r INTEGER, s INTEGER }`), the form
/// WebAuthn authenticators produce. libcrypto decodes the signature, re-encodes it and compares
/// the two, so BER variants (long-form lengths, leading zero bytes, trailing data) are refused,
/// not normalised: one signature has one accepted encoding.
public final class P256PublicKey: Sendable {
    // EVP_PKEY is reference counted and immutable after creation; libcrypto allows concurrent
    // verification with one key as long as each call has its own EVP_PKEY_CTX (which it does).
    private nonisolated(unsafe) let pkey: OpaquePointer
    /// The affine x coordinate, 32 bytes big-endian.
    public let x: [UInt8]
    /// The affine y coordinate, 32 bytes big-endian.
    public let y: [UInt8]

    /// Loads the point (`x`, `y`), each exactly 32 bytes big-endian (COSE EC2 `x`/`y`).
    ///
    /// Throws `.invalidKey` for other lengths and for a point that is not on the curve
    /// (libcrypto checks that while decoding the point; P-256 has cofactor 1, so every point on
    /// the curve other than infinity, which this encoding cannot express, is in the group).
    public init(x: [UInt8], y: [UInt8]) throws(CryptoError) {
        guard x.count == 32, y.count == 32 else { throw CryptoError(.invalidKey, "P-256 coordinates must be 32 bytes each") }
        var point = [UInt8](repeating: 0x04, count: 65)  // SEC 1 uncompressed: 04 ‖ x ‖ y
        point.replaceSubrange(1..<33, with: x)
        point.replaceSubrange(33..<65, with: y)
        // A copy of the curve-only template, then the point. Importing "group" by name builds the
        // curve from scratch every time (its Montgomery constants need a modular inversion):
        // that cost as much as a third of a signature check. A copy shares the precomputed parts.
        guard let template = Self.curve.pkey, let copy = EVP_PKEY_dup(template) else {
            throw CryptoError(.libcrypto, "cannot copy the P-256 parameters")
        }
        var key: OpaquePointer? = copy
        if EVP_PKEY_set1_encoded_public_key(copy, point, 65) != 1 {
            ERR_clear_error()
            EVP_PKEY_free(copy)
            key = nil
        }
        guard let key else { throw CryptoError(.invalidKey, "not a point on P-256") }
        self.pkey = key
        self.x = x
        self.y = y
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The P-256 domain parameters as a key without a point, made once per process and only
    /// copied from (`EVP_PKEY_dup` reads it; nothing ever changes it).
    private static let curve = CurveTemplate()

    private final class CurveTemplate: Sendable {
        nonisolated(unsafe) let pkey: OpaquePointer?  // immutable after init; read-only use from any thread

        init() {
            var params = [
                OSSL_PARAM_construct_utf8_string(ParameterName.group, ParameterName.p256, 0),
                OSSL_PARAM_construct_end(),
            ]
            pkey = params.withUnsafeMutableBufferPointer {
                keyFromParameters(keyType: "EC", selection: gh_evp_pkey_key_parameters_selection(), $0.baseAddress!)
            }
        }
    }

    /// True when `signature` (DER) is a valid signature of the message whose SHA-256 is `digest`
    /// (32 bytes).
    public func isValidSignature(_ signature: UnsafeRawBufferPointer, digest: UnsafeRawBufferPointer) -> Bool {
        verifyDigest(key: pkey, signature: signature, digest: digest, rsaPKCS1: false)
    }

    /// True when `signature` (DER) is a valid ECDSA-SHA-256 signature of `message`.
    public func isValidSignature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest in
            Digest.sha256(message, into: digest)
            return isValidSignature(signature, digest: UnsafeRawBufferPointer(digest))
        }
    }
}

/// A P-256 signing key, for tests and tools that need to act as an authenticator (Gatehouse
/// itself only verifies). Signatures are DER, with a random nonce.
package final class P256PrivateKey: Sendable {
    private nonisolated(unsafe) let pkey: OpaquePointer  // immutable after init; see P256PublicKey
    /// The matching public key.
    package let publicKey: P256PublicKey

    /// A fresh key from libcrypto's generator.
    package init() throws(CryptoError) {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw CryptoError(.libcrypto, "EVP_PKEY_CTX_new_from_name failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
              EVP_PKEY_CTX_set_group_name(ctx, "P-256") == 1,
              EVP_PKEY_generate(ctx, &key) == 1, let key
        else { ERR_clear_error(); throw CryptoError(.libcrypto, "P-256 key generation failed") }
        var point = [UInt8](repeating: 0, count: 65)
        var length = 0
        guard EVP_PKEY_get_octet_string_param(key, ParameterName.publicKey, &point, 65, &length) == 1,
              length == 65, point[0] == 0x04
        else { EVP_PKEY_free(key); throw CryptoError(.libcrypto, "cannot read the P-256 public point") }
        self.pkey = key
        self.publicKey = try P256PublicKey(x: Array(point[1..<33]), y: Array(point[33..<65]))
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The DER signature of the message whose SHA-256 is `digest`.
    package func signature(digest: [UInt8]) throws(CryptoError) -> [UInt8] {
        try signDigest(key: pkey, digest: digest, rsaPKCS1: false)
    }

    /// The DER ECDSA-SHA-256 signature of `message`.
    package func signature(for message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try signature(digest: Digest.hash(.sha256, message))
    }
}

/// Signs a SHA-256 digest with a private `key` (ECDSA DER, or RSA PKCS #1 v1.5).
func signDigest(key: OpaquePointer, digest: [UInt8], rsaPKCS1: Bool) throws(CryptoError) -> [UInt8] {
    guard digest.count == 32, let ctx = EVP_PKEY_CTX_new(key, nil) else { throw CryptoError(.invalidInput, "need a SHA-256 digest") }
    defer { EVP_PKEY_CTX_free(ctx) }
    var ok = EVP_PKEY_sign_init(ctx) == 1
    if ok, rsaPKCS1 { ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 }
    ok = ok && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1
    var length = 0
    ok = ok && EVP_PKEY_sign(ctx, nil, &length, digest, 32) == 1
    var signature = [UInt8](repeating: 0, count: length)
    ok = ok && EVP_PKEY_sign(ctx, &signature, &length, digest, 32) == 1
    guard ok else { ERR_clear_error(); throw CryptoError(.libcrypto, "signing failed") }
    signature.removeLast(signature.count - length)
    return signature
}
