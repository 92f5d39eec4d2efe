/// Comparisons whose running time does not depend on where inputs differ.
public enum ConstantTime {
    /// True when both buffers have the same length and bytes. Only the length may leak.
    /// Eight bytes at a time, then byte by byte: every byte is read and OR-ed in, whatever
    /// the contents; only the count decides the work.
    @inlinable
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt64 = 0
        var i = 0
        while i &+ 8 <= a.count {
            diff |= a.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        while i < a.count {
            diff |= UInt64(a[i] ^ b[i])
            i &+= 1
        }
        return diff == 0
    }

    /// True when both byte collections are equal; see `equals(_:_:)` for buffers.
    @inlinable
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }

    /// `1` when `a == b`, else `0`, without a data-dependent branch.
    @inlinable
    public static func isEqual(_ a: UInt32, _ b: UInt32) -> UInt32 {
        let x = a ^ b
        // (x | -x) has its top bit set exactly when x != 0.
        return ((x | (0 &- x)) >> 31) ^ 1
    }
}
