/// RFC 4648 base32 (the standard alphabet), as authenticator apps use it for TOTP secrets.
///
/// Encoding emits upper case without padding. Decoding accepts either case and nothing else: no
/// padding, no spaces or dashes, no impossible lengths, and no non-zero bits in the unused tail
/// (so each byte string has exactly one accepted spelling per case).
public enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() {
            table[Int(c)] = UInt8(i)
            if c >= UInt8(ascii: "A"), c <= UInt8(ascii: "Z") { table[Int(c) + 32] = UInt8(i) }
        }
        return table
    }()

    /// Encodes `bytes` as unpadded upper-case base32.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt64 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt64(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt64(bits)) & 0x1F)])
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt64(5 - bits)) & 0x1F)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes unpadded base32 in either case, or returns nil for anything else.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let chars = Array(text.utf8)
        // Valid unpadded lengths mod 8 are 0, 2, 4, 5, 7 (1, 3 and 6 cannot end a byte).
        switch chars.count % 8 {
        case 1, 3, 6: return nil
        default: break
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 5 / 8)
        var buffer: UInt64 = 0
        var bits = 0
        for c in chars {
            let v = decodeTable[Int(c)]
            guard v != 0xFF else { return nil }
            buffer = (buffer << 5) | UInt64(v)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt64(bits)))
            }
        }
        // Leftover bits must be zero: otherwise two spellings would decode to the same bytes.
        if bits > 0, buffer & ((1 << UInt64(bits)) - 1) != 0 { return nil }
        return out
    }
}
