#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts the OS threads that own hiredis contexts. Blocking hiredis calls run only here, never
/// on Swift's cooperative thread pool.
enum IOThread {
    private final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Runs `body` on a new detached thread. (`name` is kept for debugging: Glibc's module does
    /// not expose `pthread_setname_np` without `_GNU_SOURCE`.)
    static func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name: name, body: body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            &attributes,
            { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                // hiredis 0.14.1 writes with write(2), not send(MSG_NOSIGNAL): a write to a
                // connection the server has closed raises SIGPIPE, which kills the process by
                // default. SIGPIPE is sent to the writing thread, so blocking it here turns it
                // into a plain EPIPE error without changing the process's signal disposition.
                var signals = sigset_t()
                sigemptyset(&signals)
                sigaddset(&signals, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &signals, nil)
                start.body()
                return nil
            },
            start.toOpaque()
        )
        if status != 0 {
            start.release()
            fatalError("cannot start a Redis I/O thread: pthread_create returned \(status)")
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
