internal import CLibCrypto

/// Hash functions offered for HMAC (and through it HOTP/TOTP and HS256).
public enum HashAlgorithm: String, Sendable, CaseIterable {
    case sha1, sha256, sha512

    /// Digest length in bytes.
    public var digestLength: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }

    /// Block length in bytes (the HMAC pad size).
    public var blockLength: Int {
        switch self {
        case .sha1, .sha256: 64
        case .sha512: 128
        }
    }
}

/// An HMAC key with its inner and outer digest states computed once.
///
/// HMAC(k, m) = H((k ⊕ opad) ‖ H((k ⊕ ipad) ‖ m)). The two keyed prefixes are one block each, so
/// their digest states are computed at init and *copied* (a plain struct copy, no allocation) for
/// each message. That is the same work OpenSSL's `speed -hmac` does with a reused key, minus the
/// EVP dispatch. The states live in libcrypto's low-level `SHA*_CTX` structs, which never leave
/// this module.
public struct HMACKey: Sendable {
    /// The hash function this key is used with.
    public let algorithm: HashAlgorithm
    fileprivate let state: PreparedState

    // SHA*_CTX are plain C structs of integers: copying them is a value copy, safe across threads.
    fileprivate enum PreparedState: @unchecked Sendable {
        case sha1(inner: SHA_CTX, outer: SHA_CTX)
        case sha256(inner: SHA256_CTX, outer: SHA256_CTX)
        case sha512(inner: SHA512_CTX, outer: SHA512_CTX)
    }

    /// Prepares `key` for `algorithm`. Any key length is allowed (RFC 2104); longer than a block is
    /// hashed first.
    public init(_ algorithm: HashAlgorithm, key: some Collection<UInt8>) {
        // one non-generic, allocation-free body; the generic entry only finds the bytes.
        if let prepared = key.withContiguousStorageIfAvailable({ Self(algorithm, keyBytes: UnsafeRawBufferPointer($0)) }) {
            self = prepared
        } else {
            self = Array(key).withUnsafeBytes { Self(algorithm, keyBytes: $0) }
        }
    }

    init(_ algorithm: HashAlgorithm, keyBytes key: UnsafeRawBufferPointer) {
        self.algorithm = algorithm
        let blockLength = algorithm.blockLength
        state = withUnsafeTemporaryAllocation(byteCount: 128, alignment: 16) { raw in
            let block = raw.bindMemory(to: UInt8.self)
            block.initialize(repeating: 0)
            if key.count > blockLength {
                let digest = Digest.hash(algorithm, Array(key))  // rare: keys longer than a block
                for i in digest.indices { block[i] = digest[i] }
            } else if key.count > 0 {
                UnsafeMutableRawBufferPointer(block).copyMemory(from: key)
            }
            for i in 0..<blockLength { block[i] ^= 0x36 }
            let prepared: PreparedState
            switch algorithm {
            case .sha1:
                var i = SHA_CTX(), o = SHA_CTX()
                SHA1_Init(&i); SHA1_Update(&i, block.baseAddress, blockLength)
                for k in 0..<blockLength { block[k] ^= 0x36 ^ 0x5c }
                SHA1_Init(&o); SHA1_Update(&o, block.baseAddress, blockLength)
                prepared = .sha1(inner: i, outer: o)
            case .sha256:
                var i = SHA256_CTX(), o = SHA256_CTX()
                SHA256_Init(&i); SHA256_Update(&i, block.baseAddress, blockLength)
                for k in 0..<blockLength { block[k] ^= 0x36 ^ 0x5c }
                SHA256_Init(&o); SHA256_Update(&o, block.baseAddress, blockLength)
                prepared = .sha256(inner: i, outer: o)
            case .sha512:
                var i = SHA512_CTX(), o = SHA512_CTX()
                SHA512_Init(&i); SHA512_Update(&i, block.baseAddress, blockLength)
                for k in 0..<blockLength { block[k] ^= 0x36 ^ 0x5c }
                SHA512_Init(&o); SHA512_Update(&o, block.baseAddress, blockLength)
                prepared = .sha512(inner: i, outer: o)
            }
            OPENSSL_cleanse(raw.baseAddress, 128)  // wipe the padded key from the stack
            return prepared
        }
    }

    /// Writes the MAC of `message` to the start of `output`, which must hold `digestLength` bytes.
    /// Allocation-free.
    public func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= algorithm.digestLength, "HMAC output buffer too small")
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        switch state {
        case .sha1(let inner, let outer):
            var i = inner, o = outer
            SHA1_Update(&i, message.baseAddress, message.count)
            SHA1_Final(out, &i)
            SHA1_Update(&o, out, 20)
            SHA1_Final(out, &o)
        case .sha256(let inner, let outer):
            HMACSHA256Key.mac(inner: inner, outer: outer, message, out)
        case .sha512(let inner, let outer):
            var i = inner, o = outer
            SHA512_Update(&i, message.baseAddress, message.count)
            SHA512_Final(out, &i)
            SHA512_Update(&o, out, 64)
            SHA512_Final(out, &o)
        }
    }

    /// The MAC of `message` as a new array.
    public func authenticationCode(for message: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.digestLength)
        let bytes = Array(message)
        bytes.withUnsafeBytes { m in out.withUnsafeMutableBytes { authenticate(m, into: $0) } }
        return out
    }

    /// True when `mac` is the MAC of `message`; compared in constant time. Allocation-free.
    public func isValidAuthenticationCode(_ mac: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        guard mac.count == algorithm.digestLength else { return false }
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { buffer in
            authenticate(message, into: buffer)
            return ConstantTime.equals(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<mac.count]), mac)
        }
    }
}

/// An HMAC-SHA256 key prepared as `HMACKey(.sha256, key:)` prepares it, held as its two digest
/// states and nothing else (224 bytes; `HMACKey` is an enum over three hash functions, sized
/// for SHA-512). A MAC copies exactly the two states the digest mutates, with no enum payload
/// to copy out first: the shape for a key that authenticates many messages (token signing keys).
public struct HMACSHA256Key: @unchecked Sendable {
    // Plain C structs of integers: copying them is a value copy, safe across threads.
    private let inner: SHA256_CTX
    private let outer: SHA256_CTX

    /// The same prepared states as `key`, which must be an HMAC-SHA256 key.
    public init(_ key: HMACKey) {
        guard case .sha256(let inner, let outer) = key.state else {
            preconditionFailure("HMACSHA256Key needs an HMAC-SHA256 key, not \(key.algorithm)")
        }
        self.inner = inner
        self.outer = outer
    }

    /// Prepares `key` (any length, RFC 2104).
    public init(key: some Collection<UInt8>) {
        self.init(HMACKey(.sha256, key: key))
    }

    /// Writes the MAC of `message` to the first 32 bytes of `output`. Allocation-free.
    public func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 32, "HMAC output buffer too small")
        Self.mac(inner: inner, outer: outer, message, output.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// The MAC of `message` from two prepared states into `out` (32 bytes), for this type and
    /// ``HMACKey``. One copy of each state (the digest mutates it); the outer copy only after the
    /// inner hash is done, so the two never sit on the stack at once.
    @inline(__always)
    static func mac(inner: SHA256_CTX, outer: SHA256_CTX, _ message: UnsafeRawBufferPointer, _ out: UnsafeMutablePointer<UInt8>) {
        var i = inner
        SHA256_Update(&i, message.baseAddress, message.count)
        SHA256_Final(out, &i)
        var o = outer
        SHA256_Update(&o, out, 32)
        SHA256_Final(out, &o)
    }
}

/// One-shot message digests.
public enum Digest {
    /// The digest of `data` under `algorithm`.
    public static func hash(_ algorithm: HashAlgorithm, _ data: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(data)
        var out = [UInt8](repeating: 0, count: algorithm.digestLength)
        bytes.withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { o in
                switch algorithm {
                case .sha1: _ = SHA1(b.baseAddress, b.count, o.baseAddress)
                case .sha256: _ = SHA256(b.baseAddress, b.count, o.baseAddress)
                case .sha512: _ = SHA512(b.baseAddress, b.count, o.baseAddress)
                }
            }
        }
        return out
    }
}

extension Digest {
    /// Writes the SHA-256 of `data` to the start of `output` (at least 32 bytes). Allocation-free.
    public static func sha256(_ data: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 32, "SHA-256 output buffer too small")
        _ = SHA256(data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, output.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// Writes the SHA-256 of `first ‖ second` to the start of `output` (at least 32 bytes),
    /// without building the concatenation. Allocation-free.
    public static func sha256(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 32, "SHA-256 output buffer too small")
        var ctx = SHA256_CTX()
        SHA256_Init(&ctx)
        SHA256_Update(&ctx, first.baseAddress, first.count)
        SHA256_Update(&ctx, second.baseAddress, second.count)
        SHA256_Final(output.baseAddress!.assumingMemoryBound(to: UInt8.self), &ctx)
    }
}
