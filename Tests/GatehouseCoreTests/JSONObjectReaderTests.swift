import Foundation
import GatehouseCore
import Testing

@Suite("JSONObjectReader: request bodies")
struct JSONObjectReaderTests {
    static func members(_ text: String, allowed: Set<String> = ["a", "b", "c", "d", "e", "f", "g"]) -> Result<[String: JSONValue], JSONObjectReader.Failure> {
        Array(text.utf8).withUnsafeBytes { bytes in
            Result { () throws(JSONObjectReader.Failure) in try JSONObjectReader.members(bytes, allowed: allowed) }
        }
    }

    @Test("every kind of value, escapes decoded, whitespace allowed")
    func values() throws {
        let text = " {\"a\" : \"x\\\"y\\\\z\\n\\u00e9\\ud83d\\ude00/\", \"b\":-42,\"c\":true,\"d\":null,\n\"e\":[\"p\",1,false,[]],\"f\":{\"k\":0},\"g\":1.5e-1}\t"
        let members = try Self.members(text).get()
        #expect(members["a"] == .string("x\"y\\z\né😀/"))
        #expect(members["b"] == .integer(-42))
        #expect(members["c"] == .bool(true))
        #expect(members["d"] == .null)
        #expect(members["e"] == .array([.string("p"), .integer(1), .bool(false), .array([])]))
        #expect(members["f"] == .object(["k": .integer(0)]))
        #expect(members["g"] == .number)
        #expect(members.count == 7)
    }

    @Test("integers: the Int64 range is an integer, anything past it or with a fraction is a number")
    func integers() throws {
        #expect(try Self.members("{\"a\":9223372036854775807}").get()["a"] == .integer(.max))
        #expect(try Self.members("{\"a\":-9223372036854775808}").get()["a"] == .integer(.min))
        #expect(try Self.members("{\"a\":9223372036854775808}").get()["a"] == .number)
        #expect(try Self.members("{\"a\":99999999999999999999}").get()["a"] == .number)
        // One number type in JSON: whole values written with a fraction or exponent are integers.
        #expect(try Self.members("{\"a\":1.0}").get()["a"] == .integer(1))
        #expect(try Self.members("{\"a\":1E2}").get()["a"] == .integer(100))
        #expect(try Self.members("{\"a\":-2.50e1}").get()["a"] == .integer(-25))
        #expect(try Self.members("{\"a\":1.5}").get()["a"] == .number)
        #expect(try Self.members("{\"a\":1e400}").get()["a"] == .number)
        #expect(try Self.members("{\"a\":1e300}").get()["a"] == .number)
        #expect(try Self.members("{\"a\":-0}").get()["a"] == .integer(0))
    }

    @Test("a fraction or exponent gives an integer only when the value is exactly that whole number (caught by the json fuzz target)",
          arguments: [
              // Not whole, but a Double rounds them to a whole number.
              ("1e-400", JSONValue.number), ("1.00000000000000000001", .number), ("-0.99999999999999999999e1", .number),
              // Whole, but past 2^53: a Double would round 9007199254740993 to 9007199254740992.
              ("9007199254740993.0", .number), ("90071992547409930e-1", .number),
              // Whole and exact, however written.
              ("9007199254740992.0", .integer(9_007_199_254_740_992)), ("-9007199254740992e0", .integer(-9_007_199_254_740_992)),
              ("0.0e-99999999999999999999", .integer(0)), ("1000e-3", .integer(1)), ("12300000000000000000000e-20", .integer(123)),
              ("0.000000000000000000000000000000000000001e39", .integer(1)),
          ])
    func exactIntegers(text: String, expected: JSONValue) throws {
        #expect(try Self.members("{\"a\":\(text)}").get()["a"] == expected)
    }

    @Test("malformed JSON is refused", arguments: [
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1}}", "{\"a\":1} {}", "{\"a\":1}x",
        "{a:1}", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":-}",
        "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}", "{\"a\":\"x}", "{\"a\":\"\u{01}\"}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
        "{\"\\u0061\":1}", "{\"a\" 1}", "{\"a\":NaN}", "{\"a\":Infinity}",
    ])
    func malformed(text: String) {
        #expect(Self.members(text) == .failure(.malformed), "\(text)")
    }

    @Test("member names are ASCII: a look-alike that Swift compares equal is refused")
    func asciiNames() {
        // U+212A KELVIN SIGN is canonically equivalent to "K" for Swift's String ==.
        #expect(Self.members("{\"\u{212A}\":1}", allowed: ["K"]) == .failure(.malformed))
        #expect(Self.members("{\"é\":1}", allowed: ["é"]) == .failure(.malformed))
        #expect(Self.members("{\"a\":\"é\u{212A}\"}").map { $0["a"] } == .success(.string("é\u{212A}")))
    }

    @Test("member names are printable: DEL, which JSONText writes escaped, is refused raw too (caught by the json fuzz target)")
    func printableNames() {
        #expect(Self.members("{\"a\u{7F}\":1}", allowed: ["a\u{7F}"]) == .failure(.malformed))
        #expect(Self.members("{\"a\":\"\u{7F}\"}").map { $0["a"] } == .success(.string("\u{7F}")), "in a value it is allowed")
        #expect(Self.members("{\" ~\":1}", allowed: [" ~"]).map { $0[" ~"] } == .success(.integer(1)))
    }

    @Test("invalid UTF-8 in a string or a name is refused")
    func invalidUTF8() {
        for bytes: [UInt8] in [[0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D], [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]] {
            let result = bytes.withUnsafeBytes { raw in
                Result { () throws(JSONObjectReader.Failure) in try JSONObjectReader.members(raw, allowed: ["a"]) }
            }
            #expect(result == .failure(.malformed))
        }
    }

    @Test("nesting deeper than the limit is refused, at the limit accepted")
    func depth() {
        let limit = JSONObjectReader.maximumDepth
        let atLimit = "{\"a\":" + String(repeating: "[", count: limit - 1) + String(repeating: "]", count: limit - 1) + "}"
        #expect((try? Self.members(atLimit).get()) != nil)
        let tooDeep = "{\"a\":" + String(repeating: "[", count: limit) + String(repeating: "]", count: limit) + "}"
        #expect(Self.members(tooDeep) == .failure(.malformed))
        // Far deeper than the limit: refused without recursing that far.
        let hostile = "{\"a\":" + String(repeating: "[", count: 100_000) + "}"
        #expect(Self.members(hostile) == .failure(.malformed))
    }

    @Test("not an object, unknown and duplicate members")
    func shape() {
        #expect(Self.members("[]") == .failure(.notObject))
        #expect(Self.members("\"a\"") == .failure(.notObject))
        #expect(Self.members("null") == .failure(.notObject))
        #expect(Self.members("{\"z\":1,\"y\":2,\"a\":3}") == .failure(.unknownMember("y")))
        #expect(Self.members("{\"a\":1,\"a\":1}") == .failure(.duplicateMember("a")))
        #expect(Self.members("{\"a\":{\"k\":1,\"k\":2}}") == .failure(.duplicateMember("k")))
        #expect((try? Self.members("{}").get()) == [:])
    }

    @Test("agrees with JSONSerialization on what is valid JSON (random mutations of a body)")
    func agreesWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        let seed = Array("{\"challenge\":\"eyJ0.abc_-\",\"method\":\"totp\",\"code\":\"123456\",\"remember\":true,\"n\":[1,-2.5e3,null]}".utf8)
        let alphabet = Array("{}[]\":,.-+eE0123456789 \\utnfalsr".utf8)
        var checked = 0
        for _ in 0..<(ProcessInfo.processInfo.environment["JSON_FUZZ_ROUNDS"].flatMap(Int.init) ?? 3000) {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
                if bytes.isEmpty { bytes = seed }
            }
            let ours = bytes.withUnsafeBytes { raw in
                Result { () throws(JSONObjectReader.Failure) in try JSONObjectReader.parse(raw) }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            // Names with escapes and duplicate names are ours to refuse; skip those inputs.
            if text.contains("\\") { continue }
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            switch ours {
            case .success:
                // Foundation refuses numbers past a Double's range (`1e999`); RFC 8259 allows them
                // and no member of a request is a fraction (they are wrong-type errors).
                let hugeExponent = text.contains(/[eE][+-]?[0-9]{3,}/)
                #expect(foundation || hugeExponent, "we accepted what Foundation refuses: \(text)")
            case .failure(.duplicateMember): continue
            case .failure:
                // Foundation on Linux accepts a trailing comma (`[1,]`, `{"a":1,}`); RFC 8259 does not.
                let trailingComma = text.filter { !$0.isWhitespace }.contains(",]") || text.filter { !$0.isWhitespace }.contains(",}")
                #expect(!foundation || trailingComma, "we refused what Foundation accepts: \(text)")
            }
            checked += 1
        }
        #expect(checked > 1000)
    }
}
