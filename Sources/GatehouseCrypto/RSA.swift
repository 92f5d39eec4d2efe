internal import CLibCrypto

/// An RSA verification key for PKCS #1 v1.5 signatures with SHA-256 (COSE `RS256`, -257), held in
/// libcrypto (`EVP_PKEY`) and freed on deinit.
public final class RSAPublicKey: Sendable {
    /// Smallest modulus accepted, in bits. Shorter keys are factorable or close to it.
    public static let minimumModulusBits = 2048
    /// Largest modulus accepted, in bits: verification time grows with the square of the size,
    /// so a stored key must not be able to make each sign-in arbitrarily expensive.
    public static let maximumModulusBits = 8192
    /// Largest public exponent accepted, in bytes (verification time grows with its bit length;
    /// authenticators use 65537).
    public static let maximumExponentBytes = 8

    private nonisolated(unsafe) let pkey: OpaquePointer  // immutable after init; see P256PublicKey
    /// Modulus size in bits.
    public let modulusBits: Int

    /// Loads the key from its modulus `n` and public exponent `e`, both unsigned big-endian in
    /// the fewest bytes (RFC 8230 §4: no leading zero byte).
    ///
    /// Throws `.invalidKey` for a modulus outside 2048…8192 bits or even, an exponent that is
    /// even, 1, or longer than 8 bytes, and for any leading zero byte.
    public init(modulus n: [UInt8], exponent e: [UInt8]) throws(CryptoError) {
        guard let first = n.first, first != 0, let firstE = e.first, firstE != 0 else {
            throw CryptoError(.invalidKey, "RSA modulus and exponent must be non-empty without leading zero bytes")
        }
        let bits = (n.count - 1) * 8 + (8 - first.leadingZeroBitCount)
        guard bits >= Self.minimumModulusBits, bits <= Self.maximumModulusBits else {
            throw CryptoError(.invalidKey, "RSA modulus of \(bits) bits is outside \(Self.minimumModulusBits)…\(Self.maximumModulusBits)")
        }
        guard n[n.count - 1] & 1 == 1 else { throw CryptoError(.invalidKey, "RSA modulus must be odd") }
        guard e.count <= Self.maximumExponentBytes, e[e.count - 1] & 1 == 1, e != [1] else {
            throw CryptoError(.invalidKey, "RSA public exponent must be odd, greater than 1 and at most 8 bytes")
        }
        guard let bn = BN_bin2bn(n, Int32(n.count), nil) else { throw CryptoError(.libcrypto, "BN_bin2bn failed") }
        defer { BN_free(bn) }
        guard let be = BN_bin2bn(e, Int32(e.count), nil) else { throw CryptoError(.libcrypto, "BN_bin2bn failed") }
        defer { BN_free(be) }
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError(.libcrypto, "OSSL_PARAM_BLD_new failed") }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard OSSL_PARAM_BLD_push_BN(builder, ParameterName.rsaModulus, bn) == 1,
              OSSL_PARAM_BLD_push_BN(builder, ParameterName.rsaExponent, be) == 1,
              let params = OSSL_PARAM_BLD_to_param(builder)
        else { ERR_clear_error(); throw CryptoError(.libcrypto, "cannot build RSA key parameters") }
        defer { OSSL_PARAM_free(params) }
        guard let key = publicKeyFromParameters(keyType: "RSA", params) else {
            throw CryptoError(.invalidKey, "libcrypto refused the RSA public key")
        }
        self.pkey = key
        self.modulusBits = bits
    }

    deinit { EVP_PKEY_free(pkey) }

    /// Modulus size in bytes: the only signature length that can verify.
    public var signatureLength: Int { (modulusBits + 7) / 8 }

    /// True when `signature` is a valid RSASSA-PKCS1-v1_5 signature with SHA-256 of the message
    /// whose SHA-256 is `digest` (32 bytes). The signature must be exactly `signatureLength` bytes.
    public func isValidPKCS1SHA256Signature(_ signature: UnsafeRawBufferPointer, digest: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == signatureLength else { return false }
        return verifyDigest(key: pkey, signature: signature, digest: digest, rsaPKCS1: true)
    }

    /// True when `signature` is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
    public func isValidPKCS1SHA256Signature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest in
            Digest.sha256(message, into: digest)
            return isValidPKCS1SHA256Signature(signature, digest: UnsafeRawBufferPointer(digest))
        }
    }
}

/// An RSA signing key, for tests and tools that act as an authenticator (Gatehouse itself only
/// verifies).
package final class RSAPrivateKey: Sendable {
    private nonisolated(unsafe) let pkey: OpaquePointer  // immutable after init; see P256PublicKey
    /// Modulus, big-endian, no leading zero.
    package let modulus: [UInt8]
    /// Public exponent, big-endian, no leading zero.
    package let exponent: [UInt8]

    /// A fresh key of `bits` bits with exponent 65537 (seconds of CPU for large sizes).
    package init(bits: Int) throws(CryptoError) {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else { throw CryptoError(.libcrypto, "EVP_PKEY_CTX_new_from_name failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
              EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1,
              EVP_PKEY_generate(ctx, &key) == 1, let key
        else { ERR_clear_error(); throw CryptoError(.libcrypto, "RSA key generation failed") }
        func export(_ name: UnsafePointer<CChar>) -> [UInt8]? {
            var bn: OpaquePointer?
            guard EVP_PKEY_get_bn_param(key, name, &bn) == 1, let bn else { return nil }
            defer { BN_free(bn) }
            var out = [UInt8](repeating: 0, count: Int((BN_num_bits(bn) + 7) / 8))
            _ = BN_bn2bin(bn, &out)
            return out
        }
        guard let n = export(ParameterName.rsaModulus), let e = export(ParameterName.rsaExponent) else {
            EVP_PKEY_free(key)
            ERR_clear_error()
            throw CryptoError(.libcrypto, "cannot read the RSA public key")
        }
        self.pkey = key
        self.modulus = n
        self.exponent = e
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
    package func signature(for message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try signDigest(key: pkey, digest: Digest.hash(.sha256, message), rsaPKCS1: true)
    }
}
