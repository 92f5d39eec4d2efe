/// A parsed JSON value, as read by ``JSONObjectReader``.
public enum JSONValue: Sendable, Equatable {
    case string(String)
    /// A whole number that fits in 64 bits: `12`, and also `12.0` or `1.2e1` (JSON has one number
    /// type; these are the same number) when exact in a Double (at most 2^53 in magnitude).
    case integer(Int64)
    /// Any other number (its value is not kept: no request member is a fraction).
    case number
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])
}

/// Reads a request body: one JSON object (RFC 8259) whose member names are all in an allowed set.
///
/// Why not `JSONDecoder`: on the sign-in path it was the largest single cost of a node (13% of its
/// CPU for a body of six short members, most of it generic metadata and key-path look-ups), and
/// it silently keeps the last of two members with one name. This reader makes one pass over the
/// bytes with ``StrictJSONScanner`` and is stricter where a request never needs leniency:
/// - a member name may appear once (`{"code":"1","code":"2"}` is refused, not resolved);
/// - member names are printable ASCII without escapes (so neither `"\u0063ode"` nor a Unicode
///   look-alike that Swift's `String` comparison treats as equal can pose as `code`);
/// - nesting is at most ``maximumDepth`` deep;
/// - strings are valid UTF-8 without raw control characters, escapes (surrogate pairs included)
///   decoded.
public enum JSONObjectReader {
    /// Why a body was refused.
    public enum Failure: Error, Equatable {
        /// Not JSON, or more than one value, or nested deeper than ``maximumDepth``.
        case malformed
        /// Valid JSON, but not an object.
        case notObject
        /// The first unknown member name in byte order.
        case unknownMember(String)
        case duplicateMember(String)
    }

    public static let maximumDepth = 16

    /// The members of the object in `bytes`, every name in `allowed`.
    public static func members(_ bytes: UnsafeRawBufferPointer, allowed: Set<String>) throws(Failure) -> [String: JSONValue] {
        let value = try parse(bytes)
        guard case .object(let members) = value else { throw .notObject }
        // The first unknown name in byte order, so the answer does not depend on member order.
        var unknown: String?
        for name in members.keys where !allowed.contains(name) {
            if unknown.map({ name.utf8.lexicographicallyPrecedes($0.utf8) }) ?? true { unknown = name }
        }
        if let unknown { throw .unknownMember(unknown) }
        return members
    }

    /// The single JSON value in `bytes` (whitespace around it allowed).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> JSONValue {
        var scanner = StrictJSONScanner(bytes.assumingMemoryBound(to: UInt8.self))
        let value = try scanner.value(depth: 0)
        guard scanner.atEnd() else { throw .malformed }
        return value
    }
}

extension StrictJSONScanner {
    /// Any JSON value; objects and arrays recursively, at most ``JSONObjectReader/maximumDepth`` deep.
    mutating func value(depth: Int) throws(JSONObjectReader.Failure) -> JSONValue {
        guard let next = peek() else { throw .malformed }
        switch next {
        case UInt8(ascii: "\""):
            guard let text = stringValue(maxBytes: bytes.count) else { throw .malformed }
            return .string(text)
        case UInt8(ascii: "{"):
            guard depth < JSONObjectReader.maximumDepth else { throw .malformed }
            index += 1
            var members: [String: JSONValue] = [:]
            if consume(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                guard let raw = memberName() else { throw .malformed }
                // Names carry no escapes (memberName refuses them and control characters) and are
                // printable ASCII: compared as Strings, canonically equivalent names would
                // otherwise be one name; and DEL, which JSONWriter escapes, would not be read back.
                guard StrictJSONScanner.isASCII(raw), !raw.contains(0x7F), consume(UInt8(ascii: ":")) else { throw .malformed }
                let name = String(decoding: raw, as: UTF8.self)
                let member = try value(depth: depth + 1)
                guard members.updateValue(member, forKey: name) == nil else { throw .duplicateMember(name) }
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")) else { throw .malformed }
            return .object(members)
        case UInt8(ascii: "["):
            guard depth < JSONObjectReader.maximumDepth else { throw .malformed }
            index += 1
            var elements: [JSONValue] = []
            if consume(UInt8(ascii: "]")) { return .array(elements) }
            repeat {
                elements.append(try value(depth: depth + 1))
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "]")) else { throw .malformed }
            return .array(elements)
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            throw .malformed
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONObjectReader.Failure) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
              spanEquals(UnsafeBufferPointer(rebasing: bytes[index..<index + count]), word) else { throw .malformed }
        index += count
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func number() throws(JSONObjectReader.Failure) -> JSONValue {
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        func digits(_ s: inout StrictJSONScanner) -> Int {
            let start = s.index
            while s.index < s.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s.bytes[s.index]) { s.index += 1 }
            return s.index - start
        }
        let intStart = index
        let intDigits = digits(&self)
        guard intDigits > 0, intDigits == 1 || bytes[intStart] != UInt8(ascii: "0") else { throw .malformed }
        var fractionStart = index, fractionDigits = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            fractionStart = index
            fractionDigits = digits(&self)
            guard fractionDigits > 0 else { throw .malformed }
        }
        var exponent = 0
        var hasExponent = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            hasExponent = true
            index += 1
            var exponentNegative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            let exponentStart = index
            guard digits(&self) > 0 else { throw .malformed }
            // Far past any number of digits a body can hold; a larger exponent changes nothing below.
            for i in exponentStart..<index { exponent = min(exponent * 10 + Int(bytes[i] - UInt8(ascii: "0")), 1_000_000_000) }
            if exponentNegative { exponent = -exponent }
        }
        guard fractionDigits == 0, !hasExponent else {
            return Self.wholeNumber(
                negative: negative, integer: intStart..<(intStart + intDigits),
                fraction: fractionStart..<(fractionStart + fractionDigits), exponent: exponent, in: bytes)
        }
        guard intDigits <= 19 else { return .number }
        var magnitude: UInt64 = 0
        for i in intStart..<intStart + intDigits { magnitude = magnitude * 10 + UInt64(bytes[i] - UInt8(ascii: "0")) }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return .number }
            return .integer(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        }
        guard magnitude <= UInt64(Int64.max) else { return .number }
        return .integer(Int64(magnitude))
    }

    /// A number written with a fraction or an exponent: `.integer` when its value is exactly a
    /// whole number of at most 2^53 in magnitude, else `.number`. Decided on the decimal digits
    /// (value = digits × 10^exponent), not through a Double, which rounds: `9007199254740993.0`
    /// would read as 9007199254740992 and `1e-400` as 0.
    private static func wholeNumber(
        negative: Bool, integer: Range<Int>, fraction: Range<Int>, exponent: Int, in bytes: UnsafeBufferPointer<UInt8>
    ) -> JSONValue {
        let count = integer.count + fraction.count
        func digit(_ k: Int) -> UInt64 {
            UInt64(bytes[k < integer.count ? integer.lowerBound + k : fraction.lowerBound + k - integer.count] - UInt8(ascii: "0"))
        }
        // The significant digits: from the first non-zero one to the last.
        var first = 0
        while first < count, digit(first) == 0 { first += 1 }
        guard first < count else { return .integer(0) }
        var last = count - 1
        while digit(last) == 0 { last -= 1 }
        // value = digits[first...last] × 10^scale
        let scale = exponent - fraction.count + (count - 1 - last)
        // A negative scale leaves a fraction; 17 or more digits are at least 10^16, past 2^53.
        guard scale >= 0, last - first + 1 + scale <= 16 else { return .number }
        var magnitude: UInt64 = 0
        for k in first...last { magnitude = magnitude * 10 + digit(k) }
        for _ in 0..<scale { magnitude *= 10 }
        guard magnitude <= 1 << 53 else { return .number }
        return .integer(negative ? -Int64(magnitude) : Int64(magnitude))
    }
}
