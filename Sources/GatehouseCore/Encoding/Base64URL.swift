/// base64url without padding (RFC 4648 §5), as JWS uses it, with a strict canonical decoder.
public enum Base64URL {
    /// The 64 characters, in value order. A `StaticString`: a pointer to constant bytes, so
    /// reading it costs no lazy-global check and no reference counting.
    @usableFromInline
    static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    /// Four tables of 256 entries, one per character position in a group of four, that map a
    /// character straight to its bits already placed in the group's three output bytes, in
    /// memory order when stored as a little-endian `UInt32` (byte 0 first):
    ///
    ///     position 0 (a): a << 2                       → byte 0, bits 7…2
    ///     position 1 (b): b >> 4, (b & 0xF) << 4 << 8  → byte 0, bits 1…0; byte 1, bits 7…4
    ///     position 2 (c): c >> 2 << 8, (c & 3) << 6 << 16 → byte 1, bits 3…0; byte 2, bits 7…6
    ///     position 3 (d): d << 16                      → byte 2, bits 5…0
    ///
    /// A character outside the alphabet maps to `invalid` in every table, whose bit 24 lies
    /// outside the three bytes; OR-ing a group's four entries gives its three bytes, and a set
    /// bit 24 in the OR of all entries means the text is not base64url. Allocated once and never
    /// freed (4 KiB).
    nonisolated(unsafe) private static let decodeTables: UnsafePointer<UInt32> = {
        let tables = UnsafeMutablePointer<UInt32>.allocate(capacity: 4 * 256)
        tables.initialize(repeating: invalid, count: 4 * 256)
        for value in 0..<64 {
            let c = Int(alphabet.utf8Start[value])
            let v = UInt32(value)
            tables[c] = v << 2
            tables[256 + c] = v >> 4 | (v & 0xF) << 12
            tables[512 + c] = (v >> 2) << 8 | (v & 0x3) << 22
            tables[768 + c] = v << 16
        }
        return UnsafePointer(tables)
    }()

    /// The table entry of a character outside the alphabet (see `decodeTables`).
    private static let invalid: UInt32 = 0x01FF_FFFF

    /// The encoded length of `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int { (count * 4 + 2) / 3 }

    /// The decoded length of `count` characters, or nil when no canonical encoding has that length.
    @inlinable
    public static func decodedLength(_ count: Int) -> Int? {
        count % 4 == 1 ? nil : count * 3 / 4
    }

    /// Writes the encoding of `bytes` to `out`, which must hold `encodedLength(bytes.count)`
    /// bytes, and returns that length. Allocation-free.
    @discardableResult
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        let n = bytes.count
        let length = encodedLength(n)
        precondition(out.count >= length, "base64url output buffer too small")
        guard n > 0 else { return 0 }
        let a = alphabet.utf8Start
        let ip = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let op = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var i = 0, o = 0
        while i &+ 3 <= n {
            let v = UInt32(ip[i]) &<< 16 | UInt32(ip[i &+ 1]) &<< 8 | UInt32(ip[i &+ 2])
            op[o] = a[Int(v &>> 18 & 63)]
            op[o &+ 1] = a[Int(v &>> 12 & 63)]
            op[o &+ 2] = a[Int(v &>> 6 & 63)]
            op[o &+ 3] = a[Int(v & 63)]
            i &+= 3; o &+= 4
        }
        if n &- i == 1 {
            let v = UInt32(ip[i]) &<< 16
            op[o] = a[Int(v &>> 18 & 63)]
            op[o &+ 1] = a[Int(v &>> 12 & 63)]
        } else if n &- i == 2 {
            let v = UInt32(ip[i]) &<< 16 | UInt32(ip[i &+ 1]) &<< 8
            op[o] = a[Int(v &>> 18 & 63)]
            op[o &+ 1] = a[Int(v &>> 12 & 63)]
            op[o &+ 2] = a[Int(v &>> 6 & 63)]
        }
        return length
    }

    /// Appends the encoding of `bytes` to `out`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let length = encodedLength(bytes.count)
        guard length > 0 else { return }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: length))
        out.withUnsafeMutableBytes { encode(bytes, into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
    }

    /// Encodes exactly 32 bytes (an HMAC-SHA256) into 43 characters at `out`; unrolled, no
    /// allocation.
    static func encode32(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= 32 && out.count >= 43, "base64url: 32 bytes into 43 characters")
        let a = alphabet.utf8Start
        let ip = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let op = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for k in 0..<10 {
            let i = k &* 3, o = k &* 4
            let v = UInt32(ip[i]) &<< 16 | UInt32(ip[i &+ 1]) &<< 8 | UInt32(ip[i &+ 2])
            op[o] = a[Int(v &>> 18 & 63)]
            op[o &+ 1] = a[Int(v &>> 12 & 63)]
            op[o &+ 2] = a[Int(v &>> 6 & 63)]
            op[o &+ 3] = a[Int(v & 63)]
        }
        let v = UInt32(ip[30]) &<< 16 | UInt32(ip[31]) &<< 8
        op[40] = a[Int(v &>> 18 & 63)]
        op[41] = a[Int(v &>> 12 & 63)]
        op[42] = a[Int(v &>> 6 & 63)]
    }

    /// The encoding of `bytes` as a string.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let length = encodedLength(bytes.count)
        let write = { (input: UnsafeRawBufferPointer) in
            String(unsafeUninitializedCapacity: length) { encode(input, into: UnsafeMutableRawBufferPointer($0)) }
        }
        if let text = bytes.withContiguousStorageIfAvailable({ write(UnsafeRawBufferPointer($0)) }) { return text }
        return Array(bytes).withUnsafeBytes(write)
    }

    /// Decodes `input` into `output` (which must hold `decodedLength(input.count)` bytes) and
    /// returns the number of bytes written, or nil if the input is not canonical unpadded
    /// base64url: a character outside the alphabet (including `=`, `+`, `/`, whitespace), an
    /// impossible length, or non-zero unused bits in the last character. Allocation-free; writes
    /// nothing outside the first `decodedLength(input.count)` bytes of `output`.
    ///
    /// Eight characters (six bytes) at a time: one 8-byte load, eight table entries OR-ed into
    /// two groups, one 8-byte store whose last two bytes the next store overwrites. Whether the
    /// text was valid is checked once, at the end (on failure `output` holds garbage).
    public static func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        let n = input.count
        guard let outLength = decodedLength(n), output.count >= outLength else { return nil }
        guard n > 0 else { return 0 }
        let d0 = decodeTables, d1 = d0 + 256, d2 = d0 + 512, d3 = d0 + 768
        let ip = input.baseAddress!, op = output.baseAddress!
        var i = 0, o = 0
        var bad: UInt32 = 0
        // Wrapping arithmetic: n is an Int count of real memory, so i + 8 and o + 8 cannot wrap.
        while i &+ 8 <= n, o &+ 8 <= outLength {
            let w = UInt64(littleEndian: UnsafeRawPointer(ip + i).loadUnaligned(as: UInt64.self))
            let x = d0[Int(truncatingIfNeeded: w) & 0xFF] | d1[Int(truncatingIfNeeded: w &>> 8) & 0xFF]
                | d2[Int(truncatingIfNeeded: w &>> 16) & 0xFF] | d3[Int(truncatingIfNeeded: w &>> 24) & 0xFF]
            let y = d0[Int(truncatingIfNeeded: w &>> 32) & 0xFF] | d1[Int(truncatingIfNeeded: w &>> 40) & 0xFF]
                | d2[Int(truncatingIfNeeded: w &>> 48) & 0xFF] | d3[Int(truncatingIfNeeded: w &>> 56)]
            bad |= x | y
            let six = UInt64(x) | UInt64(y) &<< 24
            UnsafeMutableRawPointer(op + o).storeBytes(of: six.littleEndian, as: UInt64.self)
            i &+= 8; o &+= 6
        }
        while i &+ 4 <= n {
            let x = d0[Int(ip[i])] | d1[Int(ip[i &+ 1])] | d2[Int(ip[i &+ 2])] | d3[Int(ip[i &+ 3])]
            bad |= x
            op[o] = UInt8(truncatingIfNeeded: x)
            op[o &+ 1] = UInt8(truncatingIfNeeded: x &>> 8)
            op[o &+ 2] = UInt8(truncatingIfNeeded: x &>> 16)
            i &+= 4; o &+= 3
        }
        switch n &- i {
        case 2:
            let x = d0[Int(ip[i])] | d1[Int(ip[i &+ 1])]
            bad |= x
            if x & 0xFF00 != 0 { return nil }  // non-canonical tail: b's low 4 bits unused
            op[o] = UInt8(truncatingIfNeeded: x)
            o &+= 1
        case 3:
            let x = d0[Int(ip[i])] | d1[Int(ip[i &+ 1])] | d2[Int(ip[i &+ 2])]
            bad |= x
            if x & 0xFF_0000 != 0 { return nil }  // non-canonical tail: c's low 2 bits unused
            op[o] = UInt8(truncatingIfNeeded: x)
            op[o &+ 1] = UInt8(truncatingIfNeeded: x &>> 8)
            o &+= 2
        default: break
        }
        return bad &>> 24 == 0 ? o : nil
    }

    /// Decodes canonical unpadded base64url text, or returns nil.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var text = String(text)
        return text.withUTF8 { input -> [UInt8]? in
            guard let length = decodedLength(input.count) else { return nil }
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                if let written = decode(input, into: buffer) {
                    count = written
                } else {
                    ok = false
                    count = 0
                }
            }
            return ok ? out : nil
        }
    }
}
