/// Redis Cluster's key → slot mapping, and which argument of a command is its key.
///
/// A key's slot is CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key modulo 16384;
/// when the key holds a non-empty `{…}` hash tag, only the tag is hashed, so `gh:{kate}:user` and
/// `gh:{kate}:throttle` share a slot. Gatehouse names every key of one user with the user as its
/// tag, which keeps each of its scripts and transactions in one slot.
package enum ClusterSlot {
    /// The number of slots in a Redis Cluster.
    package static let count = 16384

    /// The slot of `key`.
    package static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        return bytes.withUnsafeBufferPointer { Int(crc16(hashTag(of: UnsafeRawBufferPointer($0))) & 0x3FFF) }
    }

    /// The slot of a key given as text.
    package static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    /// The part of `key` that is hashed: the text between the first `{` and the next `}` when
    /// that is not empty, else the whole key.
    static func hashTag(of key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key }
        let afterOpen = open + 1
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close > afterOpen else { return key }
        return UnsafeRawBufferPointer(rebasing: key[afterOpen..<close])
    }

    package static func crc16(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    /// The slot a RESP-encoded command (as ``RedisCommand`` writes it) must go to, or `nil` for a
    /// command without keys (`PING`, `TIME`, `SCRIPT LOAD`, `MULTI`, an `EVALSHA` with no keys),
    /// which any master can answer.
    ///
    /// The key is the first argument, except: `EVAL`/`EVALSHA`/`FCALL` (and their `_RO` forms)
    /// name theirs after the key count; `XREAD`/`XREADGROUP` after `STREAMS`; the commands listed
    /// in `keyless` have none. A command with several keys is routed by its first; Redis refuses
    /// it with `CROSSSLOT` when the others are elsewhere (Gatehouse never sends such a command).
    package static func of(command bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { raw -> Int? in
            var reader = RESPArgumentReader(raw)
            guard let count = reader.arrayCount(), count >= 1, let name = reader.next() else { return nil }
            let upper = String(decoding: name, as: UTF8.self).uppercased()
            switch upper {
            case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
                guard count >= 3, reader.next() != nil, let numKeys = reader.next().flatMap({ Int(String(decoding: $0, as: UTF8.self)) }),
                    numKeys > 0, count >= 4, let key = reader.next()
                else { return nil }
                return Int(crc16(hashTag(of: key)) & 0x3FFF)
            case "XREAD", "XREADGROUP":
                var index = 1
                while index < count, let argument = reader.next() {
                    index += 1
                    if String(decoding: argument, as: UTF8.self).uppercased() == "STREAMS" {
                        guard index < count, let key = reader.next() else { return nil }
                        return Int(crc16(hashTag(of: key)) & 0x3FFF)
                    }
                }
                return nil
            default:
                guard !keyless.contains(upper), count > 1, let key = reader.next() else { return nil }
                return Int(crc16(hashTag(of: key)) & 0x3FFF)
            }
        }
    }

    /// Commands that name no key (or whose arguments are not keys).
    private static let keyless: Set<String> = [
        "PING", "ECHO", "TIME", "INFO", "CLIENT", "CLUSTER", "SCRIPT", "FUNCTION", "MULTI", "EXEC",
        "DISCARD", "AUTH", "HELLO", "SELECT", "ROLE", "DBSIZE", "FLUSHALL", "FLUSHDB", "CONFIG",
        "COMMAND", "READONLY", "READWRITE", "ASKING", "WAIT", "SLOWLOG", "LASTSAVE", "SAVE", "BGSAVE",
        "BGREWRITEAOF", "DEBUG", "MEMORY", "LATENCY", "ACL", "QUIT", "RESET",
    ]
}

/// Reads the bulk-string arguments of one RESP array (`*N`, then `$len` bulks), as ``RedisCommand``
/// encodes them; `nil` on anything else.
private struct RESPArgumentReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func arrayCount() -> Int? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "*") else { return nil }
        index += 1
        return number()
    }

    /// The next bulk string's bytes.
    mutating func next() -> UnsafeRawBufferPointer? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "$") else { return nil }
        index += 1
        guard let length = number(), length >= 0, index + length + 2 <= bytes.count else { return nil }
        let value = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)])
        index += length + 2
        return value
    }

    /// A decimal number up to `\r\n`, which it consumes.
    private mutating func number() -> Int? {
        var value = 0
        var digits = 0
        while index < bytes.count, bytes[index] != 13 {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 18 else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            index += 1
        }
        guard digits > 0, index + 1 < bytes.count, bytes[index + 1] == 10 else { return nil }
        index += 2
        return value
    }
}

extension ClusterSlot {
    /// Whether a RESP-encoded command is `MULTI` (a pipeline that starts with it is a transaction).
    package static func isMulti(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = RESPArgumentReader(raw)
            guard reader.arrayCount() != nil, let name = reader.next() else { return false }
            return String(decoding: name, as: UTF8.self).uppercased() == "MULTI"
        }
    }
}
