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

/// Measures how long `body` takes.
func elapsed(_ body: () async throws -> Void) async rethrows -> Duration {
    let start = ContinuousClock.now
    try await body()
    return ContinuousClock.now - start
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
func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(10))
    }
    return true
}
