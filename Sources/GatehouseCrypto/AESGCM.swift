internal import CLibCrypto

/// AES-256-GCM through libcrypto's EVP interface.
///
/// Layout of a sealed box: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. The additional
/// authenticated data is not stored; the opener must present the same bytes.
public enum AES256GCM {
    /// Key length in bytes.
    public static let keyLength = 32
    /// Nonce length in bytes.
    public static let nonceLength = 12
    /// Tag length in bytes.
    public static let tagLength = 16

    /// Encrypts `plaintext` under `key` with a fresh random nonce and binds `aad` to it.
    public static func seal(
        _ plaintext: [UInt8], key: [UInt8], aad: [UInt8],
        random: any SecureRandomSource = SystemRandom()
    ) throws(CryptoError) -> [UInt8] {
        guard key.count == keyLength else { throw CryptoError(.invalidKey, "AES-256-GCM needs a 32-byte key") }
        let nonce = try random.bytes(nonceLength)
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError(.libcrypto, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = nonce + [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1
        ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1
        ok = ok && EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
        var len: Int32 = 0
        if ok, !aad.isEmpty { ok = EVP_EncryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 }
        let written: Int32 = out.withUnsafeMutableBufferPointer { o in
            let body = o.baseAddress! + nonceLength
            var total: Int32 = 0
            if ok, !plaintext.isEmpty {
                ok = EVP_EncryptUpdate(ctx, body, &len, plaintext, Int32(plaintext.count)) == 1
                total += len
            }
            if ok { ok = EVP_EncryptFinal_ex(ctx, body + Int(total), &len) == 1; total += len }
            if ok {
                ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), body + Int(total)) == 1
            }
            return total
        }
        guard ok, Int(written) == plaintext.count else { throw CryptoError(.libcrypto, "AES-GCM encryption failed") }
        return out
    }

    /// Decrypts a box made by `seal`; throws `.authenticationFailed` when the key, box or `aad`
    /// does not match.
    public static func open(_ box: [UInt8], key: [UInt8], aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == keyLength else { throw CryptoError(.invalidKey, "AES-256-GCM needs a 32-byte key") }
        guard box.count >= nonceLength + tagLength else { throw CryptoError(.invalidInput, "sealed box too short") }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError(.libcrypto, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let bodyLength = box.count - nonceLength - tagLength
        var plain = [UInt8](repeating: 0, count: bodyLength)
        var ok = true
        box.withUnsafeBufferPointer { b in
            let nonce = b.baseAddress!
            let body = nonce + nonceLength
            let tag = UnsafeMutableRawPointer(mutating: body + bodyLength)
            var len: Int32 = 0
            ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1
            ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1
            ok = ok && EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
            if ok, !aad.isEmpty { ok = EVP_DecryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 }
            plain.withUnsafeMutableBufferPointer { p in
                var total: Int32 = 0
                if ok, bodyLength > 0 {
                    ok = EVP_DecryptUpdate(ctx, p.baseAddress, &len, body, Int32(bodyLength)) == 1
                    total += len
                }
                ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), tag) == 1
                var scratch = [UInt8](repeating: 0, count: 16)
                ok = ok && EVP_DecryptFinal_ex(ctx, &scratch, &len) == 1
            }
        }
        guard ok else {
            for i in plain.indices { plain[i] = 0 }
            throw CryptoError(.authenticationFailed, "sealed box did not authenticate")
        }
        return plain
    }
}
