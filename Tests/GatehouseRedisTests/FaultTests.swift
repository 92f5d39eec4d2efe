import Foundation
import GatehouseRedis
import GatehouseTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults on a server of each test's own: killed, stopped, paused, restarted. Every loop is
/// bounded in count, every wait in time.
@Suite("Faults", .timeLimit(.minutes(1)))
struct FaultTests {
    /// Each command keeps the server busy for a while (a Lua loop), so thousands of them are
    /// still queued or in flight when the server dies.
    static let slowEcho = RedisScript("local i = 0 while i < 20000 do i = i + 1 end return ARGV[1]")

    @Test func serverKilledMidBatchEveryCallerGetsAReplyOrAnErrorAndNoneHangs() async throws {
        try await RedisServerProcess.withServer { server in
            try await withClient(server.configuration(commandTimeout: .seconds(1))) { redis in
                try await redis.load(Self.slowEcho)
                let callers = 2000
                let replied = Counter()
                let failed = Counter()
                let wrong = Counter()
                let unexpectedError = Counter()
                let duration = try await elapsed {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for caller in 0..<callers {
                            group.addTask {
                                do {
                                    let reply = try await redis.eval(Self.slowEcho, arguments: ["c\(caller)"])
                                    if reply != .bulkString(Array("c\(caller)".utf8)) { wrong.increment() }
                                    replied.increment()
                                } catch {
                                    let allowed: [RedisError.Code] = [.connectionLost, .connectionUnavailable, .timeout]
                                    if let code = redisCode(error), allowed.contains(code) {
                                        failed.increment()
                                    } else {
                                        unexpectedError.increment()
                                    }
                                }
                            }
                        }
                        // Kill once the first replies are back: the rest are queued or in flight.
                        for _ in 0..<1000 where replied.count < 50 {
                            try await Task.sleep(for: .milliseconds(2))
                        }
                        await server.kill()
                        try await group.waitForAll()
                    }
                }
                #expect(replied.count + failed.count == callers)
                #expect(wrong.count == 0)
                #expect(unexpectedError.count == 0)
                #expect(replied.count >= 50)
                #expect(failed.count > 0)
                // Bounded: the in-flight ones fail at once, the queued ones within the 1 s
                // command timeout (plus one reconnect attempt).
                #expect(duration < .seconds(10))

                // Back up: the client reconnects by itself and the script is reloaded.
                try await server.start()
                let reply = try await eventually { try await redis.eval(Self.slowEcho, arguments: ["again"]) }
                #expect(reply == .bulkString(Array("again".utf8)))
            }
        }
    }

    @Test func pausedServerCommandsTimeOutThenRecover() async throws {
        try await RedisServerProcess.withServer { server in
            try await withClient(server.configuration(commandTimeout: .milliseconds(300))) { redis in
                try await redis.ping()
                try server.pause()
                let outcomes = SharedList<RedisError.Code>()
                let duration = try await elapsed {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for caller in 0..<100 {
                            group.addTask {
                                do {
                                    _ = try await redis.send(["ECHO", "\(caller)"])
                                    Issue.record("a paused server cannot answer")
                                } catch {
                                    outcomes.append(redisCode(error) ?? .clientClosed)
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                try server.resume()
                let codes = outcomes.all
                #expect(codes.count == 100)
                // Written commands time out; any queued behind them find no connection.
                #expect(codes.allSatisfy { $0 == .timeout || $0 == .connectionUnavailable })
                #expect(codes.contains(.timeout))
                #expect(duration < .seconds(5))
                #expect(try await eventually { try await redis.send(["ECHO", "back"]) } == .bulkString(Array("back".utf8)))
            }
        }
    }

    @Test func cancelledCallerReturnsAtOnceAndNeverReceivesAnotherReply() async throws {
        try await RedisServerProcess.withServer { server in
            try await withClient(server.configuration(poolSize: 1, commandTimeout: .seconds(5))) { redis in
                try await redis.ping()
                try server.pause()
                let cancelled = Task {
                    try await redis.send(["ECHO", "cancelled"])
                }
                try await Task.sleep(for: .milliseconds(100))  // let it be written
                let waited = await elapsed {
                    cancelled.cancel()
                    let result = await cancelled.result
                    #expect(throws: CancellationError.self) { try result.get() }
                }
                #expect(waited < .seconds(1))  // far less than the 5 s command timeout
                try server.resume()
                // The "cancelled" reply arrives and is dropped; each later caller gets its own.
                for index in 0..<20 {
                    #expect(try await redis.send(["ECHO", "after-\(index)"]) == .bulkString(Array("after-\(index)".utf8)))
                }
            }
        }
    }

    @Test func restartAndReconnect() async throws {
        try await RedisServerProcess.withServer(.init(appendOnly: true)) { server in
            try await withClient(server.configuration(commandTimeout: .milliseconds(300))) { redis in
                try await redis.set("survives", "yes")
                await server.stop()
                do {
                    _ = try await redis.get("survives")
                    Issue.record("a stopped server cannot answer")
                } catch {
                    #expect([.connectionLost, .connectionUnavailable].contains(redisCode(error)))
                }
                // Idle connections notice the closed socket by themselves.
                #expect(try await waitUntil { !redis.isConnected })
                try await server.restart()
                #expect(try await eventually { try await redis.getString("survives") } == "yes")
                #expect(try await waitUntil { redis.isConnected })
            }
        }
    }

    @Test func scriptIsReloadedTransparentlyAfterARestart() async throws {
        try await RedisServerProcess.withServer { server in
            try await withClient(server.configuration()) { redis in
                let script = RedisScript("return redis.call('INCR', KEYS[1])")
                #expect(try await redis.eval(script, keys: ["n"]) == .integer(1))
                try await server.restart()
                // A restart empties the script cache (and, without AOF, the data).
                _ = try await eventually { try await redis.ping() }
                #expect(try await redis.send(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))
                #expect(try await redis.eval(script, keys: ["n"]) == .integer(1))
                #expect(try await redis.send(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))
            }
        }
    }

    @Test func commandsFailFastWhenNoServerIsThere() async throws {
        // A Unix socket path nothing listens on: unlike a freed TCP port, no other test's server
        // can take it meanwhile.
        let configuration = RedisConfiguration(
            url: RedisURL(endpoint: .unix(path: "/tmp/gatehouse-nobody-\(UInt64.random(in: 0...UInt64.max)).sock")),
            connectTimeout: .milliseconds(200),
            commandTimeout: .milliseconds(200),
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(100))
        )
        try await withClient(configuration) { redis in
            let waited = await elapsed {
                do {
                    try await redis.ping()
                    Issue.record("nothing listens there")
                } catch {
                    #expect(redisCode(error) == .connectionUnavailable)
                    #expect((error as? RedisError)?.message.contains("not sent") == true)
                }
            }
            #expect(waited < .seconds(2))
        }
    }

    @Test func shutdownAnswersQueuedCommandsAndRefusesNewOnes() async throws {
        try await RedisServerProcess.withServer { server in
            let redis = RedisClient(configuration: server.configuration())
            try await redis.ping()
            async let last = redis.send(["ECHO", "last"])
            try await Task.sleep(for: .milliseconds(20))
            await redis.shutdown()
            #expect(try await last == .bulkString(Array("last".utf8)))
            do {
                try await redis.ping()
                Issue.record("a shut-down client must refuse commands")
            } catch {
                #expect(redisCode(error) == .clientClosed)
            }
        }
    }

    @Test func runIsAServiceThatClosesTheClientWhenCancelled() async throws {
        try await RedisServerProcess.withServer { server in
            let redis = RedisClient(configuration: server.configuration())
            let service = Task { try await redis.run() }
            #expect(try await eventually { try await redis.send(["ECHO", "up"]) } == .bulkString(Array("up".utf8)))
            service.cancel()
            try await service.value
            do {
                try await redis.ping()
                Issue.record("the client should be closed once run() returned")
            } catch {
                #expect(redisCode(error) == .clientClosed)
            }
        }
    }

    /// A real Redis never breaks the protocol, so this uses a loopback peer that answers the
    /// handshake's PING properly and then sends bytes that are not RESP. It stands in for a
    /// corrupted stream, not for Redis.
    @Test func protocolErrorClosesTheConnectionAndFailsTheCommand() async throws {
        let peer = try GarbagePeer()
        defer { peer.stop() }
        var configuration = RedisConfiguration(
            url: RedisURL(endpoint: .unix(path: peer.path)),
            poolSize: 1,
            connectTimeout: .seconds(1),
            commandTimeout: .seconds(1),
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(100)),
            clientName: nil
        )
        configuration.limits = .init()
        try await withClient(configuration) { redis in
            do {
                _ = try await redis.send(["GET", "x"])
                Issue.record("garbage is not a reply")
            } catch {
                #expect(redisCode(error) == .protocolError)
            }
            // The broken connection was dropped and a new one opened for the next command.
            do {
                _ = try await redis.send(["GET", "y"])
            } catch {
                #expect(redisCode(error) == .protocolError)
            }
            #expect(peer.connectionsAccepted >= 2)
        }
    }
}

/// A peer on a Unix socket of its own (no TCP port another test's client could stumble on), on
/// its own thread: answers the first read of each connection with `+PONG` and every later one
/// with bytes that are not RESP.
final class GarbagePeer: Sendable {
    let path: String
    private let listener: Int32
    private let accepted = Counter()
    private let stopped = Atomic<Bool>(false)

    init() throws {
        let path = "/tmp/gatehouse-garbage-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        self.path = path
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            let bytes = Array(path.utf8.prefix(capacity - 1)) + [0]
            buffer.copyBytes(from: bytes)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 8) == 0 else {
            throw RedisError(.connectionUnavailable, "cannot listen on \(path): errno \(errno)")
        }
        // accept() wakes every 100 ms to notice stop().
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.listener = fd
        let thread = Thread { [self] in self.serve() }
        thread.start()
    }

    var connectionsAccepted: Int { self.accepted.count }

    func stop() {
        self.stopped.store(true, ordering: .relaxed)
    }

    private func serve() {
        defer {
            close(self.listener)
            unlink(self.path)
        }
        // Bounded: at most 600 wake-ups (a minute) even if stop() is never called.
        for _ in 0..<600 where !self.stopped.load(ordering: .relaxed) {
            let client = accept(self.listener, nil, nil)
            guard client >= 0 else { continue }
            self.accepted.increment()
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 4096)
            var first = true
            for _ in 0..<10 {
                guard recv(client, &buffer, buffer.count, 0) > 0 else { break }
                let answer = Array((first ? "+PONG\r\n" : "!this is not RESP\r\n").utf8)
                first = false
                guard send(client, answer, answer.count, Int32(MSG_NOSIGNAL)) == answer.count else { break }
            }
            close(client)
        }
    }
}
