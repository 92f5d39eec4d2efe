internal import CLibCrypto

/// A source of cryptographically secure random bytes.
///
/// Injected wherever randomness decides an outcome (secrets, nonces, ids) so tests can pin it.
public protocol SecureRandomSource: Sendable {
    /// Fills `buffer` completely with random bytes or throws.
    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError)
}

extension SecureRandomSource {
    /// Returns `count` random bytes.
    public func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        // Array.withUnsafeMutableBytes is `rethrows` (untyped), so carry the typed error out.
        let failure: CryptoError? = out.withUnsafeMutableBytes { buffer in
            do throws(CryptoError) { try fill(buffer); return nil } catch { return error }
        }
        if let failure { throw failure }
        return out
    }

    /// A uniformly distributed integer in `0..<upperBound` (rejection sampling, no modulo bias).
    public func uniform(below upperBound: UInt32) throws(CryptoError) -> UInt32 {
        precondition(upperBound > 0)
        let limit = UInt32.max - (UInt32.max % upperBound)
        while true {
            let bytes = try self.bytes(4)
            let value = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            if value < limit { return value % upperBound }
        }
    }
}

/// The operating system's CSPRNG, read with `getrandom(2)`.
public struct SystemRandom: SecureRandomSource {
    /// Creates the system source.
    public init() {}

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard gh_getrandom(base, buffer.count) == 0 else {
            throw CryptoError(.randomUnavailable, "getrandom(2) failed")
        }
    }
}
