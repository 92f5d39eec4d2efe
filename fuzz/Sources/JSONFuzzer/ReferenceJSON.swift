/// A plain RFC 8259 reader, written from the grammar and independent of GatehouseCore, as the
/// reference the strict reader is checked against. It accepts every text the grammar allows and
/// records what the strict reader refuses on purpose: nesting depth, a repeated member name, a
/// member name with an escape, DEL or a non-ASCII byte, an escape that leaves a surrogate unpaired.
struct ReferenceJSON {
    indirect enum Value {
        /// The string's text as UTF-8 (escapes decoded; nil if an escape left a surrogate unpaired).
        case string([UInt8]?)
        /// The number's text as written.
        case number([UInt8])
        case bool(Bool)
        case null
        case array([Value])
        case object([(name: [UInt8], value: Value)])
    }

    /// How a text is read, or why not.
    struct Reading {
        var value: Value
        /// Deepest nesting of arrays and objects (a scalar alone is 0).
        var depth: Int
        /// The first repeated member name, in the order the strict reader finds one (when the
        /// second member's value has been read).
        var firstDuplicate: [UInt8]?
        /// Some member name has an escape, DEL or a byte outside ASCII, or is not valid text.
        var badName: Bool
        /// Some string has an escape that leaves a surrogate unpaired.
        var unpairedSurrogate: Bool
    }

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0
    private var maxDepth = 0
    private var firstDuplicate: [UInt8]?
    private var badName = false
    private var unpairedSurrogate = false

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The reading of `bytes` as one JSON text, or nil when the grammar does not allow it.
    static func read(_ bytes: [UInt8]) -> Reading? {
        var reader = ReferenceJSON(bytes)
        reader.whitespace()
        guard let value = reader.value() else { return nil }
        reader.whitespace()
        guard reader.index == bytes.count else { return nil }
        return Reading(
            value: value, depth: reader.maxDepth, firstDuplicate: reader.firstDuplicate,
            badName: reader.badName, unpairedSurrogate: reader.unpairedSurrogate
        )
    }

    private mutating func whitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func value() -> Value? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            depth += 1
            maxDepth = max(maxDepth, depth)
            defer { depth -= 1 }
            var members: [(name: [UInt8], value: Value)] = []
            whitespace()
            if take(UInt8(ascii: "}")) { return .object(members) }
            while true {
                whitespace()
                let nameStart = index
                guard let name = string() else { return nil }
                let raw = bytes[(nameStart + 1)..<(index - 1)]
                if raw.contains(UInt8(ascii: "\\")) || raw.contains(where: { $0 >= 0x7F }) { badName = true }
                whitespace()
                guard take(UInt8(ascii: ":")) else { return nil }
                whitespace()
                guard let member = value() else { return nil }
                if let name, firstDuplicate == nil, members.contains(where: { $0.name == name }) { firstDuplicate = name }
                if name == nil { badName = true }
                members.append((name ?? [], member))
                whitespace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                return .object(members)
            }
        case UInt8(ascii: "["):
            index += 1
            depth += 1
            maxDepth = max(maxDepth, depth)
            defer { depth -= 1 }
            var elements: [Value] = []
            whitespace()
            if take(UInt8(ascii: "]")) { return .array(elements) }
            while true {
                whitespace()
                guard let element = value() else { return nil }
                elements.append(element)
                whitespace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "]")) else { return nil }
                return .array(elements)
            }
        case UInt8(ascii: "\""):
            guard let text = string() else { return nil }
            return .string(text)
        case UInt8(ascii: "t"): return word("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return word("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return word("null") ? .null : nil
        default: return number()
        }
    }

    private mutating func word(_ text: String) -> Bool {
        let w = Array(text.utf8)
        guard index + w.count <= bytes.count, Array(bytes[index..<(index + w.count)]) == w else { return false }
        index += w.count
        return true
    }

    /// `number = [ minus ] int [ frac ] [ exp ]`.
    private mutating func number() -> Value? {
        let start = index
        _ = take(UInt8(ascii: "-"))
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        guard index < bytes.count, isDigit(bytes[index]) else { return nil }
        if bytes[index] == 0x30 {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if take(UInt8(ascii: ".")) {
            guard index < bytes.count, isDigit(bytes[index]) else { return nil }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { return nil }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        return .number(Array(bytes[start..<index]))
    }

    /// A string at `index` (its opening quote): its text, or `.some(nil)` when an escape leaves
    /// a surrogate unpaired; nil when the grammar (or UTF-8) does not allow it.
    private mutating func string() -> [UInt8]?? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        var unpaired = false
        var pendingHigh: UInt32?
        func flushHigh() {
            if pendingHigh != nil { unpaired = true; pendingHigh = nil }
        }
        while true {
            guard index < bytes.count else { return nil }
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                index += 1
                flushHigh()
                if unpaired { unpairedSurrogate = true; return .some(nil) }
                return .some(out)
            }
            if b < 0x20 { return nil }
            if b == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { return nil }
                let e = bytes[index + 1]
                index += 2
                if e == UInt8(ascii: "u") {
                    guard index + 4 <= bytes.count, let unit = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16),
                          bytes[index..<(index + 4)].allSatisfy({ isHex($0) }) else { return nil }
                    index += 4
                    if (0xD800...0xDBFF).contains(unit) {
                        flushHigh()
                        pendingHigh = unit
                    } else if (0xDC00...0xDFFF).contains(unit) {
                        if let high = pendingHigh {
                            pendingHigh = nil
                            appendUTF8(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00), to: &out)
                        } else {
                            unpaired = true
                        }
                    } else {
                        flushHigh()
                        appendUTF8(unit, to: &out)
                    }
                    continue
                }
                flushHigh()
                let decoded: UInt8
                switch e {
                case UInt8(ascii: "\""): decoded = 0x22
                case UInt8(ascii: "\\"): decoded = 0x5C
                case UInt8(ascii: "/"): decoded = 0x2F
                case UInt8(ascii: "b"): decoded = 0x08
                case UInt8(ascii: "f"): decoded = 0x0C
                case UInt8(ascii: "n"): decoded = 0x0A
                case UInt8(ascii: "r"): decoded = 0x0D
                case UInt8(ascii: "t"): decoded = 0x09
                default: return nil
                }
                out.append(decoded)
                continue
            }
            flushHigh()
            // One UTF-8 sequence (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
            let length: Int
            let minimum: UInt32
            var scalar: UInt32
            switch b {
            case 0x00...0x7F: length = 1; minimum = 0; scalar = UInt32(b)
            case 0xC0...0xDF: length = 2; minimum = 0x80; scalar = UInt32(b & 0x1F)
            case 0xE0...0xEF: length = 3; minimum = 0x800; scalar = UInt32(b & 0x0F)
            case 0xF0...0xF7: length = 4; minimum = 0x10000; scalar = UInt32(b & 0x07)
            default: return nil
            }
            guard index + length <= bytes.count else { return nil }
            for k in 1..<max(1, length) {
                let c = bytes[index + k]
                guard c & 0xC0 == 0x80 else { return nil }
                scalar = scalar << 6 | UInt32(c & 0x3F)
            }
            guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return nil }
            out.append(contentsOf: bytes[index..<(index + length)])
            index += length
        }
    }

    private func isHex(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }
}

func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
    switch scalar {
    case 0..<0x80:
        out.append(UInt8(scalar))
    case 0x80..<0x800:
        out.append(0xC0 | UInt8(scalar >> 6)); out.append(0x80 | UInt8(scalar & 0x3F))
    case 0x800..<0x10000:
        out.append(0xE0 | UInt8(scalar >> 12)); out.append(0x80 | UInt8((scalar >> 6) & 0x3F)); out.append(0x80 | UInt8(scalar & 0x3F))
    default:
        out.append(0xF0 | UInt8(scalar >> 18)); out.append(0x80 | UInt8((scalar >> 12) & 0x3F))
        out.append(0x80 | UInt8((scalar >> 6) & 0x3F)); out.append(0x80 | UInt8(scalar & 0x3F))
    }
}

/// The exact value of a JSON number's text, when it is a whole number that fits in 64 bits
/// (decimal arithmetic on the digits: no floating point).
enum ExactNumber: Equatable {
    /// A whole number, and whether its text had a fraction or exponent.
    case whole(Int64, plain: Bool)
    /// Not whole, or whole but outside Int64.
    case other(plain: Bool)

    init(_ text: [UInt8]) {
        var i = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { i += 1 }
        var digits: [UInt8] = []
        while i < text.count, (0x30...0x39).contains(text[i]) { digits.append(text[i] - 0x30); i += 1 }
        var exponent = 0
        var plain = true
        if i < text.count, text[i] == UInt8(ascii: ".") {
            plain = false
            i += 1
            while i < text.count, (0x30...0x39).contains(text[i]) { digits.append(text[i] - 0x30); exponent -= 1; i += 1 }
        }
        if i < text.count, text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E") {
            plain = false
            i += 1
            var sign = 1
            if text[i] == UInt8(ascii: "-") { sign = -1; i += 1 } else if text[i] == UInt8(ascii: "+") { i += 1 }
            var e = 0
            while i < text.count, (0x30...0x39).contains(text[i]) {
                e = min(e * 10 + Int(text[i] - 0x30), 1_000_000)  // far past any Int64
                i += 1
            }
            exponent += sign * e
        }
        // value = digits × 10^exponent
        while let first = digits.first, first == 0 { digits.removeFirst() }
        if digits.isEmpty { self = .whole(0, plain: plain); return }
        while exponent < 0, digits.last == 0 { digits.removeLast(); exponent += 1 }
        guard exponent >= 0, digits.count + exponent <= 19 else { self = .other(plain: plain); return }
        var magnitude: UInt64 = 0
        for d in digits + Array(repeating: 0, count: exponent) {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { self = .other(plain: plain); return }
            magnitude = s
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { self = .other(plain: plain); return }
            self = .whole(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude), plain: plain)
        } else {
            guard magnitude <= UInt64(Int64.max) else { self = .other(plain: plain); return }
            self = .whole(Int64(magnitude), plain: plain)
        }
    }
}
