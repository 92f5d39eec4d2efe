#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends compact JSON to a byte buffer: the typed writer behind token headers and claims,
/// the sign-in answers and session records on the hot path, and ``JSONText``'s strings.
///
/// The caller writes the punctuation and member names (`raw`); this writes values. Strings
/// are escaped as RFC 8259 requires (quote, backslash, U+0000–U+001F), plus DEL, and `/` is
/// not escaped; runs of bytes that need no escape are copied whole.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Appends `text` as it is (punctuation, member names).
    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private static let hex: StaticString = "0123456789abcdef"

    /// Appends `value` as a JSON string.
    public mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { string($0) }
    }

    /// Appends UTF-8 `value` as a JSON string.
    public mutating func string(_ value: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var start = 0
        for index in 0..<value.count {
            let byte = value[index]
            guard byte < 0x20 || byte == 0x22 || byte == 0x5C || byte == 0x7F else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[start..<index]))
            start = index + 1
            bytes.append(0x5C)
            switch byte {
            case 0x22, 0x5C: bytes.append(byte)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                raw("u00")
                bytes.append(Self.hex.utf8Start[Int(byte >> 4)])
                bytes.append(Self.hex.utf8Start[Int(byte & 0xF)])
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[start..<value.count]))
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends `value` as a JSON string, or `null`.
    public mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { raw("null") }
    }

    /// Appends a decimal integer. Concrete overloads, not one generic function: a generic one
    /// from another module runs unspecialised (BinaryInteger arithmetic through witness tables,
    /// metadata lookups), which showed on the sign-in path.
    public mutating func integer(_ value: Int) { integer(magnitude: UInt64(value.magnitude), negative: value < 0) }
    public mutating func integer(_ value: Int64) { integer(magnitude: value.magnitude, negative: value < 0) }
    public mutating func integer(_ value: Int32) { integer(magnitude: UInt64(value.magnitude), negative: value < 0) }
    public mutating func integer(_ value: UInt64) { integer(magnitude: value, negative: false) }
    public mutating func integer(_ value: UInt32) { integer(magnitude: UInt64(value), negative: false) }

    private mutating func integer(magnitude: UInt64, negative: Bool) {
        DecimalText.withDigits(magnitude: magnitude, negative: negative) { bytes.append(contentsOf: $0) }
    }

    /// Appends `seconds` since the Unix epoch as an RFC 3339 UTC string, e.g.
    /// `"2026-11-30T14:30:16Z"` (the same text as ``JSONText/time(_:)``).
    public mutating func time(_ seconds: Int64) {
        var t = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return raw("\"1970-01-01T00:00:00Z\"") }
        func two(_ v: Int32) {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v / 10))
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10))
        }
        bytes.append(UInt8(ascii: "\""))
        let year = Int(parts.tm_year) + 1900
        if (0...9999).contains(year) {
            two(Int32(year / 100))
            two(Int32(year % 100))
        } else {
            integer(year)
        }
        bytes.append(UInt8(ascii: "-")); two(parts.tm_mon + 1)
        bytes.append(UInt8(ascii: "-")); two(parts.tm_mday)
        bytes.append(UInt8(ascii: "T")); two(parts.tm_hour)
        bytes.append(UInt8(ascii: ":")); two(parts.tm_min)
        bytes.append(UInt8(ascii: ":")); two(parts.tm_sec)
        raw("Z\"")
    }

    /// Appends `values` as a JSON array of strings.
    public mutating func strings(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}

/// A decimal integer's text without a `String` in between: the JSON writer's and the token
/// signer's (which writes into a stack buffer of its own).
enum DecimalText {
    /// Calls `body` with the digits of `magnitude` (after `-` when `negative`), most significant
    /// first, from a 24-byte stack buffer.
    static func withDigits<R>(magnitude: UInt64, negative: Bool, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return withUnsafeMutableBytes(of: &digits) { buffer in
            var v = magnitude
            var i = buffer.count
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            } while v != 0
            if negative {
                i -= 1
                buffer[i] = UInt8(ascii: "-")
            }
            return body(UnsafeRawBufferPointer(rebasing: buffer[i...]))
        }
    }
}
