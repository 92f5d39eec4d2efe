import FuzzSupport
import GatehouseRedis

// libFuzzer target over what Gatehouse makes of the bytes Redis sends: hiredis's RESP2 reader
// with the Swift side of a connection (the copy into RedisValue and the reply size limit:
// RESPReader, the same ReplyAssembly a connection uses), and the Swift parsers of replies
// (CLUSTER SLOTS, MOVED/ASK redirects, Sentinel's master address, stream entries and ids) and of
// the commands Gatehouse sends (the cluster slot of a command).
//
// The first byte picks how the rest is used:
// 0. as bytes from Redis, in pieces (as reads deliver them), with a reply size limit: the
//    replies and the error are the same in one piece and in pieces (without a limit); with a
//    limit, the replies are a prefix of those, and "too large" comes only for a reply of which
//    more than the limit was held before the last read; each reply written out again as RESP2
//    reads back as itself;
// 1. as a reply built from the input (nested arrays, strings, integers, errors, nulls), written
//    as RESP2 and read back in pieces: the same value;
// 2. as the arguments of a command: its cluster slot is the key's, by the documented rules,
//    with a CRC16 written here from the specification; and the same bytes as a command.
// Every reply read in 0 and 1 also goes through the reply parsers, each checked against the
// rules it documents.

@main
enum RESPFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input) }
    }
}

func fuzzOneInput(_ input: FuzzInput) {
    var input = input
    switch input.byte() % 3 {
    case 0: checkStream(&input)
    case 1: checkBuilt(&input)
    default: checkCommand(&input)
    }
}

// MARK: Reading

private struct Reading: Equatable {
    var values: [RedisValue] = []
    /// The error that ended the reading (its code and message).
    var error: String?
    var tooLarge = false
    /// Bytes fed toward the reply being assembled when "too large" came, and the size of the
    /// last piece fed.
    var heldAtError = 0
    var lastPiece = 0
    /// Where each reply ends in the stream (with the whole stream fed at once).
    var ends: [Int] = []
}

private func read(_ pieces: [ArraySlice<UInt8>], limit: Int) -> Reading {
    let reader = RESPReader(maxReplyBytes: limit)
    var reading = Reading()
    var fed = 0
    do throws(RedisError) {
        for piece in pieces {
            let failure: RedisError? = piece.withUnsafeBytes { raw in
                do throws(RedisError) { try reader.feed(raw) } catch { return error }
                return nil
            }
            if let failure { throw failure }
            fed += piece.count
            reading.lastPiece = piece.count
            while let value = try reader.next() {
                reading.values.append(value)
                reading.ends.append(fed - reader.bytesTowardReply)
            }
        }
    } catch {
        reading.error = "\(error.code): \(error.message)"
        reading.tooLarge = error.code == .replyTooLarge
        reading.heldAtError = reader.bytesTowardReply
    }
    return reading
}

private func checkStream(_ input: inout FuzzInput) {
    let limit = input.pick([8, 64, 512, 4096, Int.max])
    let cuts = input.bytes(input.int(in: 0...10))
    let stream = input.rest()
    var cutInput = FuzzInput(cuts)
    let pieces = pieces(of: stream, maxPieces: 11, input: &cutInput)
    let whole = read([stream[...]], limit: .max)
    let split = read(pieces, limit: .max)
    Fuzz.check(split.values == whole.values && split.error == whole.error && split.ends == whole.ends,
               "in pieces: \(split), in one piece: \(whole), for \(printable(stream))")
    Fuzz.check(whole.ends == whole.ends.sorted() && (whole.ends.last ?? 0) <= stream.count, "reply ends \(whole.ends) out of order")

    let limited = read(pieces, limit: limit)
    Fuzz.check(limited.values.count <= whole.values.count && Array(whole.values.prefix(limited.values.count)) == limited.values,
               "with a limit of \(limit): \(limited.values), without: \(whole.values)")
    if limited.tooLarge {
        // Within the limit before the last read, or it would have been refused then.
        Fuzz.check(limited.heldAtError > limit && limited.heldAtError - limited.lastPiece <= limit,
                   "too large with \(limited.heldAtError) bytes held (last read \(limited.lastPiece), limit \(limit))")
        let start = limited.values.count == 0 ? 0 : whole.ends[limited.values.count - 1]
        let end = limited.values.count < whole.ends.count ? whole.ends[limited.values.count] : stream.count
        Fuzz.check(end - start > limit, "a reply of \(end - start) bytes refused as larger than \(limit)")
    } else {
        Fuzz.check(limited.values == whole.values && limited.error == whole.error, "with a limit of \(limit) and no refusal, a different reading")
    }

    for value in whole.values {
        let encoded = encode(value)
        let again = read([encoded[...]], limit: .max)
        Fuzz.check(again.values == [value] && again.error == nil, "\(value) written as \(printable(encoded)) reads back as \(again)")
        checkParsers(value)
    }
}

private func checkBuilt(_ input: inout FuzzInput) {
    let value = build(&input, depth: 0)
    let encoded = encode(value)
    var rest = input
    let reading = read(pieces(of: encoded, maxPieces: 8, input: &rest), limit: .max)
    Fuzz.check(reading.values == [value] && reading.error == nil, "\(value) written as \(printable(encoded)) reads back as \(reading)")
    Fuzz.check(reading.ends == [encoded.count], "reply end \(reading.ends) for \(encoded.count) bytes")
    checkParsers(value)
}

/// A reply from the input: hiredis 0.14.1 reads arrays nested at most 7 deep.
private func build(_ input: inout FuzzInput, depth: Int) -> RedisValue {
    switch input.byte() % (depth < 6 ? 9 : 6) {
    case 0: return .simpleString(String(decoding: input.piece(maxLength: 40).filter { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self))
    case 1: return .error(String(decoding: input.piece(maxLength: 40).filter { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self))
    case 2: return .integer(Int64(bitPattern: input.uint64()))
    case 3: return .integer(Int64(input.int(in: -70_000...70_000)))
    case 4: return .bulkString(input.piece(maxLength: 60))
    case 5: return .null
    default:
        let count = input.int(in: 0...5)
        return .array((0..<count).map { _ in build(&input, depth: depth + 1) })
    }
}

/// RESP2 as Redis writes it.
private func encode(_ value: RedisValue) -> [UInt8] {
    switch value {
    case .simpleString(let s): return Array("+\(s)\r\n".utf8)
    case .error(let s): return Array("-\(s)\r\n".utf8)
    case .integer(let n): return Array(":\(n)\r\n".utf8)
    case .bulkString(let b): return Array("$\(b.count)\r\n".utf8) + b + [0x0D, 0x0A]
    case .null: return Array("$-1\r\n".utf8)
    case .array(let elements): return Array("*\(elements.count)\r\n".utf8) + elements.flatMap(encode)
    }
}

// MARK: The reply parsers

private let askedNode = RedisURL.Address(host: "10.0.0.9", port: 7000)

private func checkParsers(_ value: RedisValue) {
    checkClusterSlots(value)
    checkRedirect(value)
    checkSentinel(value)
    checkStreams(value)
    _ = value.description
    _ = (value.string, value.bytes, value.integer, value.array, value.isNull)
    if case .array(let items) = value {
        for item in items { checkRedirect(item) }
    }
}

/// CLUSTER SLOTS: `[[start, end, [host, port, …], replica…], …]`; later ranges win a slot.
private func checkClusterSlots(_ value: RedisValue) {
    let parsed = try? ClusterSlotMap(clusterSlotsReply: value, askedNode: askedNode)
    // The reference: every range well-formed, else refused.
    func address(_ node: RedisValue) -> RedisURL.Address? {
        guard case .array(let fields) = node, fields.count >= 2, let host = fields[0].string,
              let port = fields[1].integer, (1...65535).contains(port) else { return nil }
        return RedisURL.Address(host: host.isEmpty || host == "?" ? askedNode.host : host, port: Int(port))
    }
    var owners: [Int: RedisURL.Address] = [:]
    var masters: [RedisURL.Address] = []
    var replicas: [RedisURL.Address] = []
    var wellFormed = true
    if case .array(let ranges) = value {
        for range in ranges {
            guard case .array(let items) = range, items.count >= 3, let start = items[0].integer, let end = items[1].integer,
                  start >= 0, start <= end, end < 16384, let master = address(items[2]) else { wellFormed = false; break }
            let others = items.dropFirst(3).map(address)
            guard others.allSatisfy({ $0 != nil }) else { wellFormed = false; break }
            if !masters.contains(master) { masters.append(master) }
            for slot in Int(start)...Int(end) { owners[slot] = master }
            for replica in others.compactMap({ $0 }) where !replicas.contains(replica) { replicas.append(replica) }
        }
    } else {
        wellFormed = false
    }
    guard let parsed else {
        Fuzz.check(!wellFormed, "CLUSTER SLOTS refused a well-formed reply: \(value)")
        return
    }
    Fuzz.check(wellFormed, "CLUSTER SLOTS accepted a malformed reply: \(value)")
    Fuzz.check(parsed.masters == masters && parsed.replicas == replicas, "masters \(parsed.masters), replicas \(parsed.replicas); expected \(masters), \(replicas)")
    Fuzz.check(parsed.assignedSlotCount == owners.count, "\(parsed.assignedSlotCount) slots assigned, expected \(owners.count)")
    for slot in Set(owners.keys).union([0, 16383, 5461]) {
        Fuzz.check(parsed.master(ofSlot: slot) == owners[slot], "slot \(slot): \(String(describing: parsed.master(ofSlot: slot))), expected \(String(describing: owners[slot]))")
    }
    // A MOVED redirect then moves one slot and only that one.
    var moved = parsed
    let target = RedisURL.Address(host: "10.9.9.9", port: 7001)
    moved.assign(slot: 100, to: target)
    Fuzz.check(moved.master(ofSlot: 100) == target && moved.master(ofSlot: 101) == parsed.master(ofSlot: 101), "assign moved the wrong slots")
}

/// `MOVED <slot> <host>:<port>` / `ASK …`: what is accepted, written again, reads back the same.
private func checkRedirect(_ value: RedisValue) {
    guard case .error(let message) = value else {
        Fuzz.check(ClusterRedirect(value) == nil, "a redirect from a reply that is not an error: \(value)")
        return
    }
    guard let redirect = ClusterRedirect(value) else { return }
    Fuzz.check((0..<16384).contains(redirect.slot) && (1...65535).contains(redirect.address.port), "redirect \(redirect) from \(message.debugDescription)")
    let words = message.split(separator: " ")
    Fuzz.check(words.count == 3 && (words[0] == "MOVED") == (redirect.kind == .moved) && (words[0] == "ASK") == (redirect.kind == .ask),
               "redirect \(redirect) from \(message.debugDescription)")
    let host = redirect.address.host.contains(":") ? "[\(redirect.address.host)]" : redirect.address.host
    let again = ClusterRedirect(message: "\(redirect.kind == .moved ? "MOVED" : "ASK") \(redirect.slot) \(host):\(redirect.address.port)")
    Fuzz.check(again == redirect, "redirect \(redirect) written again reads as \(String(describing: again))")
}

/// SENTINEL get-master-addr-by-name: `[host, port]` as two bulk strings, or null.
private func checkSentinel(_ value: RedisValue) {
    guard let address = try? SentinelResolver.address(from: value, masterName: "gatehouse") else { return }
    guard case .array(let items) = value, items.count == 2, case .bulkString(let host) = items[0], case .bulkString = items[1] else {
        Fuzz.fail("a master address from \(value)")
    }
    Fuzz.check(!host.isEmpty && address.host == String(decoding: host, as: UTF8.self) && (1...65535).contains(address.port),
               "master address \(address) from \(value)")
}

/// XREAD / XRANGE entries: `[id, [field, value, …]]`; ids `ms-seq` read back from their text.
private func checkStreams(_ value: RedisValue) {
    if let entry = try? RedisStreamEntry(reply: value) {
        guard case .array(let pair) = value, pair.count == 2, case .array(let flat) = pair[1] else { Fuzz.fail("an entry from \(value)") }
        Fuzz.check(entry.fields.count * 2 == flat.count, "entry \(entry) from \(value)")
        Fuzz.check(RedisStreamID(entry.id.description) == entry.id, "stream id \(entry.id) does not read back from its text")
    }
    if let entries = try? RedisStreamEntry.entries(fromXRead: value) {
        if case .null = value { Fuzz.check(entries.isEmpty, "entries from null") }
    }
    if let text = value.string, let id = RedisStreamID(text) {
        Fuzz.check(RedisStreamID(id.description) == id, "stream id \(id) from \(text.debugDescription) does not read back")
        let before = RedisStreamID.before(milliseconds: id.milliseconds)
        Fuzz.check(id.milliseconds == 0 ? before == .zero : before < RedisStreamID(milliseconds: id.milliseconds, sequence: 0), "before(\(id.milliseconds)) = \(before)")
    }
}

// MARK: Commands

private func checkCommand(_ input: inout FuzzInput) {
    let names = ["GET", "set", "EVALSHA", "eval", "FCALL_RO", "XREAD", "xreadgroup", "PING", "MULTI", "EXEC", "CLUSTER", "HSET", "DEL"]
    let name = input.bool() ? input.pick(names) : String(decoding: input.piece(maxLength: 12), as: UTF8.self)
    let count = input.int(in: 0...6)
    var arguments: [[UInt8]] = []
    for _ in 0..<count {
        switch input.byte() % 5 {
        case 0: arguments.append(Array("STREAMS".utf8))
        case 1: arguments.append(Array(String(input.int(in: -1...3)).utf8))
        case 2: arguments.append(Array("gh:{user\(input.byte())}:k".utf8))
        default: arguments.append(input.piece(maxLength: 24))
        }
    }
    let command = RedisCommand([name] + arguments.map { $0 as any RedisArgumentConvertible })
    let slot = ClusterSlot.of(command: command.bytes)
    Fuzz.check(slot == referenceSlot(name: name, arguments: arguments), "slot \(String(describing: slot)) of \(name) \(arguments.map { printable($0) })")
    Fuzz.check(ClusterSlot.isMulti(command.bytes) == (name.uppercased() == "MULTI"), "isMulti of \(name)")
    // Any bytes as a command: never a crash, and a slot in range.
    let raw = input.rest()
    if let any = ClusterSlot.of(command: raw) { Fuzz.check((0..<16384).contains(any), "slot \(any)") }
    _ = ClusterSlot.isMulti(raw)
}

/// The rules of ClusterSlot.of(command:): EVAL/EVALSHA/FCALL (and `_RO`) name their first key
/// after the script and the key count (none if the count is not positive); XREAD/XREADGROUP after
/// `STREAMS`; the keyless commands none; any other command its first argument.
private func referenceSlot(name: String, arguments: [[UInt8]]) -> Int? {
    let upper = name.uppercased()
    switch upper {
    case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
        guard arguments.count >= 3, let keys = Int(String(decoding: arguments[1], as: UTF8.self)), keys > 0 else { return nil }
        return slot(of: arguments[2])
    case "XREAD", "XREADGROUP":
        guard let i = arguments.firstIndex(where: { String(decoding: $0, as: UTF8.self).uppercased() == "STREAMS" }), i + 1 < arguments.count else { return nil }
        return slot(of: arguments[i + 1])
    case "PING", "ECHO", "TIME", "INFO", "CLIENT", "CLUSTER", "SCRIPT", "FUNCTION", "MULTI", "EXEC", "DISCARD", "AUTH", "HELLO",
         "SELECT", "ROLE", "DBSIZE", "FLUSHALL", "FLUSHDB", "CONFIG", "COMMAND", "READONLY", "READWRITE", "ASKING", "WAIT",
         "SLOWLOG", "LASTSAVE", "SAVE", "BGSAVE", "BGREWRITEAOF", "DEBUG", "MEMORY", "LATENCY", "ACL", "QUIT", "RESET":
        return nil
    default:
        return arguments.first.map(slot(of:))
    }
}

/// The Redis Cluster specification's key slot: CRC16/XMODEM (bit by bit) of the hash tag — the
/// bytes between the first `{` and the first `}` after it, when there are some — mod 16384.
private func slot(of key: [UInt8]) -> Int {
    var hashed = key[...]
    if let open = key.firstIndex(of: UInt8(ascii: "{")), let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
        hashed = key[(open + 1)..<close]
    }
    var crc: UInt16 = 0
    for byte in hashed {
        crc ^= UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
    }
    let direct = Int(crc & 0x3FFF)
    Fuzz.check(ClusterSlot.of(key) == direct, "ClusterSlot.of(key) \(ClusterSlot.of(key)) for \(printable(key)), expected \(direct)")
    return direct
}

private func printable(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription + (bytes.count > 200 ? "…(\(bytes.count) bytes)" : "")
}
