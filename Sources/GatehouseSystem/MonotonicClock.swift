#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Monotonic time (CLOCK_MONOTONIC), for deadlines, intervals and rate windows that wall-clock
/// jumps must not move. The one reading of it in the package.
package enum MonotonicClock {
    /// Nanoseconds since an arbitrary start (the boot).
    package static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Whole seconds since the same start.
    package static func seconds() -> Int64 { Int64(now() / 1_000_000_000) }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to 0…UInt64.max.
    package var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        let (product, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        return product &+ UInt64(attoseconds / 1_000_000_000)
    }
}
