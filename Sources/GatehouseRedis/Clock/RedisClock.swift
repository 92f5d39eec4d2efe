import GatehouseSystem
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Redis's clock, as seen from this node: samples `TIME` and keeps the offset between the
/// server's clock and the local one, so every node checks OTP codes against one clock
/// however well its own is synchronised.
///
/// Each sample takes three `TIME` round trips and keeps the one with the shortest round trip;
/// the server's time is compared with the local time at the midpoint of that round trip, so the
/// error is at most half of it.
public final class RedisClock: Sendable, Service {
    /// One measurement of the offset.
    public struct Sample: Sendable, Hashable {
        /// Redis time minus local time, in microseconds.
        public var offsetMicroseconds: Int64
        /// The round trip of the `TIME` call the offset came from, in microseconds.
        public var roundTripMicroseconds: Int64
        /// The local time (µs since the Unix epoch) when it was taken.
        public var takenAtMicroseconds: Int64
    }

    private let client: RedisClient
    private let interval: Duration
    private let maximumSaneOffset: Duration
    private let localTime: @Sendable () -> Int64
    private let logger: Logger
    private let latest = Mutex<Sample?>(nil)

    /// Creates the clock.
    ///
    /// - Parameters:
    ///   - client: where to send `TIME`.
    ///   - interval: how often ``run()`` samples.
    ///   - maximumSaneOffset: beyond this the offset is reported as not sane (readiness fails):
    ///     one node's clock, or Redis's, is badly wrong and someone should look.
    ///   - localTime: the local wall clock in µs since the Unix epoch (injectable for tests).
    public init(
        client: RedisClient,
        interval: Duration = .seconds(30),
        maximumSaneOffset: Duration = .seconds(30),
        localTime: @escaping @Sendable () -> Int64 = RedisClock.systemMicroseconds,
        logger: Logger = Logger(label: "gatehouse.redis.clock")
    ) {
        self.client = client
        self.interval = interval
        self.maximumSaneOffset = maximumSaneOffset
        self.localTime = localTime
        self.logger = logger
    }

    /// The system's wall clock (CLOCK_REALTIME) in µs since the Unix epoch.
    @Sendable
    public static func systemMicroseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
    }

    /// The latest sample, `nil` before the first.
    public var lastSample: Sample? { self.latest.withLock { $0 } }

    /// Redis time minus local time; `nil` before the first sample.
    public var offset: Duration? {
        self.lastSample.map { .microseconds($0.offsetMicroseconds) }
    }

    /// Whether a sample exists and its offset is within the sane limit.
    public var isSane: Bool {
        guard let offset = self.offset else { return false }
        return offset <= self.maximumSaneOffset && offset >= .zero - self.maximumSaneOffset
    }

    /// The current time by Redis's clock, in µs since the Unix epoch (the local clock until the
    /// first sample).
    public func nowMicroseconds() -> Int64 {
        self.localTime() + (self.lastSample?.offsetMicroseconds ?? 0)
    }

    /// The current time by Redis's clock, in whole seconds since the Unix epoch (what TOTP uses).
    public func nowSeconds() -> Int64 {
        self.nowMicroseconds() / 1_000_000
    }

    /// Takes a sample now and makes it the current one.
    @discardableResult
    public func sample() async throws -> Sample {
        var best: Sample?
        for _ in 0..<3 {
            let startLocal = self.localTime()
            let startMonotonic = MonotonicClock.now()
            let redisTime = try await self.client.time()
            let roundTrip = Int64((MonotonicClock.now() - startMonotonic) / 1000)
            let sample = Sample(
                offsetMicroseconds: redisTime - (startLocal + roundTrip / 2),
                roundTripMicroseconds: roundTrip,
                takenAtMicroseconds: startLocal
            )
            if best == nil || sample.roundTripMicroseconds < best!.roundTripMicroseconds {
                best = sample
            }
        }
        let sample = best!
        self.latest.withLock { $0 = sample }
        return sample
    }

    /// Samples at once and then every `interval` until cancelled or gracefully shut down. A
    /// failed sample is logged and the previous one kept.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let sample = try await self.sample()
                    if !self.isSane {
                        self.logger.warning(
                            "Redis clock offset is beyond the sane limit",
                            metadata: ["offset_us": "\(sample.offsetMicroseconds)"]
                        )
                    }
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("sampling Redis TIME failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: self.interval)
            }
        }
    }
}
