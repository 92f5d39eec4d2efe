// # Design: dedicated I/O threads over blocking hiredis, with automatic pipelining
//
// Each connection of the pool is a hiredis 0.14.1 blocking `redisContext` owned by one OS thread
// (pthread, SIGPIPE blocked). Callers never touch it: `send` encodes the command to RESP on the
// caller's task, appends it to the connection's queue under a `Mutex` and suspends on a
// continuation. The thread takes everything queued, appends it to hiredis's output buffer,
// writes it with one `redisBufferWrite` loop, then reads exactly that many replies; each reply is
// copied into a `RedisValue` and freed at once, and the oldest waiter is resumed with it. Commands
// queued while a batch is in flight go out together in the next write, so many concurrent
// callers share one write and one read system call: automatic pipelining.
//
// Why threads rather than a SwiftNIO channel with hiredis's reader: hiredis does the protocol
// here, and its blocking API does all of it (formatting, buffering, parsing) with the least code
// of ours between the socket and the reply; a thread blocked in `read(2)` costs nothing while the
// server works, and callers append to the queue without a system call while the thread is busy.
// The cost is one OS thread per connection, and a node's pool is one connection by default (at
// most 16, `GATEHOUSE_REDIS_CONNECTIONS`), so it is small.
// A NIO channel would add an event loop, a second buffer copy into hiredis's reader and an
// EventLoop hop per batch for no gain at this pool size.
//
// A caller on a SwiftNIO event loop that passes a completion (the HTTP edge's sign-in and mail
// check) is the exception: for one fixed server each loop gets a NIO channel to Redis of its own
// (`RedisLoopConnection`), so the command is written, and its reply read, on the caller's own
// thread, with no I/O thread to wake and no hop back. While that channel is not up, such callers
// use the pool (docs/redis-client.md, "Connections of an event loop").
//
// On a Redis Cluster (`redis-cluster://`) the pool is replaced by `RedisClusterRouter`: the same
// connections, one per master, and each command sent to the master of its key's slot
// (docs/redis-client.md, "Cluster").
//
// Never blocking Swift's cooperative threads: all blocking calls (connect, write, read) happen on
// the I/O threads. Every command has a deadline: the socket's SO_RCVTIMEO/SO_SNDTIMEO bound a
// written command, and the I/O thread fails commands that waited for a connection longer than the
// command timeout. Any I/O or protocol error closes the connection, fails every command in flight
// on it (each caller gets an error; none gets another's reply because replies are matched to the
// in-flight queue strictly in order, and a cancelled caller keeps its slot so its reply is read
// and dropped), and reconnects with capped exponential backoff. An idle thread parks in poll(2)
// on a self-pipe (callers write to it only when the thread is parked) and on its socket, so a
// server that goes away is noticed at once, not by the next caller. The state lives in
// `ConnectionStateMachine`, a value type with no I/O, tested on its own.

public import Logging
public import ServiceLifecycle
import Synchronization

/// An async/await Redis client on hiredis with a small pool of pipelined connections.
///
/// ```swift
/// let redis = RedisClient(configuration: .init(url: try RedisURL("redis://127.0.0.1:6379/0")))
/// try await redis.set("k", "v", expireSeconds: 60)
/// let value = try await redis.get("k")
/// ```
///
/// Connections open at `init` on their own threads and reconnect by themselves. Run the client as
/// a swift-service-lifecycle `Service` (``run()`` closes it on graceful shutdown), or call
/// ``shutdown()``. Commands sent before the first connection is up wait for it, bounded by the
/// command timeout.
public final class RedisClient: Sendable, Service {
    /// The configuration the client was created with.
    public let configuration: RedisConfiguration
    private let backend: Backend
    /// Connections owned by SwiftNIO event loops, for completion callers on them (one server only).
    private let loopConnections: RedisLoopConnections?
    private let logger: Logger
    private let running = Atomic<Bool>(false)

    /// Creates the client and starts connecting.
    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "gatehouse.redis")) {
        self.configuration = configuration
        self.logger = logger
        if case .cluster = configuration.url.endpoint {
            self.backend = .cluster(RedisClusterRouter(configuration: configuration, logger: logger))
        } else {
            self.backend = .pool(RedisConnectionPool(configuration: configuration, logger: logger))
        }
        self.loopConnections = configuration.eventLoopConnections && RedisLoopConnections.serves(configuration)
            ? RedisLoopConnections(configuration: configuration, logger: logger) : nil
    }

    /// One server (`redis://`, `unix://`, `redis-sentinel://`): a pool of pipelined connections.
    /// A Redis Cluster (`redis-cluster://`): a router with one pipelined connection per master.
    private enum Backend: Sendable {
        case pool(RedisConnectionPool)
        case cluster(RedisClusterRouter)
    }

    /// Whether the client talks to a Redis Cluster (`redis-cluster://`): keys of different hash
    /// tags may then live on different servers, and one script cannot name them together.
    public var isCluster: Bool { self.clusterRouter != nil }

    /// The cluster router, for a `redis-cluster://` URL.
    package var clusterRouter: RedisClusterRouter? {
        if case .cluster(let router) = self.backend { return router }
        return nil
    }

    /// Creates a client for a `redis://`, `unix://`, `redis-sentinel://` or `redis-cluster://` URL
    /// with default settings.
    public convenience init(url: String, logger: Logger = Logger(label: "gatehouse.redis")) throws(RedisError) {
        self.init(configuration: RedisConfiguration(url: try RedisURL(url)), logger: logger)
    }

    deinit {
        // The I/O threads hold their connections, not the client: without this they would
        // outlive a client that was never shut down.
        self.loopConnections?.closeSoon()
        switch self.backend {
        case .pool(let pool): pool.close()
        case .cluster(let router): router.close()
        }
    }

    /// Whether at least one connection is up (for readiness checks); on a cluster, also that the
    /// slot map is known.
    public var isConnected: Bool {
        switch self.backend {
        case .pool(let pool): pool.isConnected
        case .cluster(let router): router.isConnected
        }
    }

    /// Sends one command and returns its reply.
    ///
    /// - Throws: ``RedisError`` with ``RedisError/Code/serverError`` for an error reply;
    ///   ``RedisError/Code/connectionUnavailable`` if no connection could send it in time (not
    ///   sent, safe to retry); ``RedisError/Code/connectionLost`` or ``RedisError/Code/timeout``
    ///   if it was sent and the connection failed (outcome unknown); `CancellationError` if the
    ///   task was cancelled (the command may still run; its reply is dropped).
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        let reply: RedisValue
        switch self.backend {
        case .pool(let pool): reply = try await pool.pick().execute(command.bytes)
        case .cluster(let router): reply = try await router.execute(command.bytes)
        }
        if case .error(let message) = reply {
            throw RedisError(.serverError, message)
        }
        return reply
    }

    /// ``send(_:)-(RedisCommand)`` for a caller outside Swift concurrency (an event loop's
    /// handler): `completion` gets the reply, or the error ``send(_:)-(RedisCommand)`` would throw,
    /// bounded by the command timeout; not cancellable. Called on an event loop of a
    /// `MultiThreadedEventLoopGroup`, the command goes on that loop's own connection (one fixed
    /// server, ``RedisConfiguration/eventLoopConnections``, once it is up) and `completion` runs
    /// on the loop; otherwise it runs on the pool's I/O thread (or at once, for a closed client),
    /// so it must only hand the result on.
    public func send(_ command: RedisCommand, completion: @escaping @Sendable (Result<RedisValue, any Error>) -> Void) {
        let handOn: @Sendable (Result<RedisValue, any Error>) -> Void = { result in
            if case .success(.error(let message)) = result {
                completion(.failure(RedisError(.serverError, message)))
            } else {
                completion(result)
            }
        }
        switch self.backend {
        case .pool(let pool):
            if let loopConnections, loopConnections.send(command.bytes, completion: handOn) { return }
            pool.pick().execute(command.bytes, completion: handOn)
        case .cluster(let router): router.execute(command.bytes, completion: handOn)
        }
    }

    /// Sends one command given as its arguments: `try await redis.send(["SET", key, bytes])`.
    public func send(_ arguments: [any RedisArgumentConvertible]) async throws -> RedisValue {
        try await self.send(RedisCommand(arguments))
    }

    /// Sends `commands` back to back on one connection, in one write, and returns every reply in
    /// order. Error replies come back as ``RedisValue/error(_:)`` rather than being thrown, so
    /// `MULTI`/`EXEC` and bulk loads can inspect each one.
    ///
    /// On a cluster, a `MULTI` … `EXEC` pipeline goes to the master of its first key (all its keys
    /// must share a slot); any other pipeline is split by master, one write per master, sent
    /// concurrently.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        guard case .pool(let pool) = self.backend else {
            return try await self.clusterRouter!.pipeline(commands)
        }
        if commands.count == 1 {
            return [try await pool.pick().execute(commands[0].bytes)]
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(commands.reduce(0) { $0 + $1.bytes.count })
        for command in commands { bytes.append(contentsOf: command.bytes) }
        let reply = try await pool.pick().execute(bytes, replyCount: commands.count)
        guard case .array(let replies) = reply else {
            throw RedisError(.unexpectedReply, "a pipeline did not return one reply per command")
        }
        return replies
    }

    /// Runs until graceful shutdown or cancellation, then closes the connections and waits for
    /// their threads (queued commands are still answered first, bounded by the command timeout).
    public func run() async throws {
        precondition(!self.running.exchange(true, ordering: .relaxed), "RedisClient.run() may be called only once")
        // Sleep until graceful shutdown or cancellation ends the sleep; both mean "close now".
        try? await cancelWhenGracefulShutdown {
            while true { try await Task.sleep(for: .seconds(86_400)) }
        }
        await self.shutdown()
    }

    /// Stops accepting commands, lets queued and in-flight ones finish (bounded by the command
    /// timeout) and waits for the I/O threads to end. New commands fail with
    /// ``RedisError/Code/clientClosed``.
    public func shutdown() async {
        switch self.backend {
        case .pool(let pool):
            await self.loopConnections?.close()
            pool.close()
            await pool.waitUntilClosed()
        case .cluster(let router):
            router.close()
            await router.waitUntilClosed()
        }
    }
}
