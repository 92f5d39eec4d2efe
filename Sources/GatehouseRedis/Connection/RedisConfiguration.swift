import GatehouseSystem

/// How a ``RedisClient`` connects, times out and reconnects. Defaults suit a Redis on the same
/// network; every field can be changed after `init`.
public struct RedisConfiguration: Sendable {
    /// Limits that protect the client from a misbehaving or overloaded server.
    public struct Limits: Sendable {
        /// The most bytes one reply may take on the wire (nested elements included) before the
        /// connection is closed with ``RedisError/Code/replyTooLarge``. Default 64 MiB.
        public var maxReplyBytes: Int
        /// The most commands written in one batch; the rest wait for the next one. Default 512.
        public var maxBatchCommands: Int
        /// The most bytes written in one batch (a single larger command still goes alone).
        /// Default 1 MiB.
        public var maxBatchBytes: Int

        /// Creates limits; see each property for the defaults.
        public init(maxReplyBytes: Int = 64 << 20, maxBatchCommands: Int = 512, maxBatchBytes: Int = 1 << 20) {
            self.maxReplyBytes = maxReplyBytes
            self.maxBatchCommands = maxBatchCommands
            self.maxBatchBytes = maxBatchBytes
        }
    }

    /// Exponential backoff between reconnect attempts.
    public struct Backoff: Sendable {
        /// The wait after the first failed attempt (the first attempt after a loss is immediate).
        public var initial: Duration
        /// The cap on the wait.
        public var maximum: Duration
        /// Creates a backoff policy that doubles from `initial` up to `maximum`, with ±20% jitter.
        public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
            self.initial = initial
            self.maximum = maximum
        }

        /// The wait (nanoseconds) after `failures` failed attempts in a row (1 or more).
        func delay(afterFailures failures: Int) -> UInt64 {
            let initial = self.initial.nanosecondsClamped
            let maximum = self.maximum.nanosecondsClamped
            let exponent = min(max(failures, 1) - 1, 30)
            let base = min(maximum, initial.multipliedReportingOverflow(by: 1 << UInt64(exponent)).overflow ? maximum : initial << UInt64(exponent))
            // ±20% jitter keeps a fleet of nodes from reconnecting in lockstep after an outage.
            let jitter = Double.random(in: 0.8...1.2)
            return UInt64(Double(base) * jitter)
        }
    }

    /// The server and credentials.
    public var url: RedisURL
    /// The number of connections (each with its own I/O thread). Two keep one server busy:
    /// while one connection waits for its batch's replies the other is writing the next batch.
    public var poolSize: Int
    /// The limit on establishing a TCP/Unix connection.
    public var connectTimeout: Duration
    /// A command fails with ``RedisError/Code/timeout`` (and its connection is closed) when the
    /// server sends nothing for this long after it was written; a command that cannot be
    /// written because no connection is up fails with ``RedisError/Code/connectionUnavailable``
    /// this long after it was queued.
    public var commandTimeout: Duration
    /// Reconnect pacing.
    public var backoff: Backoff
    /// Size limits.
    public var limits: Limits
    /// A name sent with `CLIENT SETNAME` on every connect, to spot the connections in
    /// `CLIENT LIST`; `nil` sends none.
    public var clientName: String?
    /// Whether a caller on a SwiftNIO event loop (``RedisClient/send(_:completion:)``) sends on a
    /// connection of that loop's own, for one fixed server (`redis://`, `unix://`). Default true.
    public var eventLoopConnections: Bool = true

    /// Creates a configuration for `url`; see each property for the defaults.
    public init(
        url: RedisURL,
        poolSize: Int = 2,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        backoff: Backoff = .init(),
        limits: Limits = .init(),
        clientName: String? = "gatehouse"
    ) {
        precondition(poolSize >= 1, "a Redis pool needs at least one connection")
        // A zero socket timeout means "block forever" to the kernel: every command needs a deadline.
        precondition(commandTimeout > .zero && connectTimeout > .zero, "Redis timeouts must be positive")
        self.url = url
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.backoff = backoff
        self.limits = limits
        self.clientName = clientName
    }
}
