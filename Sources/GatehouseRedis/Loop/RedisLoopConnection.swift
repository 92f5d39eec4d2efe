import DequeModule
import GatehouseSystem
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Redis connection owned by one SwiftNIO event loop, for callers that run on that loop (the
/// HTTP edge's event-loop routes): the command is written, and its reply read and handed to the
/// completion, on the caller's own thread, with no I/O thread to wake and no hop back.
///
/// Writes made while the loop handles one wake-up's events go out together: the first write
/// schedules one flush on the loop, which runs after the loop has served every channel that was
/// ready, so many callers share one `write(2)` as they do on an I/O thread's batch.
///
/// It serves only while connected. Not yet connected, reconnecting after a loss (its own backoff,
/// 50 ms doubling to 2 s, from ``RedisConfiguration/backoff``) or closing: ``send(_:completion:)``
/// returns false and the caller sends through the client's pool, whose queue and deadlines cover
/// that time. A written command has the pool's guarantees: its reply or an error within the
/// command timeout (a timeout closes the connection), replies matched to callers strictly in
/// order, and on any failure every command in flight fails (``RedisError/Code/connectionLost``).
///
/// Not `Sendable` in spirit: every member is touched on ``eventLoop`` only (checked by
/// `preconditionInEventLoop` in debug builds); ``RedisLoopConnections`` hands one to its loop's
/// callers.
final class RedisLoopConnection: @unchecked Sendable {
    typealias Completion = @Sendable (Result<RedisValue, any Error>) -> Void

    private enum State {
        /// No connection, and none being made; `retryAt` (monotonic ns) is when the next may start.
        case idle(failures: Int, retryAt: UInt64)
        case connecting
        /// Connected; the handshake's replies are still to come.
        case handshaking(any Channel, failures: Int)
        case ready(any Channel)
        case closed
    }

    let eventLoop: any EventLoop
    private let configuration: RedisConfiguration
    private let logger: Logger
    private var state: State = .idle(failures: 0, retryAt: 0)
    /// Commands written and not yet answered, oldest first, with the time each was written.
    private var inFlight: Deque<(written: UInt64, completion: Completion)> = []
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    /// Set by ``close()``; the connection closes once nothing is in flight.
    private var closing = false
    /// Whether ``close()`` has finished (read off the loop by ``RedisLoopConnections/close()``).
    let hasClosed = Atomic<Bool>(false)

    init(eventLoop: any EventLoop, configuration: RedisConfiguration, logger: Logger) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.logger = logger
    }

    /// Writes `bytes` (one command) when the connection is ready and returns true; `completion`
    /// then gets its reply on this loop. False when it is not: nothing was written, and a
    /// connection is started if none is under way and the backoff allows.
    func send(_ bytes: [UInt8], completion: @escaping Completion) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard !closing else { return false }
        switch state {
        case .ready(let channel):
            inFlight.append((MonotonicClock.now(), completion))
            channel.write(channel.allocator.buffer(bytes: bytes), promise: nil)
            scheduleFlush(channel)
            armTimer()
            return true
        case .idle(_, let retryAt):
            if MonotonicClock.now() >= retryAt { connect() }
            return false
        case .connecting, .handshaking, .closed:
            return false
        }
    }

    private func scheduleFlush(_ channel: any Channel) {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            channel.flush()
        }
    }

    // MARK: Connecting

    private func connect() {
        let failures: Int
        if case .idle(let count, _) = state { failures = count } else { return }
        state = .connecting
        // ClientBootstrap sets TCP_NODELAY itself (not for a Unix socket).
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Int64(configuration.connectTimeout.nanosecondsClamped)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RedisLoopHandler(connection: self, maxReplyBytes: self.configuration.limits.maxReplyBytes)
                    )
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch configuration.url.endpoint {
        case .tcp(let host, let port): connected = bootstrap.connect(host: host, port: port)
        case .unix(let path): connected = bootstrap.connect(unixDomainSocketPath: path)
        case .sentinel, .cluster: preconditionFailure("a loop connection serves one fixed server (RedisLoopConnections.serves)")
        }
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel): self.handshake(on: channel, failures: failures)
            case .failure(let error): self.connectFailed(failures: failures, reason: "\(error)")
            }
        }
    }

    /// AUTH, SELECT, CLIENT SETNAME and PING as one pipeline, as the pool's connections do;
    /// the connection serves once every reply has come and none was an error.
    private func handshake(on channel: any Channel, failures: Int) {
        guard case .connecting = state else {
            channel.close(promise: nil)
            return
        }
        state = .handshaking(channel, failures: failures)
        let commands = RedisHandshake.commands(url: configuration.url, clientName: configuration.clientName)
        // Touched by the completions below, all called on this loop.
        let progress = NIOLoopBoundBox((remaining: commands.count, refused: String?.none), eventLoop: eventLoop)
        for command in commands {
            inFlight.append((MonotonicClock.now(), { result in
                switch result {
                case .success(.error(let message)): progress.value.refused = progress.value.refused ?? message
                case .success: break
                case .failure(let error): progress.value.refused = progress.value.refused ?? "\(error)"
                }
                progress.value.remaining -= 1
                guard progress.value.remaining == 0 else { return }
                self.handshakeEnded(channel, refused: progress.value.refused, failures: failures)
            }))
            channel.write(channel.allocator.buffer(bytes: command.bytes), promise: nil)
        }
        channel.flush()
        armTimer()
    }

    private func handshakeEnded(_ channel: any Channel, refused: String?, failures: Int) {
        guard case .handshaking(let current, _) = state, current === channel else { return }
        if let refused {
            state = .connecting
            channel.close(promise: nil)
            connectFailed(failures: failures, reason: "Redis refused the connection handshake: \(refused)")
            return
        }
        state = .ready(channel)
        logger.debug("Redis loop connection ready", metadata: ["redis": "\(configuration.url)"])
    }

    private func connectFailed(failures: Int, reason: String) {
        guard case .connecting = state else { return }
        let delay = configuration.backoff.delay(afterFailures: failures + 1)
        state = .idle(failures: failures + 1, retryAt: MonotonicClock.now() &+ delay)
        // The pool logs the outage once; this connection's attempts are at debug.
        logger.debug("Redis loop connection failed", metadata: ["error": "\(reason)", "retry_in_ms": "\(delay / 1_000_000)"])
    }

    // MARK: Replies and failures (called by the handler, on this loop)

    func received(_ reply: RedisValue) {
        guard let oldest = inFlight.popFirst() else {
            dropChannel(RedisError(.protocolError, "Redis sent a reply nobody asked for"))
            return
        }
        oldest.completion(.success(reply))
        closeIfDrained()
    }

    /// The reply could not be read (not RESP, too large): the oldest caller gets `error`, the
    /// others `.connectionLost`, and the connection is dropped.
    func readFailed(_ error: RedisError) {
        if let oldest = inFlight.popFirst() { oldest.completion(.failure(error)) }
        dropChannel(RedisError(.connectionLost, "the Redis connection was closed after a read error: \(error.message)"))
    }

    /// The channel went inactive (the server closed it, a write failed, we closed it).
    func channelClosed(_ channel: any Channel) {
        switch state {
        case .ready(let current):
            guard current === channel else { return }
            // The first attempt after a loss is immediate, as on the pool.
            state = .idle(failures: 0, retryAt: 0)
            failAll(RedisError(.connectionLost, "the Redis connection was lost"))
            closeIfDrained()
        case .handshaking(let current, let failures):
            guard current === channel else { return }
            // A server that takes connections and drops them is an attempt that failed: backoff.
            state = .connecting
            failAll(RedisError(.connectionLost, "the Redis connection was lost during the handshake"))
            connectFailed(failures: failures, reason: "the connection closed during the handshake")
            closeIfDrained()
        case .closed:
            failAll(RedisError(.connectionLost, "the Redis client was shut down"))
            hasClosed.store(true, ordering: .releasing)
        case .idle, .connecting:
            return
        }
    }

    private func dropChannel(_ error: RedisError) {
        switch state {
        case .ready(let channel), .handshaking(let channel, _):
            state = .idle(failures: 0, retryAt: 0)
            failAll(error)
            channel.close(promise: nil)
        case .closed, .idle, .connecting:
            failAll(error)
        }
        closeIfDrained()
    }

    private func failAll(_ error: RedisError) {
        let failed = inFlight
        inFlight.removeAll()
        for item in failed { item.completion(.failure(error)) }
    }

    // MARK: Deadlines

    /// Keeps one timer while commands are in flight, due when the oldest one's time is up.
    private func armTimer() {
        guard timer == nil, let oldest = inFlight.first else { return }
        let timeout = configuration.commandTimeout.nanosecondsClamped
        let now = MonotonicClock.now()
        let due = oldest.written &+ timeout
        let wait = due > now ? due - now : 0
        timer = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(wait))) {
            self.timer = nil
            self.checkDeadline()
        }
    }

    private func checkDeadline() {
        guard let oldest = inFlight.first else { return }
        if MonotonicClock.now() &- oldest.written >= configuration.commandTimeout.nanosecondsClamped {
            dropChannel(RedisError(.timeout, "Redis sent no reply within \(configuration.commandTimeout)"))
        } else {
            armTimer()
        }
    }

    // MARK: Closing

    /// Stops taking commands; those in flight are answered first (bounded by the command
    /// timeout), then the channel is closed and ``hasClosed`` set.
    func close() {
        eventLoop.preconditionInEventLoop()
        guard !closing else { return }
        closing = true
        if inFlight.isEmpty { closeNow() }
    }

    /// After ``close()``: closes once the last command in flight is answered or failed.
    private func closeIfDrained() {
        guard closing, inFlight.isEmpty else { return }
        if case .closed = state { return }
        closeNow()
    }

    private func closeNow() {
        let previous = state
        state = .closed
        timer?.cancel()
        timer = nil
        switch previous {
        case .ready(let channel), .handshaking(let channel, _):
            channel.close(promise: nil)  // channelClosed sets hasClosed
        case .idle, .connecting, .closed:
            failAll(RedisError(.clientClosed, "the Redis client was shut down"))
            hasClosed.store(true, ordering: .releasing)
        }
    }
}

/// Reads the connection's replies with hiredis's reader (``RESPReader``), one reader per channel.
private final class RedisLoopHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: RedisLoopConnection
    private let reader: RESPReader
    private var failed = false

    init(connection: RedisLoopConnection, maxReplyBytes: Int) {
        self.connection = connection
        self.reader = RESPReader(maxReplyBytes: maxReplyBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let buffer = unwrapInboundIn(data)
        do {
            try buffer.withUnsafeReadableBytes { bytes in try reader.feed(bytes) }
            while let reply = try reader.next() {
                connection.received(reply)
            }
        } catch let error as RedisError {
            failed = true
            connection.readFailed(error)
            context.close(promise: nil)
        } catch {
            failed = true
            connection.readFailed(RedisError(.protocolError, "\(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.channelClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
