import GatehouseSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts the OS threads that own hiredis contexts. Blocking hiredis calls run only here, never
/// on Swift's cooperative thread pool.
enum IOThread {
    /// Runs `body` on a new detached thread with SIGPIPE blocked (``OSThread/detached(_:)``:
    /// hiredis 0.14.1 writes with write(2), so a closed connection would otherwise raise SIGPIPE).
    /// `name` is for the failure message only: Glibc's module does not expose
    /// `pthread_setname_np` without `_GNU_SOURCE`, so the thread itself is unnamed.
    static func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        do throws(OSThread.StartFailure) {
            try OSThread.detached(body)
        } catch {
            fatalError("cannot start a Redis I/O thread \(name): \(error)")
        }
    }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC), for deadlines that wall-clock jumps must not
/// move.
enum MonotonicClock {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to 0…UInt64.max.
    var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        let (product, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        return product &+ UInt64(attoseconds / 1_000_000_000)
    }
}
