import GatehouseCore
import HTTPTypes
import Hummingbird

/// A response body the API answers as JSON, written with ``JSONWriter``.
///
/// Why not `Encodable`: the encoders go through `Any` and key containers per member, and the
/// answers are few and small; a writer per type says exactly which keys and which `null`s an
/// answer has. (Not named `ResponseBody`: that is Hummingbird's byte body.)
protocol JSONResponseBody {
    /// Appends the body's JSON text.
    func write(to json: inout JSONWriter)
}

extension HTTPSupport {
    /// A JSON answer: `body` written with ``JSONResponseBody/write(to:)``.
    static func json(_ status: HTTPResponse.Status, _ body: some JSONResponseBody, capacity: Int = 256) -> Response {
        var writer = JSONWriter(capacity: capacity)
        body.write(to: &writer)
        return json(status, bytes: writer.bytes)
    }
}

extension JSONWriter {
    /// Appends one object: `{`, the members `body` adds, `}`.
    mutating func object(_ body: (inout JSONMembers) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        var members = JSONMembers(json: self)
        // Hand the bytes over, so the members' appends do not copy them.
        self = JSONWriter(capacity: 0)
        body(&members)
        self = members.json
        bytes.append(UInt8(ascii: "}"))
    }

    /// Appends `values` as an array.
    mutating func array(_ values: [some JSONResponseBody]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            value.write(to: &self)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}

/// The members of one object, written in the order they are added, with the commas between them.
///
/// Names are added in the byte order of their UTF-8 (checked in debug builds): the order
/// ``JSONText`` gives its dictionaries, so the answers read the same as before they were typed.
struct JSONMembers {
    fileprivate var json: JSONWriter
    private var count = 0
    #if DEBUG
    private var lastName: [UInt8] = []
    #endif

    fileprivate init(json: JSONWriter) { self.json = json }

    private mutating func name(_ name: StaticString) {
        #if DEBUG
        let bytes = name.withUTF8Buffer { Array($0) }
        assert(count == 0 || lastName.lexicographicallyPrecedes(bytes), "member \(name) out of order")
        lastName = bytes
        #endif
        if count > 0 { json.bytes.append(UInt8(ascii: ",")) }
        count += 1
        json.bytes.append(UInt8(ascii: "\""))
        json.raw(name)
        json.raw("\":")
    }

    mutating func member(_ name: StaticString, _ value: String) {
        self.name(name)
        json.string(value)
    }

    /// `value`, or `null`.
    mutating func member(_ name: StaticString, orNull value: String?) {
        self.name(name)
        json.optionalString(value)
    }

    /// `value`, or no member at all.
    mutating func member(_ name: StaticString, ifPresent value: String?) {
        guard let value else { return }
        member(name, value)
    }

    mutating func member(_ name: StaticString, _ value: Int) {
        self.name(name)
        json.integer(value)
    }

    mutating func member(_ name: StaticString, _ value: Bool) {
        self.name(name)
        value ? json.raw("true") : json.raw("false")
    }

    mutating func member(_ name: StaticString, _ values: [String]) {
        self.name(name)
        json.strings(values)
    }

    /// Seconds since the Unix epoch as an RFC 3339 UTC string.
    mutating func time(_ name: StaticString, _ seconds: Int64) {
        self.name(name)
        json.time(seconds)
    }

    /// A time, or `null`.
    mutating func time(_ name: StaticString, orNull seconds: Int64?) {
        self.name(name)
        if let seconds { json.time(seconds) } else { json.raw("null") }
    }

    mutating func member(_ name: StaticString, _ value: some JSONResponseBody) {
        self.name(name)
        value.write(to: &json)
    }

    /// `value`, or no member at all.
    mutating func member(_ name: StaticString, ifPresent value: (some JSONResponseBody)?) {
        guard let value else { return }
        member(name, value)
    }

    mutating func member(_ name: StaticString, _ values: [some JSONResponseBody]) {
        self.name(name)
        json.array(values)
    }

    /// A nested object.
    mutating func object(_ name: StaticString, _ body: (inout JSONMembers) -> Void) {
        self.name(name)
        json.object(body)
    }
}
