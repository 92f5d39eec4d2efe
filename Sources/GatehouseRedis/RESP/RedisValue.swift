/// A Redis reply, copied out of hiredis into plain Swift values (RESP2, which is all hiredis
/// 0.14.1 speaks).
///
/// A null bulk string and a null array both arrive as ``null``: RESP2 clients cannot usefully
/// tell them apart and hiredis does not.
public enum RedisValue: Sendable, Hashable {
    /// A status reply (`+OK`).
    case simpleString(String)
    /// An error reply (`-ERR …`). ``RedisClient/send(_:)-(RedisCommand)`` throws a
    /// ``RedisError`` with code ``RedisError/Code/serverError`` for a top-level error reply, so
    /// this case is seen only nested inside arrays (`EXEC`, a pipeline, a Lua table).
    case error(String)
    /// An integer reply (`:42`).
    case integer(Int64)
    /// A bulk string (`$3\r\nabc`): arbitrary bytes.
    case bulkString([UInt8])
    /// A null bulk string or null array.
    case null
    /// An array (`*2 …`), possibly nested, possibly empty.
    case array([RedisValue])
}

extension RedisValue {
    /// The text of a simple or bulk string (bulk bytes decoded as UTF-8, invalid sequences
    /// replaced), or of an integer; `nil` otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let number): String(number)
        default: nil
        }
    }

    /// The bytes of a bulk or simple string; `nil` otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The value of an integer reply, or of a string reply that holds a decimal integer
    /// (Redis returns numbers as bulk strings from `GET`, `TIME`, Lua and others).
    public var integer: Int64? {
        switch self {
        case .integer(let number): number
        case .bulkString(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text): Int64(text)
        default: nil
        }
    }

    /// The elements of an array reply; `nil` otherwise.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether this is the null reply.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension RedisValue: CustomStringConvertible {
    /// A compact, redis-cli-like rendering for logs and test failures.
    public var description: String {
        switch self {
        case .simpleString(let text): "+\(text)"
        case .error(let text): "-\(text)"
        case .integer(let number): ":\(number)"
        case .bulkString(let bytes): "$\(bytes.count) \(String(decoding: bytes.prefix(64), as: UTF8.self).debugDescription)"
        case .null: "(nil)"
        case .array(let elements): "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
