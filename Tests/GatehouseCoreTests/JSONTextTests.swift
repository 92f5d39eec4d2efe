import Foundation
import GatehouseCore
import Testing

@Suite("JSONText writer and RFC 3339 times")
struct JSONTextTests {
    @Test("objects: keys sorted by bytes, values of every kind the service builds")
    func objects() {
        let object: [String: Any] = [
            "b": 1, "a": "x", "B": true, "z": [1, "two", false] as [Any], "n": NSNull(), "nested": ["k": Int64(-5)],
            "u": UInt64.max, "d": 2.5, "whole": 3.0, "none": Optional<String>.none as Any, "some": Optional("v") as Any,
        ]
        #expect(JSONText.string(object) == #"{"B":true,"a":"x","b":1,"d":2.5,"n":null,"nested":{"k":-5},"none":null,"some":"v","u":18446744073709551615,"whole":3,"z":[1,"two",false]}"#)
    }

    @Test("strings: quotes, backslashes and control characters escaped; slashes and non-ASCII kept")
    func strings() throws {
        let text = "a\"b\\c\n\r\t\u{01}/é😀"
        let encoded = JSONText.string(["s": text])
        #expect(encoded == "{\"s\":\"a\\\"b\\\\c\\n\\r\\t\\u0001/é😀\"}")
        // Round trip through an independent parser.
        let parsed = try JSONSerialization.jsonObject(with: Data(encoded.utf8)) as? [String: String]
        #expect(parsed?["s"] == text)
    }

    @Test("equal objects give byte-identical text")
    func stable() {
        let a: [String: Any] = ["code": "invalid_code", "detail": "d", "status": 401, "title": "t", "type": "u"]
        var b: [String: Any] = [:]
        for key in ["type", "title", "status", "detail", "code"] { b[key] = a[key] }
        #expect(JSONText.bytes(a) == JSONText.bytes(b))
    }

    @Test("RFC 3339 UTC times", arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (Int64(1_796_049_016), "2026-11-30T14:30:16Z"),
        (Int64(951_782_400), "2000-02-29T00:00:00Z"), (Int64(4_102_444_799), "2099-12-31T23:59:59Z"),
    ])
    func times(seconds: Int64, text: String) {
        #expect(JSONText.time(seconds) == text)
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        #expect(formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) == text)
    }

    @Test("the typed writer: integers at their limits, times, strings and null as JSONText writes them")
    func writer() throws {
        var w = JSONWriter()
        w.raw("[")
        w.integer(0); w.raw(","); w.integer(-7); w.raw(","); w.integer(Int64.min); w.raw(",")
        w.integer(Int64.max); w.raw(","); w.integer(UInt64.max); w.raw(","); w.integer(Int32.min); w.raw(",")
        w.integer(UInt32.max); w.raw(","); w.integer(Int.min); w.raw(",")
        w.time(1_796_049_016); w.raw(","); w.optionalString(nil); w.raw(","); w.optionalString("a\u{7F}\"/")
        w.raw(","); w.strings(["x", "y\n"]); w.raw("]")
        let text = String(decoding: w.bytes, as: UTF8.self)
        #expect(text == #"[0,-7,-9223372036854775808,9223372036854775807,18446744073709551615,-2147483648,4294967295,-9223372036854775808,"2026-11-30T14:30:16Z",null,"a\u007f\"/",["x","y\n"]]"#)
        // The same values through JSONText, and through an independent parser.
        let values: [Any] = [0, -7, Int64.min, Int64.max, UInt64.max, Int32.min, UInt32.max, Int.min]
        #expect(text.hasPrefix(String(JSONText.string(values).dropLast()) + ","))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [Any])
        #expect(parsed.count == 12)
        #expect(parsed[10] as? String == "a\u{7F}\"/")
    }
}
