internal import CLibCrypto
#if canImport(Glibc)
internal import Glibc
#endif

/// Names of libcrypto key parameters (`OSSL_PARAM` keys), in storage that lives as long as the
/// process.
///
/// An `OSSL_PARAM` (and `OSSL_PARAM_BLD`) keeps the *pointer* to its name, it does not copy it;
/// a Swift string passed as `const char *` is only valid for the one call it is passed to, so it
/// would dangle by the time `EVP_PKEY_fromdata` reads the array. These are allocated once and
/// never freed (a few bytes).
enum ParameterName {
    // Immutable after the one-time initialisation of the static; never written or freed.
    nonisolated(unsafe) static let group = UnsafePointer(strdup("group")!)
    nonisolated(unsafe) static let publicKey = UnsafePointer(strdup("pub")!)
    nonisolated(unsafe) static let rsaModulus = UnsafePointer(strdup("n")!)
    nonisolated(unsafe) static let rsaExponent = UnsafePointer(strdup("e")!)
    nonisolated(unsafe) static let p256 = strdup("prime256v1")!
}

/// Creates a public key of `keyType` ("EC", "RSA") from `params`, or nil when libcrypto refuses
/// the parameters (wrong length, point not on the curve, …). The caller owns the key.
func publicKeyFromParameters(keyType: String, _ params: UnsafeMutablePointer<OSSL_PARAM>) -> OpaquePointer? {
    keyFromParameters(keyType: keyType, selection: gh_evp_pkey_public_key_selection(), params)
}

/// `EVP_PKEY_fromdata` for `selection`; nil (and a clean error queue) when libcrypto refuses.
func keyFromParameters(keyType: String, selection: Int32, _ params: UnsafeMutablePointer<OSSL_PARAM>) -> OpaquePointer? {
    guard let ctx = EVP_PKEY_CTX_new_from_name(nil, keyType, nil) else { return nil }
    defer { EVP_PKEY_CTX_free(ctx) }
    var key: OpaquePointer?
    guard EVP_PKEY_fromdata_init(ctx) == 1,
          EVP_PKEY_fromdata(ctx, &key, selection, params) == 1
    else {
        ERR_clear_error()
        if let key { EVP_PKEY_free(key) }
        return nil
    }
    return key
}

/// Verifies `signature` over a 32-byte SHA-256 `digest` with `key` (ECDSA: DER `Ecdsa-Sig-Value`;
/// RSA: PKCS #1 v1.5 with the SHA-256 `DigestInfo`). A failed check leaves nothing on
/// libcrypto's per-thread error queue, which other code on the thread (TLS) reads.
func verifyDigest(
    key: OpaquePointer, signature: UnsafeRawBufferPointer, digest: UnsafeRawBufferPointer, rsaPKCS1: Bool
) -> Bool {
    guard digest.count == 32, signature.count > 0, let ctx = EVP_PKEY_CTX_new(key, nil) else { return false }
    defer { EVP_PKEY_CTX_free(ctx) }
    var ok = EVP_PKEY_verify_init(ctx) == 1
    if ok, rsaPKCS1 {
        // The digest name makes libcrypto build and compare the DigestInfo; without it an RSA
        // "signature" over a bare 32-byte value would verify.
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
            && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1
    }
    // ECDSA signs the digest as it is; naming SHA-256 there would only check its length (done
    // above), at the price of a digest fetch and an AlgorithmIdentifier encoding per call.
    ok = ok && EVP_PKEY_verify(
        ctx,
        signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
        digest.baseAddress?.assumingMemoryBound(to: UInt8.self), digest.count
    ) == 1
    if !ok { ERR_clear_error() }
    return ok
}
