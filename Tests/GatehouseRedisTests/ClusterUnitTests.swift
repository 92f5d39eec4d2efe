import Testing

import GatehouseRedis

/// The Redis Cluster client's pure parts: key slots, the key of a command, the slot map and
/// redirect replies, and `redis-cluster://` URLs; no server (ClusterClientTests has the real
/// cluster, and checks the slots against `CLUSTER KEYSLOT`).
@Suite("Cluster units")
struct ClusterUnitTests {
    typealias Address = RedisURL.Address

    @Test("key slots: the values Redis documents, and hash tags")
    func slots() {
        // CRC16/XMODEM's check value.
        #expect(Array("123456789".utf8).withUnsafeBytes { ClusterSlot.crc16($0) } == 0x31C3)
        #expect(ClusterSlot.of("foo") == 12182)
        #expect(ClusterSlot.of("bar") == 5061)
        #expect(ClusterSlot.of("hello") == 866)
        // Only the first {…} with something inside counts.
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("gh:{kate@example.org}:user") == ClusterSlot.of("kate@example.org"))
        #expect(ClusterSlot.of("foo{}{bar}") == ClusterSlot.of(Array("foo{}{bar}".utf8)))
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"))
        #expect(ClusterSlot.of("foo{bar}{zap}") == ClusterSlot.of("bar"))
        #expect(ClusterSlot.of("") == 0)
    }

    @Test("the key of a command: first argument, after the key count, after STREAMS, or none")
    func commandKeys() {
        func slot(_ arguments: [any RedisArgumentConvertible]) -> Int? { ClusterSlot.of(command: RedisCommand(arguments).bytes) }
        #expect(slot(["GET", "gh:{a}:x"]) == ClusterSlot.of("a"))
        #expect(slot(["hset", "{b}:h", "f", "v"]) == ClusterSlot.of("b"))
        #expect(slot(["EVALSHA", "0123", 2, "{c}:1", "{c}:2", "arg"]) == ClusterSlot.of("c"))
        #expect(slot(["EVAL", "return 1", 1, "{d}"]) == ClusterSlot.of("d"))
        #expect(slot(["EVALSHA", "0123", 0, "not-a-key"]) == nil)
        #expect(slot(["XREAD", "COUNT", 5, "BLOCK", 1000, "STREAMS", "gh:revocations", "0-0"]) == ClusterSlot.of("gh:revocations"))
        #expect(slot(["XREAD", "COUNT", 5]) == nil)
        for keyless: [any RedisArgumentConvertible] in [["PING"], ["MULTI"], ["EXEC"], ["SCRIPT", "LOAD", "return 1"], ["TIME"], ["cluster", "slots"]] {
            #expect(slot(keyless) == nil, "\(keyless)")
        }
        #expect(ClusterSlot.isMulti(RedisCommand("multi").bytes))
        #expect(!ClusterSlot.isMulti(RedisCommand("EXEC").bytes))
        // Not RESP as RedisCommand writes it: no slot rather than a wrong one.
        #expect(ClusterSlot.of(command: Array("GET foo\r\n".utf8)) == nil)
        #expect(ClusterSlot.of(command: Array("*2\r\n$3\r\nGET\r\n$9\r\nfoo\r\n".utf8)) == nil)
    }

    @Test("CLUSTER SLOTS: masters per range, replicas, an empty host means the node asked")
    func slotMap() throws {
        func node(_ host: String, _ port: Int64) -> RedisValue { .array([.bulkString(Array(host.utf8)), .integer(port), .bulkString(Array("id".utf8))]) }
        let reply = RedisValue.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            .array([.integer(5461), .integer(10922), node("", 7001), node("127.0.0.1", 7004)]),
            .array([.integer(10923), .integer(16383), node("127.0.0.1", 7002)]),
        ])
        var map = try ClusterSlotMap(clusterSlotsReply: reply, askedNode: Address(host: "10.0.0.9", port: 7001))
        #expect(map.assignedSlotCount == 16384)
        #expect(map.master(ofSlot: 0) == Address(host: "127.0.0.1", port: 7000))
        #expect(map.master(ofSlot: 5461) == Address(host: "10.0.0.9", port: 7001))
        #expect(map.master(ofSlot: 16383) == Address(host: "127.0.0.1", port: 7002))
        #expect(map.replicas == [Address(host: "127.0.0.1", port: 7003), Address(host: "127.0.0.1", port: 7004)])
        map.assign(slot: 42, to: Address(host: "127.0.0.1", port: 7009))
        #expect(map.master(ofSlot: 42) == Address(host: "127.0.0.1", port: 7009))
        #expect(map.master(ofSlot: 41) == Address(host: "127.0.0.1", port: 7000))

        let partial = try ClusterSlotMap(clusterSlotsReply: .array([.array([.integer(0), .integer(99), node("h", 1)])]), askedNode: Address(host: "h", port: 1))
        #expect(partial.assignedSlotCount == 100 && partial.master(ofSlot: 100) == nil)
        for bad: RedisValue in [
            .error("ERR This instance has cluster support disabled"), .array([.array([.integer(5), .integer(1), node("h", 1)])]),
            .array([.array([.integer(0), .integer(16384), node("h", 1)])]), .array([.array([.integer(0), .integer(1), node("h", 0)])]),
        ] {
            #expect(throws: RedisError.self) { try ClusterSlotMap(clusterSlotsReply: bad, askedNode: Address(host: "h", port: 1)) }
        }
    }

    @Test("MOVED and ASK replies")
    func redirects() {
        #expect(ClusterRedirect(.error("MOVED 3999 127.0.0.1:6381")) == ClusterRedirect(message: "MOVED 3999 127.0.0.1:6381"))
        let moved = ClusterRedirect(message: "MOVED 3999 127.0.0.1:6381")
        #expect(moved?.kind == .moved && moved?.slot == 3999 && moved?.address == Address(host: "127.0.0.1", port: 6381))
        let ask = ClusterRedirect(message: "ASK 1 [::1]:7000")
        #expect(ask?.kind == .ask && ask?.address == Address(host: "::1", port: 7000))
        #expect(ClusterRedirect(message: "MOVED 12 :7000")?.address.host == "")
        for other in ["MOVED", "MOVED 16384 h:1", "MOVED x h:1", "ASK 1 h:0", "ERR wrong", "TRYAGAIN Multiple keys request during rehashing of slot"] {
            #expect(ClusterRedirect(message: other) == nil, "\(other)")
        }
        #expect(ClusterRedirect(.simpleString("MOVED 1 h:1")) == nil)
    }

    @Test("redis-cluster:// URLs")
    func urls() throws {
        let url = try RedisURL("redis-cluster://app:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(url.endpoint == .cluster(seeds: [Address(host: "10.0.0.1", port: 7000), Address(host: "10.0.0.2", port: 6379), Address(host: "::1", port: 7002)]))
        #expect(url.user == "app" && url.password == "s3cret" && url.database == 0)
        #expect(url.description == "redis-cluster://app:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(try RedisURL("redis-cluster://h:1/").endpoint == .cluster(seeds: [Address(host: "h", port: 1)]))
        #expect(try RedisURL("redis-cluster://h:1,h:1").endpoint == .cluster(seeds: [Address(host: "h", port: 1)]))
        for bad in ["redis-cluster://", "redis-cluster://h:1/2", "redis-cluster://h:1,,h:2", "redis-cluster://h:99999", "redis-cluster://h:1?db=2", "redis-cluster://u:secret@h:1/3"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisURL(bad) }
            do { _ = try RedisURL(bad) } catch { #expect(!"\(error)".contains("secret"), "\(error)") }
        }
    }
}
