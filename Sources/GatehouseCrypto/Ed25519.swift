internal import CLibCrypto

/// An Ed25519 signing key held in libcrypto (`EVP_PKEY`), freed on deinit.
public final class Ed25519PrivateKey: Sendable {
    // EVP_PKEY is reference counted and immutable after creation; libcrypto allows concurrent
    // signing with one key as long as each call has its own EVP_MD_CTX (which `sign` creates).
    private nonisolated(unsafe) let pkey: OpaquePointer
    /// The matching public key.
    public let publicKey: Ed25519PublicKey

    /// Creates the key from a 32-byte seed.
    public init(seed: [UInt8]) throws(CryptoError) {
        guard seed.count == 32 else { throw CryptoError(.invalidKey, "Ed25519 seed must be 32 bytes") }
        guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, 32) else {
            throw CryptoError(.libcrypto, "cannot load Ed25519 seed")
        }
        var raw = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard EVP_PKEY_get_raw_public_key(key, &raw, &len) == 1, len == 32 else {
            EVP_PKEY_free(key)
            throw CryptoError(.libcrypto, "cannot derive Ed25519 public key")
        }
        self.pkey = key
        self.publicKey = try Ed25519PublicKey(rawRepresentation: raw)
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The 64-byte signature of `message`.
    public func signature(for message: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError(.libcrypto, "EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        var sig = [UInt8](repeating: 0, count: 64)
        var len = 64
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1,
              EVP_DigestSign(ctx, &sig, &len, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1,
              len == 64
        else { throw CryptoError(.libcrypto, "Ed25519 signing failed") }
        return sig
    }
}

/// An Ed25519 verification key.
public final class Ed25519PublicKey: Sendable {
    private nonisolated(unsafe) let pkey: OpaquePointer  // immutable after init; see Ed25519PrivateKey
    /// The raw 32-byte public key (the JWK `x` value).
    public let rawRepresentation: [UInt8]

    /// Loads a raw 32-byte public key.
    public init(rawRepresentation raw: [UInt8]) throws(CryptoError) {
        guard raw.count == 32 else { throw CryptoError(.invalidKey, "Ed25519 public key must be 32 bytes") }
        guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, 32) else {
            throw CryptoError(.invalidKey, "not an Ed25519 public key")
        }
        self.pkey = key
        self.rawRepresentation = raw
    }

    deinit { EVP_PKEY_free(pkey) }

    /// True when `signature` is a valid signature of `message`.
    public func isValidSignature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1 else { return false }
        return EVP_DigestVerify(
            ctx,
            signature.baseAddress?.assumingMemoryBound(to: UInt8.self), 64,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count
        ) == 1
    }
}
