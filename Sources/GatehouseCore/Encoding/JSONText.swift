import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A small JSON writer for the service's own response and record objects, and RFC 3339 times.
///
/// Why not `JSONSerialization`: on Linux it bridges every dictionary to `NSDictionary`, and with
/// `.sortedKeys` compares keys through `NSString` with a locale — measured at 18% of a node's CPU
/// on the sign-in path, more than the sign-in's own work. This writer handles exactly the values
/// the service builds (strings, integers, booleans, finite doubles, `NSNull` or ``Null`` for
/// `null`, arrays and string-keyed dictionaries), sorts keys by their UTF-8 bytes (stable output, so equal
/// objects give byte-identical bodies) and does not escape `/`.
public enum JSONText {
    /// A JSON `null` inside `[String: Any]` / `[Any]` values.
    public struct Null: Sendable {
        public init() {}
    }

    /// The JSON text of `value` as UTF-8 bytes.
    public static func bytes(_ value: Any) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, to: &out)
        return out
    }

    /// The JSON text of `value`.
    public static func string(_ value: Any) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    private static func write(_ value: Any, to out: inout [UInt8]) {
        // Most frequent first. `NSNull` is matched by its type, not with `is NSNull`: on Linux
        // that cast bridges the value (a whole dictionary, say) to an Objective-C object first.
        if ObjectIdentifier(type(of: value) as Any.Type) == ObjectIdentifier(NSNull.self) {
            out.append(contentsOf: "null".utf8)
            return
        }
        switch value {
        case let text as String:
            writeString(text, to: &out)
        case let object as [String: Any]:
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(object[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let text as Substring:
            writeString(String(text), to: &out)
        case let flag as Bool:
            out.append(contentsOf: flag ? Array("true".utf8) : Array("false".utf8))
        case let number as Int:
            out.append(contentsOf: String(number).utf8)
        case let number as Int64:
            out.append(contentsOf: String(number).utf8)
        case let number as UInt64:
            out.append(contentsOf: String(number).utf8)
        case let number as Int32:
            out.append(contentsOf: String(number).utf8)
        case let number as UInt32:
            out.append(contentsOf: String(number).utf8)
        case let number as Double:
            if !number.isFinite {
                out.append(contentsOf: "null".utf8)
            } else if number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                out.append(contentsOf: String(Int64(number)).utf8)
            } else {
                out.append(contentsOf: String(number).utf8)
            }
        case is Null:
            out.append(contentsOf: "null".utf8)
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        default:
            // An `Optional` inside `Any`, or a type the service never builds.
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                write(wrapped, to: &out)
            } else if mirror.displayStyle == .optional {
                out.append(contentsOf: "null".utf8)
            } else {
                assertionFailure("JSONText cannot encode \(type(of: value))")
                out.append(contentsOf: "null".utf8)
            }
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            // Runs of bytes that need no escape are copied whole.
            var start = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                start = index + 1
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `seconds` since the Unix epoch as RFC 3339 UTC, e.g. `2026-11-30T14:30:16Z` (no ICU).
    public static func time(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return "1970-01-01T00:00:00Z" }
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : String(v) }
        var year = String(parts.tm_year + 1900)
        while year.utf8.count < 4 { year = "0" + year }
        return "\(year)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
