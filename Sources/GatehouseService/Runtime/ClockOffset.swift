import Synchronization

/// Seconds added to every clock the service reads (token times and the Redis-corrected time of
/// OTP steps). A served node has none; an in-process test moves it forward to reach a fresh TOTP
/// step, an expiry or the end of a lifetime without waiting for the wall clock. Redis's own clock
/// inside the scripts (throttle windows) is not moved.
public final class ClockOffset: Sendable {
    private let value = Atomic<Int64>(0)

    /// No offset yet.
    public init() {}

    /// The offset in seconds.
    public var seconds: Int64 { value.load(ordering: .relaxed) }

    /// Moves the clocks forward (or back) by `seconds`.
    public func advance(by seconds: Int64) {
        value.add(seconds, ordering: .relaxed)
    }
}
