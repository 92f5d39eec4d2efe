/// A strict, allocation-free JSON scanner for token headers and claims.
///
/// It reads exactly one object whose members the caller interprets. Stricter than RFC 8259 where
/// tokens allow it: member names may not contain escapes (so `"\u0073ub"` cannot smuggle a second
/// `sub` past a duplicate check), numbers must be integers without sign, fraction or exponent,
/// strings must be valid UTF-8 without raw control characters, nesting is at most one array of
/// strings. Anything else is `nil`/`false` and the caller refuses the token.
struct StrictJSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Consumes `byte` (after whitespace) or returns false.
    @inline(__always)
    mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// Peeks the next non-space byte.
    @inline(__always)
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return index < bytes.count ? bytes[index] : nil
    }

    /// True when only whitespace remains.
    mutating func atEnd() -> Bool {
        skipWhitespace()
        return index == bytes.count
    }

    /// A member name: the raw bytes between quotes, which may not contain `\` or control bytes.
    mutating func memberName() -> UnsafeBufferPointer<UInt8>? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let name = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return name
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { return nil }
            index += 1
        }
        return nil
    }

    /// A string value, with escapes decoded and UTF-8 validated. Allocates only the result (and
    /// not at all for strings of up to 15 bytes, which Swift stores inline).
    mutating func stringValue(maxBytes: Int = 1024) -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var hasEscape = false
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { return nil }
            if b == UInt8(ascii: "\\") {
                hasEscape = true
                index += 2  // the escaped byte cannot be a closing quote
                continue
            }
            index += 1
        }
        guard index < bytes.count else { return nil }
        let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
        index += 1
        guard raw.count <= maxBytes * 6 else { return nil }
        let result: String?
        if hasEscape {
            guard let decoded = Self.unescape(raw) else { return nil }
            result = String(validating: decoded, as: UTF8.self)
        } else if Self.isASCII(raw) {
            // ASCII cannot be invalid UTF-8; String(decoding:) is the specialised fast
            // path, String(validating:as:) a generic one with runtime metadata look-ups.
            result = String(decoding: raw, as: UTF8.self)
        } else {
            result = String(validating: raw, as: UTF8.self)
        }
        guard let result, result.utf8.count <= maxBytes else { return nil }
        return result
    }

    @inline(__always)
    static func isASCII(_ raw: UnsafeBufferPointer<UInt8>) -> Bool {
        var bits: UInt8 = 0
        for b in raw { bits |= b }
        return bits < 0x80
    }

    /// A raw string value without escapes, returned as a span (for `alg`, `kid`, `typ`).
    mutating func rawStringValue() -> UnsafeBufferPointer<UInt8>? { memberName() }

    /// A non-negative integer: digits only, no leading zero (except `0`), at most 18 digits.
    mutating func unsignedInteger() -> Int64? {
        skipWhitespace()
        let start = index
        var value: Int64 = 0
        while index < bytes.count {
            let b = bytes[index]
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { break }
            if index - start == 18 { return nil }  // 19+ digits could overflow Int64
            value = value * 10 + Int64(b - UInt8(ascii: "0"))
            index += 1
        }
        let length = index - start
        guard length > 0 else { return nil }
        if length > 1, bytes[start] == UInt8(ascii: "0") { return nil }
        // A fraction or exponent right after the digits means a non-integer number.
        if index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return nil
            default: break
            }
        }
        return value
    }

    /// Decodes JSON string escapes, including surrogate pairs. nil on any malformed escape.
    static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(raw.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= raw.count else { return nil }
            var v: UInt32 = 0
            for k in at..<at + 4 {
                let c = raw[k]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        while i < raw.count {
            let b = raw[i]
            guard b == UInt8(ascii: "\\") else { out.append(b); i += 1; continue }
            guard i + 1 < raw.count else { return nil }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i) else { return nil }
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u"),
                          let low = hex4(i + 2), (0xDC00...0xDFFF).contains(low) else { return nil }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    return nil
                }
                guard let u = Unicode.Scalar(scalar) else { return nil }
                out.append(contentsOf: UTF8.encode(u)!)
            default: return nil
            }
        }
        return out
    }
}

/// Equality helper for comparing a scanned span with stored bytes.
@inline(__always)
func spanEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return b.withUnsafeBufferPointer { bb in
        for i in 0..<a.count where a[i] != bb[i] { return false }
        return true
    }
}

/// Equality helper for a span and a static ASCII string.
@inline(__always)
func spanEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: StaticString) -> Bool {
    guard a.count == b.utf8CodeUnitCount else { return false }
    let p = b.utf8Start
    for i in 0..<a.count where a[i] != p[i] { return false }
    return true
}
