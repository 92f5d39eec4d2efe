import FuzzSupport
import GatehouseCore

// libFuzzer target over the strict JSON reader of request bodies (JSONObjectReader) and the
// writers whose output Gatehouse itself reads back (JSONText, JSONWriter).
//
// Invariants, on every input:
// - The strict reader accepts a text exactly when the grammar of RFC 8259 does (ReferenceJSON,
//   written from the grammar) and none of its own refusals applies: nesting deeper than
//   `maximumDepth`, a member name with an escape, DEL or a byte outside ASCII, an escape that leaves
//   a surrogate unpaired, a repeated member name — the last reported as `duplicateMember`, the
//   first one found.
// - What it accepts has the reference's value: the same strings (as UTF-8), the same members,
//   and `.integer(n)` exactly for the numbers whose value is the whole number n (decimal
//   arithmetic, no rounding): written plainly and within 64 bits, or with a fraction or
//   exponent and at most 2^53 in magnitude.
// - `members(_:allowed:)` reports the first unknown name in byte order.
// - JSONText writes an accepted value so that it reads back as the same value, and writing that
//   again gives the same bytes.
// - Any text, as a Swift string, written by JSONWriter/JSONText reads back as itself; and
//   JSONWriter's integers and times read back as the numbers and dates they are.

@main
enum JSONFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input.bytes) }
    }
}

func fuzzOneInput(_ bytes: [UInt8]) {
    checkReader(bytes)
    checkWriter(bytes)
}

// MARK: The reader

private func strictParse(_ bytes: [UInt8]) -> Result<JSONValue, JSONObjectReader.Failure> {
    bytes.withUnsafeBytes { raw in
        do throws(JSONObjectReader.Failure) { return .success(try JSONObjectReader.parse(raw)) } catch { return .failure(error) }
    }
}

private func checkReader(_ bytes: [UInt8]) {
    let strict = strictParse(bytes)
    guard let reading = ReferenceJSON.read(bytes) else {
        if case .success(let value) = strict { Fuzz.fail("accepted text the JSON grammar does not allow: \(printable(bytes)) → \(value)") }
        return
    }
    let refusable = reading.depth > JSONObjectReader.maximumDepth || reading.badName || reading.unpairedSurrogate
    switch strict {
    case .success(let value):
        Fuzz.check(!refusable, "accepted text that must be refused (depth \(reading.depth), bad name \(reading.badName), unpaired surrogate \(reading.unpairedSurrogate)): \(printable(bytes))")
        Fuzz.check(reading.firstDuplicate == nil, "accepted a repeated member name \(printable(reading.firstDuplicate ?? [])): \(printable(bytes))")
        compare(value, reading.value, in: bytes)
        checkMembers(bytes, value)
        checkRewrite(value)
    case .failure(let failure):
        guard !refusable else { return }
        if let duplicate = reading.firstDuplicate {
            Fuzz.check(failure == .duplicateMember(String(decoding: duplicate, as: UTF8.self)),
                       "expected duplicateMember(\(printable(duplicate))), got \(failure): \(printable(bytes))")
        } else {
            Fuzz.fail("refused valid JSON (\(failure)): \(printable(bytes))")
        }
    }
}

private func compare(_ value: JSONValue, _ reference: ReferenceJSON.Value, in bytes: [UInt8]) {
    switch (value, reference) {
    case (.string(let text), .string(let expected)):
        Fuzz.check(Array(text.utf8) == expected, "string \(text.debugDescription) should be \(printable(expected ?? [])) in \(printable(bytes))")
    case (.bool(let a), .bool(let b)):
        Fuzz.check(a == b, "bool \(a) should be \(b)")
    case (.null, .null):
        break
    case (.integer(let n), .number(let text)):
        let exact = ExactNumber(text)
        switch exact {
        case .whole(let m, let plain):
            Fuzz.check(n == m, "number \(printable(text)) read as \(n), its value is \(m)")
            if !plain { Fuzz.check(m.magnitude <= 1 << 53, "number \(printable(text)) beyond 2^53 read as an integer") }
        case .other:
            Fuzz.fail("number \(printable(text)) read as the integer \(n), but its value is not that whole number")
        }
    case (.number, .number(let text)):
        if case .whole(let m, let plain) = ExactNumber(text), plain || m.magnitude <= 1 << 53 {
            Fuzz.fail("the whole number \(printable(text)) (\(m)) was not read as an integer")
        }
    case (.array(let elements), .array(let expected)):
        Fuzz.check(elements.count == expected.count, "array of \(elements.count) should have \(expected.count) elements")
        for (a, b) in zip(elements, expected) { compare(a, b, in: bytes) }
    case (.object(let members), .object(let expected)):
        Fuzz.check(members.count == expected.count, "object of \(members.count) should have \(expected.count) members")
        for (name, member) in expected {
            let key = String(decoding: name, as: UTF8.self)
            guard let found = members[key] else { Fuzz.fail("member \(key.debugDescription) missing in \(printable(bytes))") }
            compare(found, member, in: bytes)
        }
    default:
        Fuzz.fail("value \(value) has another kind than the reference's in \(printable(bytes))")
    }
}

/// `members(_:allowed:)` with an allowed set made from the names present: the first unknown name
/// in byte order is reported, or all members come back.
private func checkMembers(_ bytes: [UInt8], _ value: JSONValue) {
    let result: Result<[String: JSONValue], JSONObjectReader.Failure> = bytes.withUnsafeBytes { raw in
        guard case .object(let members) = value else {
            do throws(JSONObjectReader.Failure) { return .success(try JSONObjectReader.members(raw, allowed: [])) } catch { return .failure(error) }
        }
        // Every other name (in byte order) is allowed.
        let names = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let allowed = Set(names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
        do throws(JSONObjectReader.Failure) { return .success(try JSONObjectReader.members(raw, allowed: allowed)) } catch { return .failure(error) }
    }
    guard case .object(let members) = value else {
        Fuzz.check(result.failureValue == .notObject, "members() of a non-object gave \(result)")
        return
    }
    let names = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    if let first = names.first {
        Fuzz.check(result.failureValue == .unknownMember(first), "members() should refuse \(first.debugDescription) first, gave \(result)")
    } else {
        Fuzz.check(result.successValue == [:], "members() of {} gave \(result)")
    }
}

/// JSONText writes the value so that it reads back the same, and writes it again identically.
private func checkRewrite(_ value: JSONValue) {
    let written = JSONText.bytes(anyValue(value))
    guard case .success(let again) = strictParse(written) else { Fuzz.fail("JSONText wrote what the reader refuses: \(printable(written))") }
    Fuzz.check(again == value, "JSONText's \(printable(written)) reads back as \(again), not \(value)")
    Fuzz.check(JSONText.bytes(anyValue(again)) == written, "JSONText is not stable on \(printable(written))")
}

/// The value as JSONText takes it (`.number` keeps no value: written as 0.5, which reads back as `.number`).
private func anyValue(_ value: JSONValue) -> Any {
    switch value {
    case .string(let s): s
    case .integer(let n): n
    case .number: 0.5
    case .bool(let b): b
    case .null: JSONText.Null()
    case .array(let elements): elements.map(anyValue)
    case .object(let members): members.mapValues(anyValue)
    }
}

// MARK: The writers

private func checkWriter(_ bytes: [UInt8]) {
    // Any text as a string value (the service writes user input, e.g. a device name, this way).
    let text = String(decoding: bytes, as: UTF8.self)
    let written = JSONText.bytes(text)
    guard let reading = ReferenceJSON.read(written), case .string(let expected) = reading.value else {
        Fuzz.fail("JSONText wrote a string that is not JSON: \(printable(written))")
    }
    Fuzz.check(expected == Array(text.utf8), "JSONText's string \(printable(written)) is not \(text.debugDescription)")
    guard case .success(.string(let back)) = strictParse(written) else { Fuzz.fail("the reader refuses JSONText's string \(printable(written))") }
    Fuzz.check(Array(back.utf8) == Array(text.utf8), "the string \(text.debugDescription) reads back as \(back.debugDescription)")
    Fuzz.check(!written.contains(where: { $0 < 0x20 || $0 == 0x7F }), "JSONText wrote a raw control character: \(printable(written))")

    // Integers and times from the input's first 8 bytes.
    var input = FuzzInput(bytes)
    let n = Int64(bitPattern: input.uint64())
    var w = JSONWriter()
    w.integer(n)
    guard case .success(.integer(let m)) = strictParse(w.bytes) else { Fuzz.fail("JSONWriter's integer \(printable(w.bytes)) does not read back") }
    Fuzz.check(m == n, "JSONWriter wrote \(n) as \(printable(w.bytes))")
    // RFC 3339 times for seconds within years 0…9999 (what gmtime gives for the others varies).
    let seconds = n % 253_402_300_800
    if seconds >= -62_167_219_200 {
        let time = JSONText.time(seconds)
        Fuzz.check(time == referenceTime(seconds), "JSONText.time(\(seconds)) = \(time), expected \(referenceTime(seconds))")
    }
}

/// `yyyy-mm-ddThh:mm:ssZ` by the civil-from-days algorithm (proleptic Gregorian calendar).
private func referenceTime(_ seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))Z"
}

private func printable(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription + (bytes.count > 400 ? "…(\(bytes.count) bytes)" : "")
}

extension Result {
    var successValue: Success? { if case .success(let v) = self { v } else { nil } }
    var failureValue: Failure? { if case .failure(let e) = self { e } else { nil } }
}
