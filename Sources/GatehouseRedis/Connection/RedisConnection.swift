import GatehouseSystem
package import Logging
import Synchronization

/// One Redis connection: a hiredis context owned by a dedicated I/O thread, fed by a queue that
/// any number of tasks append to.
///
/// The thread loops: take everything queued (up to the batch limits), append it all to the
/// context's output buffer, write it in one go, then read exactly as many replies, handing each
/// to its caller in order. Commands that arrive meanwhile wait in the queue and go out together
/// in the next write: that is the automatic pipelining. See the design note in
/// `RedisClient.swift` and docs/redis-client.md.
package final class RedisConnection: Sendable {
    /// Who gets a command's reply: a suspended task, or a callback run on the I/O thread.
    package enum Waiter: Sendable {
        case task(UnsafeContinuation<RedisValue, any Error>)
        case callback(@Sendable (Result<RedisValue, any Error>) -> Void)

        func resume(with result: Result<RedisValue, any Error>) {
            switch self {
            case .task(let continuation): continuation.resume(with: result)
            case .callback(let callback): callback(result)
            }
        }
    }

    package let configuration: RedisConfiguration
    private let name: String
    /// The socket's send/receive timeout: the command timeout, or longer for a connection that
    /// issues blocking reads (the stream follower).
    private let ioTimeout: Duration
    private let logger: Logger
    private let state: Mutex<ConnectionStateMachine<Waiter>>
    /// Wakes the parked I/O thread; signalled only when the state machine says it is parked.
    private let wakeup = Wakeup()
    private let nextID = Atomic<UInt64>(0)
    private let pending = Atomic<Int>(0)
    private let connectedFlag = Atomic<Bool>(false)
    private let exit = ThreadExit()
    /// For a `redis-sentinel://` URL: finds the master on every (re)connect. Shared by a pool's
    /// connections, so a sentinel that answered is asked first by all of them and a master
    /// change is logged once.
    private let sentinelResolver: SentinelResolver?
    /// Where to connect on every (re)connect, when not the URL's own server: a cluster node, or
    /// whichever master owns a key's slot now (the stream follower on a cluster).
    private let resolveEndpoint: (@Sendable () throws(RedisError) -> RedisURL.Endpoint)?

    /// Starts the connection's I/O thread, which connects at once and reconnects as needed until
    /// ``close()``.
    ///
    /// - Parameters:
    ///   - sentinelResolver: for a Sentinel URL, the resolver to share with other connections;
    ///     `nil` creates one of this connection's own.
    ///   - resolveEndpoint: for a Cluster URL, the node to connect to, asked on every (re)connect.
    package init(
        configuration: RedisConfiguration,
        name: String,
        ioTimeout: Duration? = nil,
        sentinelResolver: SentinelResolver? = nil,
        resolveEndpoint: (@Sendable () throws(RedisError) -> RedisURL.Endpoint)? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.name = name
        self.ioTimeout = ioTimeout ?? configuration.commandTimeout
        self.resolveEndpoint = resolveEndpoint
        if case .sentinel(let sentinel) = configuration.url.endpoint {
            self.sentinelResolver = sentinelResolver ?? SentinelResolver(sentinel)
        } else {
            self.sentinelResolver = nil
        }
        var logger = logger
        logger[metadataKey: "redis.connection"] = "\(name)"
        self.logger = logger
        self.state = Mutex(ConnectionStateMachine(queueTimeoutNanoseconds: configuration.commandTimeout.nanosecondsClamped))
        IOThread.spawn(name: name) { [self] in
            self.runIOLoop()
        }
    }

    /// Commands queued or in flight: the pool's load measure.
    package var load: Int { self.pending.load(ordering: .relaxed) }

    /// Whether the link is up (as of the I/O thread's last transition).
    package var isConnected: Bool { self.connectedFlag.load(ordering: .relaxed) }

    /// Sends RESP bytes holding `replyCount` commands and returns the reply (an array of the
    /// replies when `replyCount > 1`). Error replies are returned as ``RedisValue/error(_:)``.
    package func execute(_ bytes: [UInt8], replyCount: Int = 1) async throws -> RedisValue {
        let id = self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
        self.pending.wrappingAdd(1, ordering: .relaxed)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<RedisValue, any Error>) in
                guard self.enqueue(id: id, bytes: bytes, replyCount: replyCount, waiter: .task(continuation)) else { return }
                // If cancellation raced with the enqueue, the handler may have run before the
                // command was in the queue and found nothing; cancelling again here covers it
                // (cancelling twice is harmless).
                if Task.isCancelled { self.cancel(id: id) }
            }
        } onCancel: {
            self.cancel(id: id)
        }
    }

    /// ``execute(_:replyCount:)`` for a caller outside Swift concurrency: `completion` gets the
    /// reply (or the failure) on the connection's I/O thread, so it must only hand it on (e.g.
    /// to an event loop). Bounded by the command timeout like every command; not cancellable.
    package func execute(_ bytes: [UInt8], replyCount: Int = 1, completion: @escaping @Sendable (Result<RedisValue, any Error>) -> Void) {
        let id = self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
        self.pending.wrappingAdd(1, ordering: .relaxed)
        _ = self.enqueue(id: id, bytes: bytes, replyCount: replyCount, waiter: .callback(completion))
    }

    /// Queues a command; false if it failed at once (its waiter already has the failure).
    private func enqueue(id: UInt64, bytes: [UInt8], replyCount: Int, waiter: Waiter) -> Bool {
        let action = self.state.withLock {
            $0.enqueue(id: id, bytes: bytes, replyCount: replyCount, waiter: waiter, now: MonotonicClock.now())
        }
        switch action {
        case .none:
            return true
        case .wakeIOThread:
            self.wakeup.signal()
            return true
        case .fail(let waiter, let error):
            self.finish(waiter, .failure(error))
            return false
        }
    }

    private func cancel(id: UInt64) {
        if let waiter = self.state.withLock({ $0.cancel(id: id) }) {
            self.finish(waiter, .failure(CancellationError()))
        }
    }

    /// Stops accepting commands; queued and in-flight ones are still answered (bounded by the
    /// command timeout), then the I/O thread closes the socket and ends.
    package func close() {
        if case .wakeIOThread = self.state.withLock({ $0.close() }) {
            self.wakeup.signal()
        }
    }

    /// Waits until the I/O thread has ended (after ``close()``).
    package func waitUntilClosed() async {
        await self.exit.wait()
    }

    private func finish(_ waiter: Waiter, _ result: Result<RedisValue, any Error>) {
        self.pending.wrappingSubtract(1, ordering: .relaxed)
        waiter.resume(with: result)
    }

    // MARK: I/O thread

    private func runIOLoop() {
        var context: HiredisContext?
        var failedAttempts = 0
        var everConnected = false
        let limits = self.configuration.limits

        while true {
            let now = MonotonicClock.now()
            let (step, failed) = self.state.withLock {
                $0.nextStep(now: now, maxBatchCommands: limits.maxBatchCommands, maxBatchBytes: limits.maxBatchBytes)
            }
            for (waiter, error) in failed {
                self.finish(waiter, .failure(error))
            }

            switch step {
            case .exit:
                context = nil
                self.connectedFlag.store(false, ordering: .relaxed)
                self.logger.debug("Redis connection closed")
                self.exit.signal()
                return

            case .park(let until):
                var timeout: UInt64?
                if let until {
                    let now = MonotonicClock.now()
                    timeout = until > now ? until - now : 0
                }
                let socketNeedsAttention = self.wakeup.wait(socket: context?.fileDescriptor, timeoutNanoseconds: timeout)
                self.state.withLock { $0.unparked() }
                if socketNeedsAttention, let idle = context {
                    // Nothing is in flight, so the server has closed the connection (or sent
                    // something it should not have). Replace it now rather than fail the next
                    // caller.
                    let error = idle.idleConnectionError()
                    context = nil
                    self.connectedFlag.store(false, ordering: .relaxed)
                    _ = self.state.withLock { $0.connectionLost(error, retryAt: 0) }
                    self.logger.warning("Redis connection lost while idle", metadata: ["error": "\(error.message)"])
                }

            case .connect:
                do {
                    context = try self.openContext()
                    self.state.withLock { $0.connected() }
                    self.connectedFlag.store(true, ordering: .relaxed)
                    if everConnected || failedAttempts > 0 {
                        self.logger.info("Redis connection re-established", metadata: ["attempts": "\(failedAttempts + 1)"])
                    }
                    everConnected = true
                    failedAttempts = 0
                } catch {
                    failedAttempts += 1
                    let delay = self.configuration.backoff.delay(afterFailures: failedAttempts)
                    self.state.withLock { $0.connectFailed(error, retryAt: MonotonicClock.now() &+ delay) }
                    // One warning per outage; the repeats are debug noise.
                    let level: Logger.Level = failedAttempts == 1 ? .warning : .debug
                    self.logger.log(
                        level: level,
                        "cannot connect to Redis; retrying",
                        metadata: ["error": "\(error.message)", "retry_in_ms": "\(delay / 1_000_000)"]
                    )
                }

            case .write(let commands, let replyCount):
                guard let connection = context else {
                    preconditionFailure("a batch was handed out without a connection")
                }
                do {
                    for command in commands {
                        try connection.append(command)
                    }
                    try connection.flush()
                    var notMaster: String?
                    for _ in 0..<replyCount {
                        let value = try connection.readReply(maxBytes: limits.maxReplyBytes)
                        if notMaster == nil, self.sentinelResolver != nil, let message = Self.notMasterError(value) {
                            notMaster = message
                        }
                        if let (waiter, reply) = self.state.withLock({ $0.replyReceived(value) }) {
                            self.finish(waiter, .success(reply))
                        }
                    }
                    if let notMaster {
                        // Following a failover: this server is no longer a writable master (the
                        // old master came back as a replica, or it is loading / cut off from
                        // its master). The batch's replies have all been delivered; drop the
                        // connection so the next connect asks the sentinels again.
                        context = nil
                        self.connectedFlag.store(false, ordering: .relaxed)
                        let error = RedisError(
                            .connectionUnavailable,
                            "the Redis server is no longer the master (\(notMaster)); resolving the master again"
                        )
                        _ = self.state.withLock { $0.connectionLost(error, retryAt: 0) }
                        self.logger.warning(
                            "Redis server is no longer the master; reconnecting through Sentinel",
                            metadata: ["reply": "\(notMaster)"]
                        )
                    }
                } catch {
                    context = nil  // frees the hiredis context and closes the socket
                    self.connectedFlag.store(false, ordering: .relaxed)
                    // The first reconnect attempt is immediate; backoff starts if it fails.
                    let lost = self.state.withLock { $0.connectionLost(error, retryAt: 0) }
                    self.logger.warning(
                        "Redis connection lost",
                        metadata: ["error": "\(error.message)", "commands_failed": "\(lost.count)"]
                    )
                    for (waiter, wasOldest) in lost {
                        self.finish(waiter, .failure(Self.inFlightError(error, wasOldest: wasOldest)))
                    }
                }
            }
        }
    }

    /// The first word of an error reply that means "this server is not a writable master any
    /// more" (for a Sentinel URL only: with a fixed address, reconnecting would not help).
    /// `READONLY` also comes back from a Lua script whose write hit a replica.
    package static func notMasterError(_ reply: RedisValue) -> String? {
        guard case .error(let message) = reply else { return nil }
        let word = message.prefix { $0 != " " }
        return ["READONLY", "LOADING", "MASTERDOWN"].contains(word) ? String(word) : nil
    }

    /// Connects and runs the handshake (AUTH, SELECT, CLIENT SETNAME, PING) as one pipeline.
    ///
    /// For a Sentinel URL, first asks the sentinels for the master's address (every time: a
    /// reconnect is exactly when the master may have moved), and adds `ROLE` to the handshake:
    /// a server that does not say `master` (a stale sentinel answer, a just-demoted master) is
    /// refused, and the I/O loop retries with its backoff.
    private func openContext() throws(RedisError) -> HiredisContext {
        let url = self.configuration.url
        var endpoint = url.endpoint
        var master: RedisURL.Sentinel.Address?
        if let resolver = self.sentinelResolver {
            let address = try resolver.resolveMaster(
                connectTimeout: self.configuration.connectTimeout,
                maxReplyBytes: self.configuration.limits.maxReplyBytes
            )
            master = address
            endpoint = .tcp(host: address.host, port: address.port)
        } else if let resolveEndpoint = self.resolveEndpoint {
            endpoint = try resolveEndpoint()
        }
        let context = try HiredisContext.connect(
            to: endpoint,
            connectTimeout: self.configuration.connectTimeout,
            ioTimeout: self.ioTimeout
        )
        var commands = RedisHandshake.commands(url: url, clientName: self.configuration.clientName)
        if master != nil {
            commands.append(RedisCommand("ROLE"))
        }
        let replies: [RedisValue]
        do {
            replies = try context.roundTrip(commands, maxBytes: self.configuration.limits.maxReplyBytes)
        } catch {
            throw RedisError(.connectionUnavailable, "Redis handshake failed: \(error.message)", underlying: error)
        }
        for reply in replies {
            if case .error(let message) = reply {
                throw RedisError(.connectionUnavailable, "Redis refused the connection handshake: \(message)")
            }
        }
        if let master, let resolver = self.sentinelResolver {
            let masterName = resolver.sentinel.masterName
            // ROLE's first element is "master", "slave" or "sentinel".
            guard case .array(let role) = replies[replies.count - 1], let first = role.first?.string, first == "master" else {
                let said = (replies[replies.count - 1].array?.first?.string).map { "'\($0)'" } ?? "no role"
                throw RedisError(
                    .connectionUnavailable,
                    "\(master) was named master '\(masterName)' by Sentinel but ROLE says \(said); asking the sentinels again"
                )
            }
            let (changed, previous) = resolver.confirm(master)
            if changed, let previous {
                self.logger.info(
                    "Redis master changed",
                    metadata: ["master_name": "\(masterName)", "old": "\(previous)", "new": "\(master)"]
                )
            } else if changed {
                self.logger.debug("Redis master found through Sentinel", metadata: ["master_name": "\(masterName)", "address": "\(master)"])
            }
        }
        return context
    }

    /// The error an in-flight caller sees. The oldest command gets the cause itself; the others
    /// are collateral and get ``RedisError/Code/connectionLost`` when the cause was specific to
    /// someone else's reply (too large, malformed).
    private static func inFlightError(_ error: RedisError, wasOldest: Bool) -> RedisError {
        if error.code == .timeout {
            return RedisError(.timeout, "\(error.message); the command may or may not have run", underlying: error)
        }
        if wasOldest || error.code == .connectionLost {
            return RedisError(error.code, "\(error.message); the command may or may not have run", underlying: error)
        }
        return RedisError(
            .connectionLost,
            "the connection was closed (\(error.message)); the command may or may not have run",
            underlying: error
        )
    }
}
