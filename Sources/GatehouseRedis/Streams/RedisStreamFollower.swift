import GatehouseSystem
public import Logging
public import ServiceLifecycle
import Synchronization

/// Follows one Redis stream from a given id, delivering every entry exactly once and in order,
/// across reconnects.
///
/// It reads with `XREAD COUNT n BLOCK ms STREAMS key <last id>` on a connection of its own (a
/// blocking read on a pooled, pipelined connection would hold up every other caller). The last
/// delivered id advances only after the handler has returned for a batch, and the next read asks
/// for entries strictly after it; so after any failure — a lost connection, a restarted server,
/// a timeout — the follower resumes exactly where it stopped: nothing lost, nothing repeated.
/// (Entries trimmed away by `MINID`/`MAXLEN` while it was disconnected are, of course, gone.)
///
/// "Caught up" means a read returned fewer entries than the batch size: the backlog that existed
/// at start has been delivered. Gatehouse reports ready only after that.
///
/// Run it as a swift-service-lifecycle `Service`, or call ``run()`` in a task and cancel it.
public final class RedisStreamFollower: Sendable, Service {
    /// What the follower has done so far.
    public struct Status: Sendable, Hashable {
        /// The id of the last entry handed to the handler (the start id before any).
        public var lastDeliveredID: RedisStreamID
        /// Whether the backlog present at start has been delivered.
        public var isCaughtUp: Bool
        /// Whether the last read succeeded.
        public var isConnected: Bool
        /// How many entries have been delivered.
        public var deliveredCount: Int
    }

    private struct State {
        var status: Status
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    private let configuration: RedisConfiguration
    /// On a cluster: finds the master of the stream's slot for the follower's own connection.
    private let router: RedisClusterRouter?
    private let stream: String
    private let batchSize: Int
    private let blockTime: Duration
    private let logger: Logger
    private let handler: @Sendable ([RedisStreamEntry]) async -> Void
    private let state: Mutex<State>
    private let started = Atomic<Bool>(false)

    /// Creates a follower of `stream`.
    ///
    /// - Parameters:
    ///   - configuration: the server; the follower opens one connection of its own with it.
    ///   - stream: the stream's key.
    ///   - startingAfter: deliver entries with ids strictly greater than this; for "the last
    ///     `T` of history" pass `RedisStreamID.before(milliseconds: now - T)`.
    ///   - batchSize: `XREAD COUNT`.
    ///   - blockTime: `XREAD BLOCK`; also how long shutdown may take to be noticed by the server
    ///     side of the read.
    ///   - handler: called with each non-empty batch, in order, one batch at a time.
    public convenience init(
        configuration: RedisConfiguration,
        stream: String,
        startingAfter: RedisStreamID,
        batchSize: Int = 500,
        blockTime: Duration = .seconds(1),
        logger: Logger = Logger(label: "gatehouse.redis.stream"),
        handler: @escaping @Sendable ([RedisStreamEntry]) async -> Void
    ) {
        self.init(
            configuration: configuration, router: nil, stream: stream, startingAfter: startingAfter, batchSize: batchSize,
            blockTime: blockTime, logger: logger, handler: handler
        )
    }

    /// Creates a follower of `stream` on `client`'s server: the same as
    /// ``init(configuration:stream:startingAfter:batchSize:blockTime:logger:handler:)`` with the
    /// client's configuration, and on a Redis Cluster its connection goes to the master that
    /// owns the stream's slot, found again from the client's slot map after every `MOVED` or
    /// lost connection.
    public convenience init(
        client: RedisClient,
        stream: String,
        startingAfter: RedisStreamID,
        batchSize: Int = 500,
        blockTime: Duration = .seconds(1),
        logger: Logger = Logger(label: "gatehouse.redis.stream"),
        handler: @escaping @Sendable ([RedisStreamEntry]) async -> Void
    ) {
        self.init(
            configuration: client.configuration, router: client.clusterRouter, stream: stream, startingAfter: startingAfter,
            batchSize: batchSize, blockTime: blockTime, logger: logger, handler: handler
        )
    }

    private init(
        configuration: RedisConfiguration,
        router: RedisClusterRouter?,
        stream: String,
        startingAfter: RedisStreamID,
        batchSize: Int = 500,
        blockTime: Duration = .seconds(1),
        logger: Logger = Logger(label: "gatehouse.redis.stream"),
        handler: @escaping @Sendable ([RedisStreamEntry]) async -> Void
    ) {
        precondition(batchSize > 0, "batchSize must be positive")
        precondition(blockTime >= .milliseconds(1), "blockTime must be at least 1 ms (BLOCK 0 would wait forever)")
        var configuration = configuration
        configuration.poolSize = 1
        self.configuration = configuration
        self.router = router
        self.stream = stream
        self.batchSize = batchSize
        self.blockTime = blockTime
        var logger = logger
        logger[metadataKey: "redis.stream"] = "\(stream)"
        self.logger = logger
        self.handler = handler
        self.state = Mutex(
            State(status: Status(lastDeliveredID: startingAfter, isCaughtUp: false, isConnected: false, deliveredCount: 0))
        )
    }

    /// A snapshot of the follower's progress.
    public var status: Status { self.state.withLock { $0.status } }

    /// Returns once the follower has caught up (at once if it already has).
    ///
    /// - Throws: `CancellationError` if the waiting task is cancelled first.
    public func waitUntilCaughtUp() async throws {
        let id = self.state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = self.state.withLock { state in
                    if state.status.isCaughtUp { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
                if Task.isCancelled { self.cancelWaiter(id) }
            }
        } onCancel: {
            self.cancelWaiter(id)
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
    }

    /// Follows the stream until cancelled or gracefully shut down. May be called only once.
    public func run() async throws {
        precondition(!self.started.exchange(true, ordering: .relaxed), "RedisStreamFollower.run() may be called only once")
        await cancelWhenGracefulShutdown { await self.follow() }
    }

    private func makeConnection() -> RedisConnection {
        var resolveEndpoint: (@Sendable () throws(RedisError) -> RedisURL.Endpoint)?
        if let router = self.router {
            let stream = self.stream
            resolveEndpoint = { () throws(RedisError) -> RedisURL.Endpoint in try router.endpoint(forKey: stream) }
        }
        return RedisConnection(
            configuration: self.configuration,
            name: "gh-redis-xread",
            // The server holds a blocking read for up to blockTime before answering, so the
            // socket must wait that long plus the usual command timeout.
            ioTimeout: self.blockTime + self.configuration.commandTimeout,
            resolveEndpoint: resolveEndpoint,
            logger: self.logger
        )
    }

    private func follow() async {
        var connection = self.makeConnection()
        let blockMilliseconds = Int(self.blockTime.nanosecondsClamped / 1_000_000)
        var failures = 0
        while !Task.isCancelled {
            let status = self.status
            let after = status.lastDeliveredID
            do {
                // Until caught up, reads do not block: a short read then means the backlog
                // is read (waiters, e.g. readiness, go on at once instead of after blockTime).
                let command = status.isCaughtUp
                    ? RedisCommand("XREAD", "COUNT", self.batchSize, "BLOCK", blockMilliseconds, "STREAMS", self.stream, after.description)
                    : RedisCommand("XREAD", "COUNT", self.batchSize, "STREAMS", self.stream, after.description)
                let reply = try await connection.execute(command.bytes)
                if case .error(let message) = reply { throw RedisError(.serverError, message) }
                // Ids only grow; the filter makes "never repeat" hold even if a server
                // misbehaved.
                let entries = try RedisStreamEntry.entries(fromXRead: reply).filter { $0.id > after }
                failures = 0
                if !entries.isEmpty {
                    await self.handler(entries)
                }
                self.delivered(entries, readWasShort: entries.count < self.batchSize)
            } catch is CancellationError {
                break
            } catch {
                failures += 1
                self.state.withLock { $0.status.isConnected = false }
                if let router = self.router {
                    // On a cluster the stream may have moved (a reshard: `MOVED`) or its master
                    // failed over: the next connection goes to the owner by the newest map.
                    if let redisError = error as? RedisError, redisError.code == .serverError,
                        let redirect = ClusterRedirect(message: redisError.message), redirect.kind == .moved
                    {
                        router.apply(redirect)
                        connection.close()
                        connection = self.makeConnection()
                    } else {
                        router.requestRefresh()
                    }
                }
                let delay = Self.backoff(failures, self.configuration.backoff)
                self.logger.log(
                    level: failures == 1 ? .warning : .debug,
                    "reading the Redis stream failed; retrying",
                    metadata: ["error": "\(error)", "after": "\(after)"]
                )
                do { try await Task.sleep(for: delay) } catch { break }
            }
        }
        connection.close()
        await connection.waitUntilClosed()
    }

    private func delivered(_ entries: [RedisStreamEntry], readWasShort: Bool) {
        let waiters: [CheckedContinuation<Void, any Error>] = self.state.withLock { state in
            if let last = entries.last {
                state.status.lastDeliveredID = last.id
                state.status.deliveredCount += entries.count
            }
            state.status.isConnected = true
            guard readWasShort, !state.status.isCaughtUp else { return [] }
            state.status.isCaughtUp = true
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private static func backoff(_ failures: Int, _ policy: RedisConfiguration.Backoff) -> Duration {
        var delay = policy.initial
        for _ in 1..<min(failures, 20) where delay < policy.maximum {
            delay *= 2
        }
        return min(delay, policy.maximum)
    }
}
