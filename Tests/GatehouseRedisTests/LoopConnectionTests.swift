import GatehouseRedis
import GatehouseTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The connections a SwiftNIO event loop keeps for its own callers (`send(_:completion:)` called
/// on the loop), each test on a server of its own. A reply handed over on the caller's loop
/// proves it came through that loop's connection: the pool's replies come on its I/O thread.
@Suite("Event-loop connections", .timeLimit(.minutes(1)))
struct LoopConnectionTests {
    /// What one completion saw: the result, and whether it ran on the loop that sent.
    struct Answer: Sendable {
        var result: Result<RedisValue, any Error>
        var onLoop: Bool
        var value: RedisValue? { try? result.get() }
        var code: RedisError.Code? {
            if case .failure(let error) = result { return redisCode(error) }
            return nil
        }
    }

    /// Sends `command` from `loop` and waits for its completion.
    static func send(_ command: RedisCommand, on loop: any EventLoop, through redis: RedisClient) async -> Answer {
        await withCheckedContinuation { continuation in
            loop.execute {
                redis.send(command) { result in
                    continuation.resume(returning: Answer(result: result, onLoop: loop.inEventLoop))
                }
            }
        }
    }

    /// Sends `CLIENT ID` from `loop` until a reply comes back on the loop (its connection is up),
    /// at most 100 times 50 ms apart; returns that connection's id.
    static func loopConnectionID(on loop: any EventLoop, through redis: RedisClient) async throws -> Int64? {
        for _ in 0..<100 {
            let answer = await send(RedisCommand("CLIENT", "ID"), on: loop, through: redis)
            if answer.onLoop { return answer.value?.integer }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    static func withGroup<T: Sendable>(threads: Int = 2, _ body: (MultiThreadedEventLoopGroup) async throws -> T) async throws -> T {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let result = try await body(group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    @Test func eachLoopGetsAConnectionOfItsOwnAndEveryCallerItsOwnReply() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withGroup { group in
                try await withClient(server.configuration(poolSize: 1)) { redis in
                    let loops = [group.next(), group.next()]
                    let poolID = try await redis.send(["CLIENT", "ID"]).integer
                    var ids: Set<Int64> = []
                    for loop in loops {
                        let id = try #require(try await Self.loopConnectionID(on: loop, through: redis), "the loop's connection never served")
                        ids.insert(id)
                    }
                    #expect(ids.count == 2)
                    #expect(poolID.map { !ids.contains($0) } == true)
                    // The loop's connection makes the handshake the pool's connections make.
                    let names = try await redis.send(["CLIENT", "LIST"]).string ?? ""
                    #expect(names.split(separator: "\n").filter { $0.contains("name=gatehouse ") }.count == 3)

                    // 1,000 callers per loop, all sent within one turn of their loop: each gets
                    // its own reply, on its loop.
                    let wrong = Counter()
                    let offLoop = Counter()
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        let remaining = Atomic<Int>(2000)
                        for (l, loop) in loops.enumerated() {
                            loop.execute {
                                for i in 0..<1000 {
                                    let expected = "loop\(l)-caller\(i)"
                                    redis.send(RedisCommand("ECHO", expected)) { result in
                                        if (try? result.get())?.string != expected { wrong.increment() }
                                        if !loop.inEventLoop { offLoop.increment() }
                                        if remaining.subtract(1, ordering: .relaxed).newValue == 0 { done.resume() }
                                    }
                                }
                            }
                        }
                    }
                    #expect(wrong.count == 0)
                    #expect(offLoop.count == 0)
                }
            }
        }
    }

    @Test func errorRepliesAndScriptsBehaveAsOnThePool() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withGroup(threads: 1) { group in
                try await withClient(server.configuration(poolSize: 1)) { redis in
                    let loop = group.next()
                    _ = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    let error = await Self.send(RedisCommand("EVALSHA", String(repeating: "0", count: 40), 0), on: loop, through: redis)
                    #expect(error.onLoop)
                    #expect(error.code == .serverError)
                    if case .failure(let failure as RedisError) = error.result { #expect(failure.serverErrorPrefix == "NOSCRIPT") }

                    // A script the server does not know yet: NOSCRIPT, then EVAL, one reply.
                    let script = RedisScript("return 'loop ' .. ARGV[1]")
                    let reply = await withCheckedContinuation { (continuation: CheckedContinuation<Result<RedisValue, any Error>, Never>) in
                        loop.execute {
                            redis.eval(script, keys: [], arguments: ["script"]) { continuation.resume(returning: $0) }
                        }
                    }
                    #expect((try? reply.get())?.string == "loop script")
                }
            }
        }
    }

    @Test func theHandshakeLogsInAndSelectsTheDatabase() async throws {
        let options = RedisServerProcess.Options(password: "loop-secret")
        try await RedisServerProcess.withServer(options) { server in
            try await Self.withGroup(threads: 1) { group in
                try await withClient(server.configuration(database: 3, poolSize: 1)) { redis in
                    let loop = group.next()
                    _ = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    let key = uniqueKey()
                    let set = await Self.send(RedisCommand("SET", key, "from the loop"), on: loop, through: redis)
                    #expect(set.onLoop && set.value?.string == "OK")
                    #expect(try await redis.get(key).map { String(decoding: $0, as: UTF8.self) } == "from the loop")
                    #expect(try await redis.send(["SELECT", 0]).string == "OK")
                }
            }
        }
    }

    @Test func aUnixSocketURLGetsLoopConnectionsToo() async throws {
        try await RedisServerProcess.withServer { server in
            var configuration = server.configuration(poolSize: 1)
            configuration.url = RedisURL(endpoint: .unix(path: server.unixSocketPath))
            try await Self.withGroup(threads: 1) { group in
                try await withClient(configuration) { redis in
                    let loop = group.next()
                    _ = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    let list = try await redis.send(["CLIENT", "LIST"]).string ?? ""
                    // Both the pool's connection and the loop's come in over the socket file.
                    #expect(list.split(separator: "\n").filter { $0.contains("name=gatehouse ") && $0.contains("laddr=\(server.unixSocketPath)") }.count == 2, "\(list)")
                }
            }
        }
    }

    @Test func aRefusedHandshakeNeverServes() async throws {
        try await RedisServerProcess.withServer(.init(password: "right")) { server in
            var configuration = server.configuration(poolSize: 1, commandTimeout: .milliseconds(300))
            configuration.url = RedisURL(endpoint: configuration.url.endpoint, password: "wrong")
            try await Self.withGroup(threads: 1) { group in
                try await withClient(configuration) { redis in
                    let loop = group.next()
                    for _ in 0..<5 {
                        let answer = await Self.send(RedisCommand("PING"), on: loop, through: redis)
                        #expect(!answer.onLoop)
                        #expect(answer.code == .connectionUnavailable)
                    }
                }
            }
        }
    }

    @Test func aLostConnectionFailsWhatIsInFlightAndIsMadeAgain() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withGroup(threads: 1) { group in
                try await withClient(server.configuration(poolSize: 1, commandTimeout: .seconds(10))) { redis in
                    let loop = group.next()
                    let first = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    // BLPOP holds the loop's connection until the server drops it.
                    async let blocked = Self.send(RedisCommand("BLPOP", uniqueKey(), 8), on: loop, through: redis)
                    var blocking = false
                    for _ in 0..<200 where !blocking {  // at most 200 × 10 ms
                        blocking = (try await redis.send(["CLIENT", "LIST"]).string ?? "").contains("cmd=blpop")
                        if !blocking { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(blocking)
                    #expect(try await redis.send(["CLIENT", "KILL", "ID", first]).integer == 1)
                    let answer = await blocked
                    #expect(answer.onLoop)
                    #expect(answer.code == .connectionLost)
                    // Meanwhile the pool carries the loop's commands; then a new connection serves.
                    let second = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    #expect(second != first)
                }
            }
        }
    }

    @Test func noReplyWithinTheCommandTimeoutClosesTheConnection() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withGroup(threads: 1) { group in
                try await withClient(server.configuration(poolSize: 1, commandTimeout: .milliseconds(500))) { redis in
                    let loop = group.next()
                    let first = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    let started = ContinuousClock.now
                    let answer = await Self.send(RedisCommand("BLPOP", uniqueKey(), 5), on: loop, through: redis)
                    let waited = ContinuousClock.now - started
                    #expect(answer.onLoop)
                    #expect(answer.code == .timeout)
                    #expect(waited >= .milliseconds(450) && waited < .seconds(4))
                    let second = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    #expect(second != first)
                    // The server no longer lists the first connection.
                    let list = try await redis.send(["CLIENT", "LIST"]).string ?? ""
                    #expect(!list.contains("id=\(first) "))
                }
            }
        }
    }

    @Test func aReplyOverTheLimitFailsItsCallerAndTheOthersInFlight() async throws {
        try await RedisServerProcess.withServer { server in
            var configuration = server.configuration(poolSize: 1)
            configuration.limits.maxReplyBytes = 1024
            try await Self.withGroup(threads: 1) { group in
                try await withClient(configuration) { redis in
                    let loop = group.next()
                    let big = uniqueKey()
                    try await redis.set(big, Array(repeating: UInt8(ascii: "x"), count: 4096))
                    _ = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                    let answers = await withCheckedContinuation { (continuation: CheckedContinuation<[Answer], Never>) in
                        let collected = Mutex<[Int: Answer]>([:])
                        loop.execute {
                            for (i, command) in [RedisCommand("GET", big), RedisCommand("PING")].enumerated() {
                                redis.send(command) { result in
                                    let all = collected.withLock { all -> [Int: Answer]? in
                                        all[i] = Answer(result: result, onLoop: loop.inEventLoop)
                                        return all.count == 2 ? all : nil
                                    }
                                    if let all { continuation.resume(returning: [all[0]!, all[1]!]) }
                                }
                            }
                        }
                    }
                    #expect(answers[0].onLoop && answers[0].code == .replyTooLarge)
                    // The PING was written behind the GET; its reply is not read from a stream
                    // that has lost its place.
                    #expect(answers[1].code == .connectionLost)
                    #expect(try #require(try await Self.loopConnectionID(on: loop, through: redis)) > 0)
                }
            }
        }
    }

    @Test func shutdownAnswersWhatIsInFlightThenRefuses() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withGroup(threads: 1) { group in
                let redis = RedisClient(configuration: server.configuration(poolSize: 1, commandTimeout: .seconds(5)))
                let loop = group.next()
                _ = try #require(try await Self.loopConnectionID(on: loop, through: redis))
                async let blocked = Self.send(RedisCommand("BLPOP", uniqueKey(), 1), on: loop, through: redis)
                try await Task.sleep(for: .milliseconds(200))
                await redis.shutdown()
                let answer = await blocked
                #expect(answer.onLoop)
                #expect(answer.value == .null)  // BLPOP's timeout, answered before the close
                // Refused at once by the closed pool (so also on the loop).
                let after = await Self.send(RedisCommand("PING"), on: loop, through: redis)
                #expect(after.code == .clientClosed)
            }
        }
    }

    @Test func turnedOffEveryCommandGoesThroughThePool() async throws {
        try await RedisServerProcess.withServer { server in
            var configuration = server.configuration(poolSize: 1)
            configuration.eventLoopConnections = false
            try await Self.withGroup(threads: 1) { group in
                try await withClient(configuration) { redis in
                    let loop = group.next()
                    for _ in 0..<10 {
                        let answer = await Self.send(RedisCommand("PING"), on: loop, through: redis)
                        #expect(!answer.onLoop && answer.value?.string == "PONG")
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    let list = try await redis.send(["CLIENT", "LIST"]).string ?? ""
                    #expect(list.split(separator: "\n").filter { $0.contains("name=gatehouse ") }.count == 1)
                }
            }
        }
    }
}
