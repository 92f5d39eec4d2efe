/// base64url without padding (RFC 4648 §5), as JWS uses it, with a strict canonical decoder.
public enum Base64URL {
    @usableFromInline
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    @usableFromInline
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// The encoded length of `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int { (count * 4 + 2) / 3 }

    /// The decoded length of `count` characters, or nil when no canonical encoding has that length.
    @inlinable
    public static func decodedLength(_ count: Int) -> Int? {
        count % 4 == 1 ? nil : count * 3 / 4
    }

    /// Appends the encoding of `bytes` to `out`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + encodedLength(bytes.count))
        var i = 0
        let n = bytes.count
        while i + 3 <= n {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        if n - i == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
        } else if n - i == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
        }
    }

    /// encodes exactly 32 bytes into 43 characters at `out` (no allocation).
    static func encode32(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        alphabet.withUnsafeBufferPointer { a in
            var i = 0, o = 0
            while i + 3 <= 32 {
                let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i &+ 1]) << 8 | UInt32(bytes[i &+ 2])
                out[o] = a[Int(v >> 18 & 63)]; out[o &+ 1] = a[Int(v >> 12 & 63)]
                out[o &+ 2] = a[Int(v >> 6 & 63)]; out[o &+ 3] = a[Int(v & 63)]
                i &+= 3; o &+= 4
            }
            let v = UInt32(bytes[30]) << 16 | UInt32(bytes[31]) << 8
            out[40] = a[Int(v >> 18 & 63)]; out[41] = a[Int(v >> 12 & 63)]; out[42] = a[Int(v >> 6 & 63)]
        }
    }

    /// The encoding of `bytes` as a string.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        Array(bytes).withUnsafeBytes { encode($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `input` into `output` (which must hold `decodedLength(input.count)` bytes) and
    /// returns the number of bytes written, or nil if the input is not canonical unpadded
    /// base64url: a character outside the alphabet (including `=`, `+`, `/`, whitespace), an
    /// impossible length, or non-zero unused bits in the last character. Allocation-free.
    @inlinable
    public static func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        guard let outLength = decodedLength(input.count), output.count >= outLength else { return nil }
        let table = decodeTable
        return table.withUnsafeBufferPointer { t -> Int? in
            var i = 0, o = 0
            let n = input.count
            var bad: UInt8 = 0
            // raw pointers and wrapping arithmetic: no overflow checks in the hot loop
            // (n <= 4096 is guaranteed by the callers' size limit, so nothing can wrap).
            let tp = t.baseAddress!, ip = input.baseAddress!, op = output.baseAddress!
            let whole = n & ~3
            while i < whole {
                let a = tp[Int(ip[i])], b = tp[Int(ip[i &+ 1])], c = tp[Int(ip[i &+ 2])], d = tp[Int(ip[i &+ 3])]
                bad |= a | b | c | d
                let v = UInt32(a) &<< 18 | UInt32(b) &<< 12 | UInt32(c) &<< 6 | UInt32(d)
                op[o] = UInt8(truncatingIfNeeded: v &>> 16)
                op[o &+ 1] = UInt8(truncatingIfNeeded: v &>> 8)
                op[o &+ 2] = UInt8(truncatingIfNeeded: v)
                i &+= 4; o &+= 3
            }
            bad &= 0xC0
            switch n - i {
            case 2:
                let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                bad |= (a | b) & 0xC0
                if b & 0x0F != 0 { return nil }  // non-canonical tail
                output[o] = a << 2 | b >> 4
                o += 1
            case 3:
                let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])]
                bad |= (a | b | c) & 0xC0
                if c & 0x03 != 0 { return nil }  // non-canonical tail
                output[o] = a << 2 | b >> 4
                output[o + 1] = b << 4 | c >> 2
                o += 2
            default: break
            }
            return bad == 0 ? o : nil
        }
    }

    /// Decodes canonical unpadded base64url text, or returns nil.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard let length = decodedLength(input.count) else { return nil }
        var out = [UInt8](repeating: 0, count: length)
        let written = input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { decode(i, into: $0) } }
        guard let written else { return nil }
        out.removeLast(out.count - written)
        return out
    }
}
