/// A stream entry id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
public struct RedisStreamID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The Unix time in milliseconds part.
    public var milliseconds: UInt64
    /// The sequence number within the millisecond.
    public var sequence: UInt64

    /// `0-0`: before every entry.
    public static let zero = RedisStreamID(milliseconds: 0, sequence: 0)

    /// Creates an id from its parts.
    public init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Parses `ms-seq` (or `ms`, meaning `ms-0`); `nil` if malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let milliseconds = UInt64(parts[0]) else { return nil }
        var sequence: UInt64 = 0
        if parts.count == 2 {
            guard let parsed = UInt64(parts[1]) else { return nil }
            sequence = parsed
        }
        self.init(milliseconds: milliseconds, sequence: sequence)
    }

    /// The last id that precedes every entry added at or after `milliseconds`, for "follow from
    /// this time on" (XREAD returns entries strictly after the id given).
    public static func before(milliseconds: UInt64) -> RedisStreamID {
        milliseconds == 0 ? .zero : RedisStreamID(milliseconds: milliseconds - 1, sequence: .max)
    }

    /// `ms-seq`.
    public var description: String { "\(self.milliseconds)-\(self.sequence)" }

    /// Orders by time, then sequence.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }
}

/// One field of a stream entry.
public struct RedisStreamField: Sendable, Hashable {
    /// The field name.
    public var name: String
    /// The field value (binary-safe).
    public var value: [UInt8]

    /// Creates a field with a binary value.
    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }

    /// Creates a field with a text value.
    public init(_ name: String, _ value: String) {
        self.init(name, Array(value.utf8))
    }
}

/// An entry read from a stream.
public struct RedisStreamEntry: Sendable, Hashable {
    /// The entry's id.
    public var id: RedisStreamID
    /// The fields, in the order they were added.
    public var fields: [RedisStreamField]

    /// Creates an entry.
    public init(id: RedisStreamID, fields: [RedisStreamField]) {
        self.id = id
        self.fields = fields
    }

    /// The value of the first field named `name`, as UTF-8 text.
    public subscript(_ name: String) -> String? {
        self.fields.first { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Decodes one `[id, [field, value, …]]` element of an XREAD/XRANGE reply.
    package init(reply: RedisValue) throws(RedisError) {
        guard case .array(let pair) = reply, pair.count == 2,
            let idText = pair[0].string, let id = RedisStreamID(idText),
            case .array(let flat) = pair[1], flat.count % 2 == 0
        else {
            throw RedisError(.unexpectedReply, "not a stream entry: \(reply)")
        }
        var fields: [RedisStreamField] = []
        fields.reserveCapacity(flat.count / 2)
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let name = flat[index].string, let value = flat[index + 1].bytes else {
                throw RedisError(.unexpectedReply, "not a stream field: \(flat[index]) \(flat[index + 1])")
            }
            fields.append(RedisStreamField(name, value))
        }
        self.init(id: id, fields: fields)
    }
}

/// How `XADD` trims the stream as it appends.
public enum RedisStreamTrim: Sendable, Hashable {
    /// `MAXLEN [~] n`: keep at most `n` entries (about `n` when approximate, which is cheaper).
    case maxLength(Int, approximate: Bool)
    /// `MINID [~] id`: drop entries older than `id` (e.g. older than the longest token lifetime).
    case minID(RedisStreamID, approximate: Bool)
}

extension RedisClient {
    /// `XADD key [MAXLEN|MINID [~] threshold] * field value …`: appends an entry and returns the
    /// id Redis gave it.
    @discardableResult
    public func xadd(_ key: String, fields: [RedisStreamField], trim: RedisStreamTrim? = nil) async throws -> RedisStreamID {
        guard !fields.isEmpty else {
            throw RedisError(.invalidArgument, "XADD needs at least one field")
        }
        var arguments: [any RedisArgumentConvertible] = ["XADD", key]
        switch trim {
        case .maxLength(let count, let approximate):
            arguments += ["MAXLEN", approximate ? "~" : "=", count]
        case .minID(let id, let approximate):
            arguments += ["MINID", approximate ? "~" : "=", id.description]
        case nil:
            break
        }
        arguments.append("*")
        for field in fields {
            arguments.append(field.name)
            arguments.append(field.value)
        }
        let reply = try await self.send(RedisCommand(arguments))
        guard let text = reply.string, let id = RedisStreamID(text) else {
            throw RedisError(.unexpectedReply, "XADD returned \(reply)")
        }
        return id
    }

    /// `XREAD COUNT n STREAMS key after` without blocking: up to `count` entries after `after`.
    ///
    /// For following a stream use ``RedisStreamFollower``, which blocks on a connection of its
    /// own instead of holding up the pool's pipelined connections.
    public func xread(_ key: String, after: RedisStreamID, count: Int = 100) async throws -> [RedisStreamEntry] {
        try RedisStreamEntry.entries(
            fromXRead: try await self.send(RedisCommand("XREAD", "COUNT", count, "STREAMS", key, after.description))
        )
    }

    /// `XRANGE key start end [COUNT n]` with inclusive ids.
    public func xrange(
        _ key: String,
        from start: RedisStreamID = .zero,
        to end: RedisStreamID = RedisStreamID(milliseconds: .max, sequence: .max),
        count: Int? = nil
    ) async throws -> [RedisStreamEntry] {
        var arguments: [any RedisArgumentConvertible] = ["XRANGE", key, start.description, end.description]
        if let count { arguments += ["COUNT", count] }
        let reply = try await self.send(RedisCommand(arguments))
        guard case .array(let elements) = reply else {
            throw RedisError(.unexpectedReply, "XRANGE returned \(reply)")
        }
        return try elements.map { (element) throws(RedisError) in try RedisStreamEntry(reply: element) }
    }
}

extension RedisStreamEntry {
    /// Decodes an XREAD reply for one stream: `[[key, [entry, …]]]`, or null when nothing came.
    package static func entries(fromXRead reply: RedisValue) throws(RedisError) -> [RedisStreamEntry] {
        switch reply {
        case .null:
            return []
        case .array(let streams):
            guard streams.count == 1, case .array(let stream) = streams[0], stream.count == 2,
                case .array(let elements) = stream[1]
            else {
                throw RedisError(.unexpectedReply, "XREAD returned \(reply)")
            }
            var entries: [RedisStreamEntry] = []
            entries.reserveCapacity(elements.count)
            for element in elements { entries.append(try RedisStreamEntry(reply: element)) }
            return entries
        default:
            throw RedisError(.unexpectedReply, "XREAD returned \(reply)")
        }
    }
}
