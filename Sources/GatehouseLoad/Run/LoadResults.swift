import Histogram
import GatehouseSystem

/// One operation kind's count, successes and latencies (microseconds).
package struct LoadKindStats: Sendable {
    package var count = 0
    package var ok = 0
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)

    package init() {}

    mutating func record(ok: Bool, since start: UInt64) {
        record(ok: ok, micros: (MonotonicClock.now() &- start) / 1000)
    }

    /// One operation that took `micros` microseconds (kept within 1 µs … 120 s).
    package mutating func record(ok: Bool, micros: UInt64) {
        count += 1
        if ok { self.ok += 1 }
        _ = histogram.record(max(1, min(micros, 120_000_000)))
    }

    /// HdrHistogram's percentile ticks per half distance to 100% (its own default, as in
    /// `outputPercentileDistribution`): 0, 10, … 50, then 55, … 75, then 77.5, … 87.5, …
    static let curveTicksPerHalfDistance = 5

    /// The latency distribution as HdrHistogram's percentile iteration walks it: (percentile,
    /// milliseconds) pairs with the percentile in 0…100, both never decreasing, from the minimum at
    /// 0 to the maximum at 100; the ticks grow finer towards 100 and stop where the recorded
    /// operations run out (about 5 × log2(count) pairs). Empty when nothing was recorded.
    package var latencyCurve: [(percentile: Double, ms: Double)] {
        guard histogram.totalCount > 0 else { return [] }
        return histogram.percentiles(ticksPerHalfDistance: Self.curveTicksPerHalfDistance).map {
            (percentile: $0.percentileLevelIteratedTo, ms: Double($0.value) / 1000)
        }
    }

    mutating func merge(_ other: LoadKindStats) {
        count += other.count
        ok += other.ok
        histogram.add(other.histogram)
    }
}

/// One event loop's results; the runner merges them into the report's.
package struct LoadWorkerResult: Sendable {
    package var kinds: [LoadOp: LoadKindStats] = Dictionary(uniqueKeysWithValues: LoadOp.allCases.map { ($0, LoadKindStats()) })
    var errors: [String: Int] = [:]
    var failures: [String: Int] = [:]
    var skipped: [String: Int] = [:]
    /// Refused codes answered with a throttle (`429`) rather than `401 invalid_code`, per kind.
    var throttled: [String: Int] = [:]
    var transportErrors = 0
    var lastTransportError: String?
    /// The first few valid codes a node refused, as user, step and answer (never the code), so
    /// that a refusal can be looked up in the user's security events.
    var refusedValid: [String] = []
    static let refusedValidKept = 5

    package init() {}

    mutating func merge(_ other: LoadWorkerResult) {
        for (op, stats) in other.kinds { kinds[op, default: LoadKindStats()].merge(stats) }
        errors.merge(other.errors, uniquingKeysWith: +)
        failures.merge(other.failures, uniquingKeysWith: +)
        skipped.merge(other.skipped, uniquingKeysWith: +)
        throttled.merge(other.throttled, uniquingKeysWith: +)
        transportErrors += other.transportErrors
        lastTransportError = other.lastTransportError ?? lastTransportError
        refusedValid = Array((refusedValid + other.refusedValid).prefix(Self.refusedValidKept))
    }
}

