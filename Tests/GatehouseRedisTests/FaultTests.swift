import Foundation
import GatehouseRedis
import GatehouseSystem
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
    /// Echoes its argument for the first 100 calls; the 101st holds the server (a Lua loop,
    /// bounded to 30 s) until the test kills it. So the kill always comes while a batch is in
    /// flight, whatever the machine's load. (Replies wait in the server's output buffer until
    /// it has processed what it read, so the 100 answered calls are a round of their own.)
    static let echoThenHold = RedisScript(
        """
        if redis.call('INCR', KEYS[1]) > 100 then
          local deadline = tonumber(redis.call('TIME')[1]) + 30
          while tonumber(redis.call('TIME')[1]) < deadline do end
        end
        return ARGV[1]
        """
    )

    @Test func serverKilledMidBatchEveryCallerGetsAReplyOrAnErrorAndNoneHangs() async throws {
        // Other clients get BUSY after busy-reply-threshold (5 s by default) of a running script;
        // the kill may come later than that on a loaded machine.
        let options = RedisServerProcess.Options(extraArguments: ["--busy-reply-threshold", "60000"])
        try await RedisServerProcess.withServer(options) { server in
            try await withClient(server.configuration()) { redis in
                try await redis.load(Self.echoThenHold)
                let replied = Counter()
                let failed = Counter()
                let wrong = Counter()
                let unexpectedError = Counter()
                let started = Counter()
                @Sendable func call(_ caller: Int) async {
                    started.increment()
                    do {
                        let reply = try await redis.eval(Self.echoThenHold, keys: ["calls"], arguments: ["c\(caller)"])
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

                // 100 concurrent callers, each with its own reply.
                await withTaskGroup(of: Void.self) { group in
                    for caller in 0..<100 { group.addTask { await call(caller) } }
                }
                #expect(replied.count == 100)

                // 1,900 more: the first to run holds the server, the rest are in flight behind it
                // or queued in the client when the server dies.
                let callers = 1900
                // On the timing executor, so the bound below times the client (see TimingExecutor).
                let killedAt = await onTimingExecutor {
                    await withTaskGroup(of: Void.self) { group in
                        for caller in 100..<(100 + callers) { group.addTask { await call(caller) } }
                        // Bounded: at least 10 s of waiting for every caller to have queued.
                        for _ in 0..<1000 where started.count < 100 + callers {
                            try? await Task.sleep(for: .milliseconds(10))
                        }
                        try? await Task.sleep(for: .milliseconds(100))  // let the I/O threads write
                        let killedAt = ContinuousClock.now
                        await server.kill()
                        await group.waitForAll()
                        return killedAt
                    }
                }
                let afterKill = ContinuousClock.now - killedAt
                #expect(replied.count + failed.count == 100 + callers)
                #expect(wrong.count == 0)
                #expect(unexpectedError.count == 0)
                #expect(replied.count == 100, "nothing after the held script ran")
                // No caller hangs: after the kill, the in-flight ones fail at once and the queued
                // ones within connectTimeout + commandTimeout (3 s here). The bound guards against
                // a hang, not a speed: 5× that, for a loaded machine.
                #expect(afterKill < .seconds(15))

                // Back up: the client reconnects by itself and the script is reloaded (the new
                // server has no data, so the count starts again).
                try await server.start()
                let reply = try await eventually {
                    try await redis.eval(Self.echoThenHold, keys: ["calls"], arguments: ["again"])
                }
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
                // No caller hangs: each fails within connectTimeout + commandTimeout (1.3 s here).
                // A hang guard, not a speed target: about 7× that, for a loaded machine.
                #expect(duration < .seconds(10))
                #expect(try await eventually { try await redis.send(["ECHO", "back"]) } == .bulkString(Array("back".utf8)))
            }
        }
    }

    @Test func cancelledCallerReturnsAtOnceAndNeverReceivesAnotherReply() async throws {
        try await RedisServerProcess.withServer { server in
            // A command timeout far above the bound below, so that "returned because it was
            // cancelled" and "returned because it timed out" cannot be confused on a slow machine.
            try await withClient(server.configuration(poolSize: 1, commandTimeout: .seconds(30))) { redis in
                try await redis.ping()
                try server.pause()
                // On the timing executor, so the bound below times the client (see TimingExecutor).
                let cancelled = Task(executorPreference: TimingExecutor.shared) {
                    try await redis.send(["ECHO", "cancelled"])
                }
                try await Task.sleep(for: .milliseconds(100))  // let it be written
                let waited = await elapsed {
                    cancelled.cancel()
                    let result = await cancelled.result
                    #expect(throws: CancellationError.self) { try result.get() }
                }
                #expect(waited < .seconds(10))  // well below the 30 s command timeout
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
            // It fails rather than hangs: the configuration allows connectTimeout +
            // commandTimeout (0.4 s). A hang guard, not a speed target: over 10× that, for a
            // loaded machine.
            #expect(waited < .seconds(5))
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
    /// handshake properly and every other command with bytes that are not RESP. It stands in for
    /// a corrupted stream, not for Redis.
    @Test func protocolErrorClosesTheConnectionAndFailsTheCommand() async throws {
        let peer = try GarbagePeer()
        defer { peer.stop() }
        // Generous timeouts: nothing here waits for one unless the client is broken, so they
        // only keep a loaded machine from turning a slow handshake into a failure.
        try await withClient(peer.configuration) { redis in
            do {
                _ = try await redis.send(["GET", "x"])
                Issue.record("garbage is not a reply")
            } catch {
                #expect(redisCode(error) == .protocolError)
            }
            // The broken connection is closed, not just forgotten: the peer reads its end.
            let closed = try await waitUntil(timeout: .seconds(10)) { peer.connectionsClosedByClient >= 1 }
            #expect(closed)
            // A new connection was opened for the next command.
            do {
                _ = try await redis.send(["GET", "y"])
                Issue.record("garbage is not a reply")
            } catch {
                #expect(redisCode(error) == .protocolError)
            }
            #expect(peer.connectionsAccepted >= 2)
        }
    }

    /// A child process started while a connection is open must not keep that connection alive
    /// after the client drops it (hiredis 0.14.1 opens sockets without `SOCK_CLOEXEC`). This is
    /// what made the protocol-error test flaky while other suites spawned processes.
    @Test func aDroppedConnectionEndsEvenIfAChildProcessWasStartedMeanwhile() async throws {
        let peer = try GarbagePeer()
        defer { peer.stop() }
        try await withClient(peer.configuration) { redis in
            try await redis.ping()  // connected
            // No file actions: the child inherits every descriptor of this process that is not
            // close-on-exec, as any spawned tool would.
            let child = try ChildProcess.spawn("/bin/sleep", ["60"])
            try await scoped(child, cleanup: { _ = await ChildProcess.kill($0) }) { _ in
                do {
                    _ = try await redis.send(["GET", "x"])
                    Issue.record("garbage is not a reply")
                } catch {
                    #expect(redisCode(error) == .protocolError)
                }
                // Well within the child's 60 s: without the fix, the peer would see the end only
                // when the child exits.
                let closed = try await waitUntil(timeout: .seconds(10)) { peer.connectionsClosedByClient >= 1 }
                #expect(closed)
            }
        }
    }
}

/// A peer on a Unix socket of its own (no TCP port another test's client could stumble on).
/// Each connection is served on a thread of its own, so one connection never holds up the next.
/// It parses the commands it receives: the handshake's (`PING`, `AUTH`, `SELECT`, `CLIENT`) get
/// proper replies, every other command gets bytes that are not RESP.
final class GarbagePeer: Sendable {
    let path: String
    private let listener: Int32
    private let accepted = Counter()
    private let closed = Counter()
    private let stopped = Atomic<Bool>(false)

    init() throws {
        let path = "/tmp/gatehouse-garbage-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        self.path = path
        unlink(path)
        // CLOEXEC: a child process spawned by another test must not hold the peer's sockets.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
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
        Self.wakeEvery100Milliseconds(fd)  // accept() notices stop()
        self.listener = fd
        let thread = Thread { [self] in self.serve() }
        thread.start()
    }

    /// A client for this peer: one connection, no `CLIENT SETNAME`, generous timeouts.
    var configuration: RedisConfiguration {
        RedisConfiguration(
            url: RedisURL(endpoint: .unix(path: self.path)),
            poolSize: 1,
            connectTimeout: .seconds(5),
            commandTimeout: .seconds(5),
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(100)),
            clientName: nil
        )
    }

    var connectionsAccepted: Int { self.accepted.count }

    /// Connections whose client end was closed (the peer read end-of-file).
    var connectionsClosedByClient: Int { self.closed.count }

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
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            self.accepted.increment()
            Self.wakeEvery100Milliseconds(client)
            let thread = Thread { [self] in self.answer(client) }
            thread.start()
        }
    }

    private func answer(_ client: Int32) {
        defer { close(client) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var received: [UInt8] = []
        // Bounded: at most 600 reads or wake-ups (a minute) even if stop() is never called.
        for _ in 0..<600 where !self.stopped.load(ordering: .relaxed) {
            let count = recv(client, &buffer, buffer.count, 0)
            if count == 0 {
                self.closed.increment()
                return
            }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return
            }
            received += buffer[0..<count]
            var reply: [UInt8] = []
            while let (name, length) = Self.firstCommand(in: received) {
                received.removeFirst(length)
                switch name.uppercased() {
                case "PING": reply += Array("+PONG\r\n".utf8)
                case "AUTH", "SELECT", "CLIENT": reply += Array("+OK\r\n".utf8)
                default: reply += Array("!this is not RESP\r\n".utf8)
                }
            }
            if !reply.isEmpty, send(client, reply, reply.count, Int32(MSG_NOSIGNAL)) != reply.count { return }
        }
    }

    /// The name of the first complete command (`*N\r\n` then N `$len\r\nbytes\r\n`) in `bytes`
    /// and the number of bytes it takes, or nil if it is not all there yet.
    private static func firstCommand(in bytes: [UInt8]) -> (name: String, length: Int)? {
        var position = 0
        func line(prefix: UInt8) -> Int? {
            guard position < bytes.count, bytes[position] == prefix else { return nil }
            var end = position + 1
            while end + 1 < bytes.count, !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
            guard end + 1 < bytes.count, let value = Int(String(decoding: bytes[(position + 1)..<end], as: UTF8.self)) else {
                return nil
            }
            position = end + 2
            return value
        }
        guard let count = line(prefix: UInt8(ascii: "*")), count > 0 else { return nil }
        var name = ""
        for index in 0..<count {
            guard let length = line(prefix: UInt8(ascii: "$")), position + length + 2 <= bytes.count else { return nil }
            if index == 0 { name = String(decoding: bytes[position..<(position + length)], as: UTF8.self) }
            position += length + 2
        }
        return (name, position)
    }

    private static func wakeEvery100Milliseconds(_ fd: Int32) {
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}

