import GatehouseSystem
import Synchronization

/// A bound on how many lines of one kind a node logs: at most `lines` per `window`, the rest only
/// counted, and the first line let through after a full window says how many were left out. A
/// flood of wrong codes then costs a counter per attempt, not a formatted line written to the
/// log, while one person mistyping a code is still logged line by line. (Every failure is also
/// a security event in Redis, which is where the full record is kept.)
package final class LogBudget: Sendable {
    private struct State {
        var windowStart: UInt64?
        var used = 0
        var suppressed = 0
    }
    private let state = Mutex(State())
    package let lines: Int
    package let windowNanoseconds: UInt64

    package init(lines: Int, window: Duration) {
        self.lines = lines
        self.windowNanoseconds = window.nanosecondsClamped
    }

    /// ``take(now:)`` at this moment.
    package func take() -> (write: Bool, leftOut: Int) { take(now: MonotonicClock.now()) }

    /// Whether a line may be written at `now` (monotonic nanoseconds), and how many were left out
    /// in the windows since the last line written (to be said in this one).
    package func take(now: UInt64) -> (write: Bool, leftOut: Int) {
        state.withLock { s in
            let inWindow = s.windowStart.map { now >= $0 && now - $0 < windowNanoseconds } ?? false
            if !inWindow {
                s.windowStart = now
                s.used = 0
            }
            guard s.used < lines else {
                s.suppressed += 1
                return (false, 0)
            }
            s.used += 1
            defer { s.suppressed = 0 }
            return (true, s.suppressed)
        }
    }
}
