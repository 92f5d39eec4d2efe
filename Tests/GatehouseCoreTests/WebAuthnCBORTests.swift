import GatehouseCore
import Testing

@Suite("WebAuthn: strict CBOR reader")
struct WebAuthnCBORTests {
    static func decode(_ hexText: String, reader: CBORReader = CBORReader()) -> Result<CBORValue, CBORError> {
        Result { () throws(CBORError) in try reader.decode(hex(hexText)) }
    }

    static func kind(_ hexText: String, reader: CBORReader = CBORReader()) -> CBORError.Kind? {
        if case .failure(let error) = decode(hexText, reader: reader) { return error.kind }
        return nil
    }

    // RFC 8949 Appendix A, the examples within what WebAuthn's CBOR allows.
    @Test("RFC 8949 Appendix A: integers", arguments: [
        ("00", CBORValue.unsigned(0)), ("01", .unsigned(1)), ("0a", .unsigned(10)), ("17", .unsigned(23)),
        ("1818", .unsigned(24)), ("1819", .unsigned(25)), ("1864", .unsigned(100)), ("1903e8", .unsigned(1000)),
        ("1a000f4240", .unsigned(1_000_000)), ("1b000000e8d4a51000", .unsigned(1_000_000_000_000)),
        ("1bffffffffffffffff", .unsigned(18_446_744_073_709_551_615)),
        ("3bffffffffffffffff", .negative(18_446_744_073_709_551_615)),  // -18446744073709551616
        ("20", .negative(0)), ("29", .negative(9)), ("3863", .negative(99)), ("3903e7", .negative(999)),
    ])
    func appendixAIntegers(encoded: String, value: CBORValue) throws {
        #expect(try Self.decode(encoded).get() == value)
    }

    @Test("RFC 8949 Appendix A: integer values in Int64")
    func integerValues() throws {
        #expect(try Self.decode("3903e7").get().integer == -1000)
        #expect(try Self.decode("29").get().integer == -10)
        #expect(try Self.decode("1b000000e8d4a51000").get().integer == 1_000_000_000_000)
        #expect(try Self.decode("1bffffffffffffffff").get().integer == nil)  // beyond Int64
        #expect(try Self.decode("3bffffffffffffffff").get().integer == nil)
    }

    @Test("RFC 8949 Appendix A: simple values, strings, arrays and maps", arguments: [
        ("f4", CBORValue.bool(false)), ("f5", .bool(true)), ("f6", .null),
        ("40", .bytes([])), ("4401020304", .bytes([1, 2, 3, 4])),
        ("60", .text("")), ("6161", .text("a")), ("6449455446", .text("IETF")), ("62225c", .text("\"\\")),
        ("62c3bc", .text("\u{00FC}")), ("63e6b0b4", .text("\u{6C34}")), ("64f0908591", .text("\u{10151}")),
        ("80", .array([])), ("83010203", .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
        ("8301820203820405", .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])),
        ("a0", .map([])),
        ("a201020304", .map([CBORMapEntry(key: .unsigned(1), value: .unsigned(2)), CBORMapEntry(key: .unsigned(3), value: .unsigned(4))])),
        ("a26161016162820203", .map([
            CBORMapEntry(key: .text("a"), value: .unsigned(1)),
            CBORMapEntry(key: .text("b"), value: .array([.unsigned(2), .unsigned(3)])),
        ])),
        ("826161a161626163", .array([.text("a"), .map([CBORMapEntry(key: .text("b"), value: .text("c"))])])),
        ("a56161614161626142616361436164614461656145", .map(["a", "b", "c", "d", "e"].map {
            CBORMapEntry(key: .text($0), value: .text($0.uppercased()))
        })),
    ])
    func appendixAOthers(encoded: String, value: CBORValue) throws {
        #expect(try Self.decode(encoded).get() == value)
    }

    @Test("RFC 8949 Appendix A: the 25-element array")
    func longArray() throws {
        let value = try Self.decode("98190102030405060708090a0b0c0d0e0f101112131415161718181819").get()
        #expect(value == .array((1...25).map { .unsigned(UInt64($0)) }))
    }

    // The rest of Appendix A is outside WebAuthn's CBOR and must be refused, each for its reason.
    @Test("RFC 8949 Appendix A: floats, undefined, other simple values, tags and indefinite lengths are refused", arguments: [
        ("f90000", CBORError.Kind.floatNotAllowed), ("f98000", .floatNotAllowed), ("f93c00", .floatNotAllowed),
        ("fb3ff199999999999a", .floatNotAllowed), ("f93e00", .floatNotAllowed), ("f97bff", .floatNotAllowed),
        ("fa47c35000", .floatNotAllowed), ("fa7f7fffff", .floatNotAllowed), ("fb7e37e43c8800759c", .floatNotAllowed),
        ("f90001", .floatNotAllowed), ("f90400", .floatNotAllowed), ("f9c400", .floatNotAllowed),
        ("fbc010666666666666", .floatNotAllowed), ("f97c00", .floatNotAllowed), ("f97e00", .floatNotAllowed),
        ("f9fc00", .floatNotAllowed), ("fa7f800000", .floatNotAllowed), ("fb7ff0000000000000", .floatNotAllowed),
        ("f7", .simpleValueNotAllowed), ("f0", .simpleValueNotAllowed), ("f8ff", .simpleValueNotAllowed),
        ("c074323031332d30332d32315432303a30343a30305a", .tagNotAllowed), ("c11a514b67b0", .tagNotAllowed),
        ("c1fb41d452d9ec200000", .tagNotAllowed), ("d74401020304", .tagNotAllowed), ("d818456449455446", .tagNotAllowed),
        ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", .tagNotAllowed),
        ("c249010000000000000000", .tagNotAllowed), ("c349010000000000000000", .tagNotAllowed),
        ("5f42010243030405ff", .indefiniteLength), ("7f657374726561646d696e67ff", .indefiniteLength),
        ("9fff", .indefiniteLength), ("9f018202039f0405ffff", .indefiniteLength), ("9f01820203820405ff", .indefiniteLength),
        ("83018202039f0405ff", .indefiniteLength), ("83019f0203ff820405", .indefiniteLength),
        ("bf61610161629f0203ffff", .indefiniteLength), ("826161bf61626163ff", .indefiniteLength),
        ("bf6346756ef563416d7421ff", .indefiniteLength),
    ])
    func appendixARefused(encoded: String, kind: CBORError.Kind) {
        #expect(Self.kind(encoded) == kind)
    }

    @Test("truncated input", arguments: [
        "", "18", "19 03", "1a 0000 00", "1b 00000000 000000", "44 010203", "62 61", "82 01", "a1 01", "a2 01 02 03",
        "38", "58", "98", "b8",
    ])
    func truncated(encoded: String) {
        let kind = Self.kind(encoded)
        // A declared length longer than the input is caught as such before reading; anything cut
        // inside a head or between items is "truncated".
        #expect(kind == .truncated || kind == .lengthExceedsInput, "\(encoded): \(String(describing: kind))")
    }

    @Test("lengths and counts larger than the input are refused before any allocation", arguments: [
        ("44 010203", CBORError.Kind.lengthExceedsInput),
        ("5b ffffffffffffffff 00", .lengthExceedsInput),
        ("7b 7fffffffffffffff 61", .lengthExceedsInput),
        ("9b ffffffffffffffff 00", .lengthExceedsInput),
        ("9a ffffffff 00", .lengthExceedsInput),
        ("bb ffffffffffffffff 00 00", .lengthExceedsInput),
        ("a2 01 02", .lengthExceedsInput),  // two entries need at least four bytes
        ("82 01", .lengthExceedsInput),  // two elements need at least two bytes
        ("82 1819", .truncated),  // the count fits, the second element is missing
    ])
    func oversizedLengths(encoded: String, kind: CBORError.Kind) {
        #expect(Self.kind(encoded) == kind)
    }

    @Test("integers, lengths and counts must use the shortest form", arguments: [
        "18 17", "18 00", "19 00ff", "19 0000", "1a 0000ffff", "1b 00000000ffffffff", "38 17", "39 00ff",
        "58 01 00", "59 0001 00", "78 01 61", "98 01 00", "b8 01 00 00", "99 0017 00",
    ])
    func nonShortest(encoded: String) {
        #expect(Self.kind(encoded) == .nonShortestEncoding)
    }

    @Test("map keys: unique", arguments: ["a2 01 00 01 01", "a2 20 00 20 00", "a2 6161 00 6161 01", "a2 41 00 00 41 00 00"])
    func duplicateKeys(encoded: String) {
        #expect(Self.kind(encoded) == .duplicateMapKey)
    }

    @Test("map keys: CTAP2 canonical order (major type, then length, then bytes)", arguments: [
        "a2 03 00 01 00",  // 3 before 1
        "a2 20 00 01 00",  // -1 (major 1) before 1 (major 0)
        "a2 22 00 20 00",  // -3 before -1
        "a2 1818 00 17 00",  // 24 (two bytes) before 23 (one byte)
        "a2 6261 61 00 6162 00",  // "aa" before "b": the shorter text sorts first
        "a2 6162 00 6161 00",  // "b" before "a"
        "a2 6161 00 01 00",  // text before unsigned
        "a3 01 00 03 00 02 00",
    ])
    func unorderedKeys(encoded: String) {
        #expect(Self.kind(encoded) == .mapKeysOutOfOrder)
    }

    @Test("canonical orders are accepted")
    func orderedKeys() throws {
        // The COSE EC2 key order: 1, 3, -1, -2, -3.
        _ = try Self.decode("a5 01 02 03 26 20 01 21 40 22 40").get()
        // The attestation object order: "fmt", "attStmt", "authData".
        _ = try Self.decode("a3 63666d74 60 6761747453746d74 a0 686175746844617461 40").get()
        _ = try Self.decode("a3 17 00 1818 00 6161 00").get()
    }

    @Test("nesting: 16 levels accepted, 17 refused, and the limit is configurable")
    func depth() {
        let sixteen = String(repeating: "81", count: 15) + "80"
        let seventeen = String(repeating: "81", count: 16) + "80"
        #expect(Self.kind(sixteen) == nil)
        #expect(Self.kind(seventeen) == .tooDeep)
        #expect(Self.kind(String(repeating: "a1 00 ", count: 16) + "00") == nil)
        #expect(Self.kind(String(repeating: "a1 00 ", count: 17) + "00") == .tooDeep)
        #expect(Self.kind("818180", reader: CBORReader(maximumDepth: 2)) == .tooDeep)
        #expect(Self.kind("8180", reader: CBORReader(maximumDepth: 2)) == nil)
        // A deep input of a megabyte is refused at the limit, not by exhausting the stack.
        #expect(Self.kind(String(repeating: "81", count: 30_000) + "00") == .tooDeep)
    }

    @Test("trailing bytes after the item", arguments: ["00 00", "a0 ff", "4100 00", "80 80"])
    func trailing(encoded: String) {
        #expect(Self.kind(encoded) == .trailingBytes)
    }

    @Test("other defects", arguments: [
        ("ff", CBORError.Kind.unexpectedBreak), ("81 ff", .unexpectedBreak), ("1c", .reservedAdditionalInformation),
        ("3d", .reservedAdditionalInformation), ("5e", .reservedAdditionalInformation), ("fc", .reservedAdditionalInformation),
        ("1f", .reservedAdditionalInformation), ("3f", .reservedAdditionalInformation), ("df", .tagNotAllowed),
        ("62 c328", .invalidUTF8), ("63 eda080", .invalidUTF8), ("61 ff", .invalidUTF8), ("f8 18", .simpleValueNotAllowed),
    ])
    func otherDefects(encoded: String, kind: CBORError.Kind) {
        #expect(Self.kind(encoded) == kind)
    }

    @Test("inputs over the length limit are refused before parsing")
    func tooLong() {
        let reader = CBORReader(maximumLength: 4)
        #expect(Self.kind("4401020304", reader: reader) == .tooLong)
        #expect(Self.kind("43010203", reader: reader) == nil)
        #expect(cborError { _ = try CBORReader().decode([UInt8](repeating: 0, count: CBORReader.defaultMaximumLength + 1)) }?.kind == .tooLong)
    }

    @Test("errors carry the offset of the defect")
    func offsets() {
        #expect(cborError { _ = try CBORReader().decode(hex("83 01 02 1800")) }?.offset == 3)
        #expect(cborError { _ = try CBORReader().decode(hex("00 00")) }?.offset == 1)
        #expect(cborError { _ = try CBORReader().decode(hex("a2 03 00 01 00")) }?.offset == 3)
    }

    @Test("decodePrefix reads one item and says where it ends")
    func prefix() throws {
        let bytes = hex("a1 01 02 ffff")
        let (value, end) = try CBORReader().decodePrefix(bytes, from: 0)
        #expect(value == .map([CBORMapEntry(key: .unsigned(1), value: .unsigned(2))]))
        #expect(end == 3)
        let second = try CBORReader().decodePrefix(bytes, from: 1)
        #expect(second.value == .unsigned(1) && second.end == 2)
        let atEnd = cborError { _ = try CBORReader().decodePrefix(bytes, from: 5) }
        #expect(atEnd?.kind == .truncated)
    }

    @Test("subscripts find map members by integer and text key")
    func subscripts() throws {
        let key = try Self.decode("a3 01 02 20 01 6161 f5").get()
        #expect(key[1] == .unsigned(2))
        #expect(key[-1] == .unsigned(1))
        #expect(key["a"] == .bool(true))
        #expect(key[2] == nil)
        #expect(CBORValue.unsigned(1)[1] == nil)
    }

    @Test("every single-byte input and every two-byte prefix is decided without trapping")
    func exhaustiveShortInputs() {
        for a in 0...255 {
            _ = try? CBORReader().decode([UInt8(a)])
            for b in stride(from: 0, through: 255, by: 15) { _ = try? CBORReader().decode([UInt8(a), UInt8(b)]) }
        }
    }
}
