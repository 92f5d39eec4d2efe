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
        var out = JSONWriter(capacity: 256)
        write(value, to: &out)
        return out.bytes
    }

    /// The JSON text of `value`.
    public static func string(_ value: Any) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    private static func write(_ value: Any, to out: inout JSONWriter) {
        // Most frequent first. `NSNull` is matched by its type, not with `is NSNull`: on Linux
        // that cast bridges the value (a whole dictionary, say) to an Objective-C object first.
        if ObjectIdentifier(type(of: value) as Any.Type) == ObjectIdentifier(NSNull.self) {
            out.raw("null")
            return
        }
        switch value {
        case let text as String:
            out.string(text)
        case let object as [String: Any]:
            out.bytes.append(UInt8(ascii: "{"))
            var first = true
            for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                if !first { out.bytes.append(UInt8(ascii: ",")) }
                first = false
                out.string(key)
                out.bytes.append(UInt8(ascii: ":"))
                write(object[key]!, to: &out)
            }
            out.bytes.append(UInt8(ascii: "}"))
        case let text as Substring:
            out.string(String(text))
        case let flag as Bool:
            flag ? out.raw("true") : out.raw("false")
        case let number as Int:
            out.integer(number)
        case let number as Int64:
            out.integer(number)
        case let number as UInt64:
            out.integer(number)
        case let number as Int32:
            out.integer(number)
        case let number as UInt32:
            out.integer(number)
        case let number as Double:
            if !number.isFinite {
                out.raw("null")
            } else if number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                out.integer(Int64(number))
            } else {
                out.bytes.append(contentsOf: String(number).utf8)
            }
        case is Null:
            out.raw("null")
        case let array as [Any]:
            out.bytes.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
                write(element, to: &out)
            }
            out.bytes.append(UInt8(ascii: "]"))
        default:
            // An `Optional` inside `Any`, or a type the service never builds.
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                write(wrapped, to: &out)
            } else if mirror.displayStyle == .optional {
                out.raw("null")
            } else {
                assertionFailure("JSONText cannot encode \(type(of: value))")
                out.raw("null")
            }
        }
    }

    /// `seconds` since the Unix epoch as RFC 3339 UTC, e.g. `2026-11-30T14:30:16Z` (no ICU).
    public static func time(_ seconds: Int64) -> String {
        var w = JSONWriter(capacity: 24)
        w.time(seconds)
        return String(decoding: w.bytes.dropFirst().dropLast(), as: UTF8.self)
    }
}
