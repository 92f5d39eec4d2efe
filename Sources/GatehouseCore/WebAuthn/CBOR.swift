/// A CBOR data item (RFC 8949), limited to what WebAuthn carries: integers, byte and text
/// strings, arrays, maps, `true`/`false`/`null`.
public indirect enum CBORValue: Sendable, Hashable {
    /// Major type 0: an unsigned integer.
    case unsigned(UInt64)
    /// Major type 1: the integer `-1 - n` for the stored `n`.
    case negative(UInt64)
    /// Major type 2: a byte string.
    case bytes([UInt8])
    /// Major type 3: a text string (valid UTF-8).
    case text(String)
    /// Major type 4: an array.
    case array([CBORValue])
    /// Major type 5: a map, its entries in encoded order (which the reader has checked is the
    /// canonical order, keys unique).
    case map([CBORMapEntry])
    /// Simple values 20 and 21.
    case bool(Bool)
    /// Simple value 22.
    case null

    /// The value as a signed integer, when it is an integer that fits in `Int64`.
    public var integer: Int64? {
        switch self {
        case .unsigned(let n): n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n): n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: nil
        }
    }

    /// The entry of a map whose key is the integer `key`, or nil (also for a non-map).
    public subscript(key: Int64) -> CBORValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first(where: { $0.key.integer == key })?.value
    }

    /// The entry of a map whose key is the text `key`, or nil (also for a non-map).
    public subscript(key: String) -> CBORValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first(where: { $0.key == .text(key) })?.value
    }
}

/// One key/value pair of a ``CBORValue/map(_:)``.
public struct CBORMapEntry: Sendable, Hashable {
    /// The key.
    public var key: CBORValue
    /// The value.
    public var value: CBORValue

    /// Creates an entry.
    public init(key: CBORValue, value: CBORValue) {
        self.key = key
        self.value = value
    }
}

/// Why bytes are not acceptable CBOR, and where.
///
/// A value type with a closed set of kinds, so that the WebAuthn verifier can carry it as the
/// detail of its `malformedCBOR` error and tests and the fuzzer can tell kinds apart.
public struct CBORError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of defect.
    public enum Kind: String, Sendable, Hashable {
        /// The input ends inside a data item.
        case truncated
        /// A string length or element count is larger than the bytes that are left (checked
        /// before anything is allocated for it).
        case lengthExceedsInput
        /// An indefinite-length string, array or map (additional information 31).
        case indefiniteLength
        /// An integer, length or count not in its shortest form (e.g. `0x18 0x05` for 5).
        case nonShortestEncoding
        /// Additional information 28–30, or 31 on a major type that has no indefinite form.
        case reservedAdditionalInformation
        /// A tag (major type 6): WebAuthn's CBOR (CTAP2 canonical) has none.
        case tagNotAllowed
        /// A floating-point number: nothing in WebAuthn is one.
        case floatNotAllowed
        /// `undefined` or another simple value than `false`, `true`, `null`.
        case simpleValueNotAllowed
        /// A "break" byte (0xFF) outside an indefinite-length item.
        case unexpectedBreak
        /// A text string that is not valid UTF-8.
        case invalidUTF8
        /// A map key that appears twice.
        case duplicateMapKey
        /// Map keys not in the CTAP2 canonical order.
        case mapKeysOutOfOrder
        /// Arrays and maps nested deeper than the limit.
        case tooDeep
        /// The input is longer than the limit.
        case tooLong
        /// Bytes after the (single) top-level item.
        case trailingBytes
    }

    /// The kind of defect.
    public let kind: Kind
    /// Offset in the input where it was found.
    public let offset: Int

    /// Creates an error.
    public init(_ kind: Kind, at offset: Int) {
        self.kind = kind
        self.offset = offset
    }

    public var description: String { "\(kind.rawValue) at byte \(offset)" }
}

/// A strict CBOR reader (RFC 8949) for WebAuthn's structures: attestation objects, attestation
/// statements, COSE keys and authenticator extension outputs.
///
/// WebAuthn §2.4 asks decoders to reject CBOR that is not in the *CTAP2 canonical CBOR encoding
/// form* and maps with duplicate keys; clients and authenticators MUST encode that way. This
/// reader therefore applies every rule of that form, to every map, everywhere:
/// - integers, lengths and counts in their shortest form (`nonShortestEncoding`);
/// - definite lengths only (`indefiniteLength`); no tags (`tagNotAllowed`); no floats
///   (`floatNotAllowed`); of the simple values only `false`, `true`, `null`;
/// - map keys unique (`duplicateMapKey`) and sorted: lower major type first, then the shorter
///   encoding, then byte-wise lexical order of the encodings (`mapKeysOutOfOrder`). With the
///   shortest-form rule a value has exactly one encoding, so equal encodings are equal keys;
/// - text strings valid UTF-8.
///
/// And bounds that keep hostile input cheap: the input at most `maximumLength` bytes, arrays
/// and maps nested at most `maximumDepth` deep (the recursion is bounded by it), every declared
/// length or count checked against the bytes that remain *before* anything is allocated for it
/// (an element takes at least one byte, a map entry two), and nothing may follow the top-level
/// item (`trailingBytes`). Every defect is a ``CBORError``; none traps.
public struct CBORReader: Sendable {
    /// Largest input accepted by default, in bytes (an attestation object with certificates is a
    /// few KiB; the HTTP edge refuses bodies over 64 KiB anyway).
    public static let defaultMaximumLength = 64 * 1024
    /// Deepest nesting of arrays and maps accepted by default (WebAuthn's structures need 3).
    public static let defaultMaximumDepth = 16

    /// Largest input accepted, in bytes.
    public var maximumLength: Int
    /// Deepest nesting of arrays and maps: a top-level array or map is at depth 1.
    public var maximumDepth: Int

    /// A reader with the given limits.
    public init(maximumLength: Int = CBORReader.defaultMaximumLength, maximumDepth: Int = CBORReader.defaultMaximumDepth) {
        self.maximumLength = maximumLength
        self.maximumDepth = maximumDepth
    }

    /// The single data item that `bytes` consists of.
    public func decode(_ bytes: [UInt8]) throws(CBORError) -> CBORValue {
        // withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        try bytes.withUnsafeBytes { raw in Result { () throws(CBORError) in try decode(raw) } }.get()
    }

    /// The single data item that `bytes` consists of.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(CBORError) -> CBORValue {
        let (value, end) = try decodePrefix(bytes, from: 0)
        guard end == bytes.count else { throw CBORError(.trailingBytes, at: end) }
        return value
    }

    /// The data item that starts at `offset` in `bytes`, and the offset just past it (see the
    /// buffer form).
    public func decodePrefix(_ bytes: [UInt8], from offset: Int) throws(CBORError) -> (value: CBORValue, end: Int) {
        try bytes.withUnsafeBytes { raw in Result { () throws(CBORError) in try decodePrefix(raw, from: offset) } }.get()
    }

    /// The data item that starts at `offset` in `bytes`, and the offset just past it; bytes after
    /// it are left alone (authenticator data holds a COSE key followed by more data, with no
    /// length before it). Offsets in errors count from the start of `bytes`.
    public func decodePrefix(_ bytes: UnsafeRawBufferPointer, from offset: Int) throws(CBORError) -> (value: CBORValue, end: Int) {
        guard bytes.count <= maximumLength else { throw CBORError(.tooLong, at: maximumLength) }
        guard offset >= 0, offset <= bytes.count else { throw CBORError(.truncated, at: offset) }
        var cursor = Cursor(bytes: bytes, position: offset, maximumDepth: maximumDepth)
        let value = try cursor.item(depth: 0)
        return (value, cursor.position)
    }
}

/// The reading position over the input; all reads are bounds-checked.
private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    let maximumDepth: Int

    var remaining: Int { bytes.count - position }

    /// The head of an item: major type, additional information and its argument. `start` is the
    /// offset of the initial byte.
    struct Head {
        var major: UInt8
        var info: UInt8
        var argument: UInt64
        var start: Int
    }

    mutating func byte() throws(CBORError) -> UInt8 {
        guard position < bytes.count else { throw CBORError(.truncated, at: position) }
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads an initial byte and, for additional information 24–27, the argument bytes, in the
    /// shortest form only. Major type 7 is left to the caller (its 25–27 are floats).
    mutating func head() throws(CBORError) -> Head {
        let start = position
        let initial = try byte()
        let major = initial >> 5
        let info = initial & 0x1F
        // Tags are refused whatever follows; major type 7 is read by the caller (25–27 are floats).
        if major == 6 { throw CBORError(.tagNotAllowed, at: start) }
        if major == 7 { return Head(major: 7, info: info, argument: 0, start: start) }
        let argument: UInt64
        switch info {
        case 0...23:
            argument = UInt64(info)
        case 24...27:
            let width = 1 << Int(info - 24)  // 1, 2, 4, 8 bytes
            guard remaining >= width else { throw CBORError(.truncated, at: position) }
            var value: UInt64 = 0
            for _ in 0..<width { value = value << 8 | UInt64(bytes[position]); position += 1 }
            // The shortest form: 24 only for 24…255, 25 only above 255, and so on.
            let smallest: UInt64 = switch info {
            case 24: 24
            case 25: 0x100
            case 26: 0x1_0000
            default: 0x1_0000_0000
            }
            guard value >= smallest else { throw CBORError(.nonShortestEncoding, at: start) }
            argument = value
        case 31:
            switch major {
            case 2, 3, 4, 5: throw CBORError(.indefiniteLength, at: start)
            default: throw CBORError(.reservedAdditionalInformation, at: start)
            }
        default:
            throw CBORError(.reservedAdditionalInformation, at: start)
        }
        return Head(major: major, info: info, argument: argument, start: start)
    }

    /// A declared length or count that must fit in what is left, `unit` bytes per element at
    /// least. Checked before any allocation.
    func count(_ head: Head, unit: Int) throws(CBORError) -> Int {
        guard head.argument <= UInt64(remaining / unit) else { throw CBORError(.lengthExceedsInput, at: head.start) }
        return Int(head.argument)
    }

    /// One data item; `depth` counts the arrays and maps around it.
    mutating func item(depth: Int) throws(CBORError) -> CBORValue {
        let head = try head()
        switch head.major {
        case 0:
            return .unsigned(head.argument)
        case 1:
            return .negative(head.argument)
        case 2:
            let length = try count(head, unit: 1)
            let value = Array(UnsafeRawBufferPointer(rebasing: bytes[position..<position + length]))
            position += length
            return .bytes(value)
        case 3:
            let length = try count(head, unit: 1)
            let raw = UnsafeRawBufferPointer(rebasing: bytes[position..<position + length])
            guard let text = String(validating: raw, as: UTF8.self) else { throw CBORError(.invalidUTF8, at: head.start) }
            position += length
            return .text(text)
        case 4:
            guard depth < maximumDepth else { throw CBORError(.tooDeep, at: head.start) }
            let n = try count(head, unit: 1)
            var elements: [CBORValue] = []
            // Reserve for small counts only: a hostile count that fits the input (one byte per
            // element) must not make each of 16 nested levels reserve a large block up front.
            elements.reserveCapacity(min(n, 64))
            for _ in 0..<n { elements.append(try item(depth: depth + 1)) }
            return .array(elements)
        case 5:
            guard depth < maximumDepth else { throw CBORError(.tooDeep, at: head.start) }
            let n = try count(head, unit: 2)
            var entries: [CBORMapEntry] = []
            entries.reserveCapacity(min(n, 64))
            var previousKey: Range<Int>?
            for _ in 0..<n {
                let keyStart = position
                let key = try item(depth: depth + 1)
                let keyRange = keyStart..<position
                if let previousKey {
                    switch Self.canonicalOrder(bytes, previousKey, keyRange) {
                    case .orderedAscending: break
                    case .orderedSame: throw CBORError(.duplicateMapKey, at: keyStart)
                    case .orderedDescending: throw CBORError(.mapKeysOutOfOrder, at: keyStart)
                    }
                }
                previousKey = keyRange
                let value = try item(depth: depth + 1)
                entries.append(CBORMapEntry(key: key, value: value))
            }
            return .map(entries)
        default:  // 7 (6, tags, was refused by head())
            switch head.info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 25, 26, 27: throw CBORError(.floatNotAllowed, at: head.start)
            case 28, 29, 30: throw CBORError(.reservedAdditionalInformation, at: head.start)
            case 31: throw CBORError(.unexpectedBreak, at: head.start)
            default: throw CBORError(.simpleValueNotAllowed, at: head.start)  // 0…19, 23, 24
            }
        }
    }

    enum Order { case orderedAscending, orderedSame, orderedDescending }

    /// CTAP2 canonical key order of two encoded keys: major type, then encoded length, then
    /// byte-wise lexical order.
    static func canonicalOrder(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Order {
        let majorA = bytes[a.lowerBound] >> 5, majorB = bytes[b.lowerBound] >> 5
        if majorA != majorB { return majorA < majorB ? .orderedAscending : .orderedDescending }
        if a.count != b.count { return a.count < b.count ? .orderedAscending : .orderedDescending }
        for i in 0..<a.count {
            let x = bytes[a.lowerBound + i], y = bytes[b.lowerBound + i]
            if x != y { return x < y ? .orderedAscending : .orderedDescending }
        }
        return .orderedSame
    }
}
