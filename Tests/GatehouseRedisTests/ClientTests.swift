import GatehouseRedis
import GatehouseTesting
import Synchronization
import Testing

/// The client against one real redis-server shared by the suite; every test uses its own keys.
@Suite("RedisClient against a real server", .redisServer(), .timeLimit(.minutes(1)))
struct ClientTests {
    let server: RedisServerProcess

    init() throws {
        self.server = try RedisServerProcess.shared
    }

    @Test func repliesOfEveryRESPType() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            // Simple string.
            #expect(try await redis.send(["SET", key, "v"]) == .simpleString("OK"))
            // Bulk string, empty bulk string, null bulk string.
            #expect(try await redis.send(["GET", key]) == .bulkString(Array("v".utf8)))
            #expect(try await redis.send(["SET", key + ":empty", ""]) == .simpleString("OK"))
            #expect(try await redis.send(["GET", key + ":empty"]) == .bulkString([]))
            #expect(try await redis.send(["GET", key + ":missing"]) == .null)
            // Integer, negative integer.
            #expect(try await redis.send(["INCRBY", key + ":n", -5]) == .integer(-5))
            // Empty array, array of bulks with a null inside.
            #expect(try await redis.send(["LRANGE", key + ":nolist", 0, -1]) == .array([]))
            #expect(
                try await redis.send(["MGET", key, key + ":missing"]) == .array([.bulkString(Array("v".utf8)), .null])
            )
            // Null array: BLPOP that times out answers *-1 in RESP2.
            #expect(try await redis.send(["BLPOP", key + ":nolist", "0.01"]) == .null)
            // Nested arrays (a Lua table), integers and strings inside.
            let nested = try await redis.send(["EVAL", "return {1, {2, 'x', {}}, 'y'}", 0])
            #expect(nested == .array([.integer(1), .array([.integer(2), .bulkString(Array("x".utf8)), .array([])]), .bulkString(Array("y".utf8))]))
            // A top-level error reply throws, with the server's message.
            do {
                _ = try await redis.send(["INCR", key])
                Issue.record("INCR of a non-number should fail")
            } catch let error as RedisError {
                #expect(error.code == .serverError)
                #expect(error.serverErrorPrefix == "ERR")
            }
            // A nested error reply (inside EXEC's array) is a value, not a throw.
            let replies = try await redis.pipeline([
                RedisCommand("MULTI"), RedisCommand("SET", key + ":tx", "1"), RedisCommand("LPUSH", key + ":tx", "x"),
                RedisCommand("EXEC"),
            ])
            #expect(replies.count == 4)
            guard case .array(let exec) = replies[3], exec.count == 2, case .error(let message) = exec[1] else {
                Issue.record("EXEC should return [+OK, -WRONGTYPE], got \(replies[3])")
                return
            }
            #expect(exec[0] == .simpleString("OK"))
            #expect(message.hasPrefix("WRONGTYPE"))
        }
    }

    @Test func valuesAreBinarySafe() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            let everyByte = (0...255).map(UInt8.init) + Array("\r\n$3\r\n*1\r\n\0".utf8)
            try await redis.set(key, everyByte)
            #expect(try await redis.get(key) == everyByte)

            // A binary key, too.
            let binaryKey = Array(key.utf8) + [0, 13, 10, 0xFF]
            #expect(try await redis.send(["SET", binaryKey, "x"]) == .simpleString("OK"))
            #expect(try await redis.send(["GET", binaryKey]) == .bulkString(Array("x".utf8)))

            // 2 MiB: spans many reads and writes.
            let large = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            try await redis.set(key + ":large", large)
            #expect(try await redis.get(key + ":large") == large)
        }
    }

    @Test func thousandsOfConcurrentCallersEachGetTheirOwnReply() async throws {
        try await withClient(self.server.configuration(poolSize: 2)) { redis in
            let key = uniqueKey()
            let callers = 5000
            let mismatches = Counter()
            let answered = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        // Mixed shapes and sizes, so a misrouted reply could not pass by accident.
                        let payload = "caller-\(caller)-" + String(repeating: "x", count: caller % 97)
                        let echoed = try await redis.send(["ECHO", payload])
                        let counter = try await redis.send(["INCRBY", "\(key):\(caller)", caller + 1])
                        if echoed != .bulkString(Array(payload.utf8)) || counter != .integer(Int64(caller + 1)) {
                            mismatches.increment()
                        }
                        answered.increment()
                    }
                }
                try await group.waitForAll()
            }
            #expect(answered.count == callers)
            #expect(mismatches.count == 0)
        }
    }

    @Test func explicitPipelineRepliesInOrder() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            let commands = (1...100).map { _ in RedisCommand("INCR", key) }
            let replies = try await redis.pipeline(commands)
            #expect(replies == (1...100).map { RedisValue.integer(Int64($0)) })
        }
    }

    @Test func typedHelpers() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            #expect(try await redis.set(key, "a", nx: true, expireSeconds: 100))
            #expect(try await !redis.set(key, "b", nx: true))
            #expect(try await redis.getString(key) == "a")
            let ttl = try await redis.send(["TTL", key]).integer ?? -1
            #expect((1...100).contains(ttl))
            #expect(try await redis.incr(key + ":c") == 1)
            #expect(try await redis.incr(key + ":c") == 2)
            #expect(try await redis.expire(key + ":c", seconds: 50))
            #expect(try await redis.exists([key, key + ":c", key + ":none"]) == 2)
            #expect(try await redis.del([key, key + ":c"]) == 2)
            #expect(try await redis.get(key) == nil)
            #expect(try await redis.publish(key + ":channel", "hello") == 0)
            try await redis.ping()
            // Same machine, same clock: Redis read it between our two readings (no bound on how
            // long the round trip takes; 1 s of slack for a clock step meanwhile).
            let before = RedisClock.systemMicroseconds()
            let time = try await redis.time()
            let after = RedisClock.systemMicroseconds()
            #expect(time >= before - 1_000_000 && time <= after + 1_000_000)
        }
    }

    @Test func scriptsRunByShaAndReloadAfterScriptFlush() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            // A per-test script body, so SCRIPT FLUSH by another test cannot be confused with ours.
            let script = RedisScript("-- \(key)\nlocal n = redis.call('INCR', KEYS[1]) return {n, ARGV[1]}")
            // The locally computed SHA-1 is what Redis computes.
            #expect(try await redis.send(["SCRIPT", "LOAD", script.source]).string == script.sha1)

            #expect(try await redis.eval(script, keys: [key], arguments: ["a"]) == .array([.integer(1), .bulkString(Array("a".utf8))]))
            #expect(try await redis.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            #expect(try await redis.send(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))
            // NOSCRIPT is handled transparently.
            #expect(try await redis.eval(script, keys: [key], arguments: ["b"]) == .array([.integer(2), .bulkString(Array("b".utf8))]))
            #expect(try await redis.send(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))

            // A Lua error is a server error, not a reload loop.
            let failing = RedisScript("-- \(key)\nreturn redis.error_reply('GATEHOUSE nope')")
            do {
                _ = try await redis.eval(failing)
                Issue.record("the script's error reply should throw")
            } catch let error as RedisError {
                #expect(error.code == .serverError)
                #expect(error.serverErrorPrefix == "GATEHOUSE")
            }
        }
    }

    @Test func streamsAddTrimAndRead() async throws {
        try await withClient(self.server.configuration()) { redis in
            let key = uniqueKey()
            var ids: [RedisStreamID] = []
            for index in 0..<20 {
                ids.append(try await redis.xadd(key, fields: [.init("n", "\(index)"), .init("bin", [0, 1, 2])]))
            }
            #expect(ids == ids.sorted())
            #expect(Set(ids).count == 20)
            let read = try await redis.xread(key, after: ids[9], count: 100)
            #expect(read.map(\.id) == Array(ids[10...]))
            #expect(read.first?["n"] == "10")
            #expect(read.first?.fields.last == RedisStreamField("bin", [0, 1, 2]))

            // MAXLEN = 5 trims exactly.
            try await redis.xadd(key, fields: [.init("n", "20")], trim: .maxLength(5, approximate: false))
            #expect(try await redis.xrange(key).count == 5)

            // MINID drops entries older than an id.
            let keep = try await redis.xadd(key, fields: [.init("n", "21")])
            try await redis.xadd(key, fields: [.init("n", "22")], trim: .minID(keep, approximate: false))
            #expect(try await redis.xrange(key).map { $0["n"] } == ["21", "22"])
            #expect(try await redis.xread(key, after: RedisStreamID(milliseconds: .max, sequence: 0)) == [])
        }
    }

    @Test func selectsTheDatabaseOfTheURL() async throws {
        let key = uniqueKey()
        try await withClient(self.server.configuration(database: 3)) { db3 in
            try await db3.set(key, "in 3")
            #expect(try await db3.send(["CLIENT", "INFO"]).string?.contains("db=3") == true)
        }
        try await withClient(self.server.configuration(database: 0)) { db0 in
            let value = try await db0.get(key)
            #expect(value == nil)
        }
    }

    @Test func connectsOverTheUnixSocket() async throws {
        var configuration = self.server.configuration()
        configuration.url = try RedisURL("unix://\(self.server.unixSocketPath)?db=2")
        try await withClient(configuration) { redis in
            let key = uniqueKey()
            try await redis.set(key, "via unix")
            #expect(try await redis.getString(key) == "via unix")
            #expect(try await redis.send(["CLIENT", "INFO"]).string?.contains("db=2") == true)
        }
    }

    @Test func aReplyOverTheLimitClosesTheConnectionAndTheNextCommandWorks() async throws {
        var configuration = self.server.configuration(poolSize: 1)
        configuration.limits.maxReplyBytes = 64 << 10
        try await withClient(configuration) { redis in
            let key = uniqueKey()
            try await redis.set(key + ":small", [UInt8](repeating: 1, count: 60 << 10))
            try await redis.set(key + ":big", [UInt8](repeating: 2, count: 256 << 10))
            #expect(try await redis.get(key + ":small")?.count == 60 << 10)
            do {
                _ = try await redis.get(key + ":big")
                Issue.record("a 256 KiB reply should exceed a 64 KiB limit")
            } catch let error as RedisError {
                #expect(error.code == .replyTooLarge)
            }
            // An array of many small elements is counted as a whole, too.
            for index in 0..<2000 {
                _ = try await redis.send(["RPUSH", key + ":list", String(repeating: "z", count: 40) + "\(index)"])
            }
            do {
                _ = try await redis.send(["LRANGE", key + ":list", 0, -1])
                Issue.record("a ~100 KiB array reply should exceed a 64 KiB limit")
            } catch let error as RedisError {
                #expect(error.code == .replyTooLarge)
            }
            // The connection was replaced; the client still works.
            #expect(try await eventually { try await redis.get(key + ":small")?.count } == 60 << 10)
        }
    }

    @Test func redisClockMeasuresTheOffset() async throws {
        try await withClient(self.server.configuration()) { redis in
            let sameHost = RedisClock(client: redis)
            #expect(sameHost.offset == nil)
            #expect(!sameHost.isSane)
            let sample = try await sameHost.sample()
            // Same machine, same clock: the offset is within the round trip.
            #expect(abs(sample.offsetMicroseconds) <= max(sample.roundTripMicroseconds, 2_000))
            #expect(sameHost.isSane)

            // A local clock 10 s behind: Redis's clock is 10 s ahead of it.
            let skewed = RedisClock(
                client: redis,
                maximumSaneOffset: .seconds(5),
                localTime: { RedisClock.systemMicroseconds() - 10_000_000 }
            )
            let skewedSample = try await skewed.sample()
            // The midpoint estimate is off by at most half the sample's round trip (the same
            // physical clock on both sides here), plus TIME's and the clock's granularity.
            let bound = skewedSample.roundTripMicroseconds / 2 + 2_000
            #expect(abs(skewedSample.offsetMicroseconds - 10_000_000) <= bound)
            #expect(!skewed.isSane)
            // now() follows Redis, not the skewed local clock: Redis's TIME, taken between two
            // readings of now(), falls between them (within the same bound).
            let before = skewed.nowMicroseconds()
            let redisNow = try await redis.time()
            let after = skewed.nowMicroseconds()
            #expect(redisNow >= before - bound && redisNow <= after + bound)
        }
    }
}

/// AUTH with the default user's password and with an ACL user.
@Suite(
    "AUTH",
    .redisServer(.init(password: "default-secret", users: [.init(name: "alice", password: "wonder land")])),
    .timeLimit(.minutes(1))
)
struct AuthTests {
    let server: RedisServerProcess

    init() throws {
        self.server = try RedisServerProcess.shared
    }

    @Test func passwordOfTheDefaultUser() async throws {
        try await withClient(self.server.configuration()) { redis in
            let user = try await redis.send(["ACL", "WHOAMI"]).string
            #expect(user == "default")
        }
    }

    @Test func aclUserAndPassword() async throws {
        var configuration = self.server.configuration()
        configuration.url = try RedisURL("redis://alice:wonder%20land@127.0.0.1:\(self.server.port)/1")
        try await withClient(configuration) { redis in
            let user = try await redis.send(["ACL", "WHOAMI"]).string
            #expect(user == "alice")
        }
    }

    @Test func wrongPasswordFailsClearlyAndDoesNotHang() async throws {
        // The default 2 s command timeout rather than a tight one: the error reported is the last
        // connect attempt's, and on a loaded machine a handshake that merely stalls past a tight
        // timeout would report "no progress" instead of WRONGPASS.
        var configuration = self.server.configuration()
        configuration.url = try RedisURL("redis://alice:wrong@127.0.0.1:\(self.server.port)")
        try await withClient(configuration) { redis in
            do {
                try await redis.ping()
                Issue.record("a wrong password should not connect")
            } catch let error as RedisError {
                #expect(error.code == .connectionUnavailable)
                #expect(error.message.contains("WRONGPASS"))
            }
        }
    }
}
