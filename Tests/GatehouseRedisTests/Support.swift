import Dispatch
import GatehouseRedis
import GatehouseTesting
import Synchronization
import Testing

/// Runs `body` with a client on `configuration` and shuts the client down afterwards, whatever
/// `body` does.
func withClient<T: Sendable>(
    _ configuration: RedisConfiguration,
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = RedisClient(configuration: configuration)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

/// Retries `operation` every 50 ms until it succeeds, at most `attempts` times (bounded in count
/// and therefore in time); returns the last error if it never does.
func eventually<T: Sendable>(
    attempts: Int = 100,
    _ operation: () async throws -> T
) async throws -> T {
    var lastError: (any Error)?
    for _ in 0..<attempts {
        do {
            return try await operation()
        } catch {
            lastError = error
            try await Task.sleep(for: .milliseconds(50))
        }
    }
    throw lastError!
}

/// A unique key prefix per test, so tests sharing a server never share keys.
func uniqueKey(_ name: String = #function) -> String {
    "test:\(name):\(UInt64.random(in: 0...UInt64.max))"
}

/// The `RedisError.Code` of `error`, or nil if it is not a `RedisError`.
func redisCode(_ error: any Error) -> RedisError.Code? {
    (error as? RedisError)?.code
}

/// Runs tasks on a dispatch queue of its own instead of Swift's cooperative threads, for the
/// parts of a test that are timed.
///
/// `swift test` runs every suite at once, and on a 2-core machine the cooperative pool has two
/// threads: a suite that blocks them (a synchronous wait for a child process, say) stalls every
/// other task for seconds (over 15 s measured while the CLI and core suites ran). A bound timed
/// on those threads would measure that suite, not the client; on this executor it measures the
/// client.
final class TimingExecutor: TaskExecutor {
    static let shared = TimingExecutor()
    private let queue = DispatchQueue(label: "gatehouse.redis-tests.timing")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

/// Runs `body`, and the child tasks it starts, on ``TimingExecutor``.
func onTimingExecutor<T, E: Error>(_ body: () async throws(E) -> T) async throws(E) -> T {
    try await withTaskExecutorPreference(TimingExecutor.shared, operation: body)
}

/// Measures how long `body` takes, run on ``TimingExecutor``.
func elapsed<E: Error>(_ body: () async throws(E) -> Void) async throws(E) -> Duration {
    try await onTimingExecutor { () async throws(E) -> Duration in
        let start = ContinuousClock.now
        try await body()
        return ContinuousClock.now - start
    }
}

/// A counter that concurrent child tasks can share (an `Atomic` cannot be captured by an
/// escaping closure).
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { self.value.add(1, ordering: .relaxed) }
    var count: Int { self.value.load(ordering: .relaxed) }
}

/// A list that concurrent child tasks can append to.
final class SharedList<Element: Sendable>: Sendable {
    private let elements = Mutex<[Element]>([])
    func append(_ element: Element) { self.elements.withLock { $0.append(element) } }
    var all: [Element] { self.elements.withLock { $0 } }
}

/// Waits until `condition` holds, checking every 10 ms for at most `timeout`; returns whether it
/// came to hold.
func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(10))
    }
    return true
}
