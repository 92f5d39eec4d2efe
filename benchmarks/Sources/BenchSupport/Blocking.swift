import Dispatch
import Synchronization

/// Runs `body` as a task on Swift's concurrency pool and blocks the calling thread until it ends.
///
/// The benchmark programs keep a synchronous `main` so that the Gatehouse loops (all synchronous)
/// run on the main thread without the concurrency runtime starting any thread: that keeps
/// `valgrind --tool=callgrind`, which crashes on this machine once the pool starts, usable for
/// them. Only the async reference (jwt-kit) goes through here. Call it from the main thread only,
/// never from a pool thread (it would block one of the pool's two threads on this machine).
public func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
