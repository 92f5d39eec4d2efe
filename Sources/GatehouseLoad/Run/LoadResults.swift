import Histogram

/// One operation kind's count, successes and latencies (microseconds).
struct LoadKindStats: Sendable {
    var count = 0
    var ok = 0
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)

    mutating func record(ok: Bool, since start: UInt64) {
        count += 1
        if ok { self.ok += 1 }
        let micros = max(1, min((monotonicNanos() &- start) / 1000, 120_000_000))
        _ = histogram.record(micros)
    }

    mutating func merge(_ other: LoadKindStats) {
        count += other.count
        ok += other.ok
        histogram.add(other.histogram)
    }
}

/// One event loop's results; the runner merges them into the report's.
struct LoadWorkerResult: Sendable {
    var kinds: [LoadOp: LoadKindStats] = Dictionary(uniqueKeysWithValues: LoadOp.allCases.map { ($0, LoadKindStats()) })
    var errors: [String: Int] = [:]
    var failures: [String: Int] = [:]
    var skipped: [String: Int] = [:]
    /// Refused codes answered with a throttle (`429`) rather than `401 invalid_code`, per kind.
    var throttled: [String: Int] = [:]
    var transportErrors = 0
    var lastTransportError: String?

    mutating func merge(_ other: LoadWorkerResult) {
        for (op, stats) in other.kinds { kinds[op, default: LoadKindStats()].merge(stats) }
        errors.merge(other.errors, uniquingKeysWith: +)
        failures.merge(other.failures, uniquingKeysWith: +)
        skipped.merge(other.skipped, uniquingKeysWith: +)
        throttled.merge(other.throttled, uniquingKeysWith: +)
        transportErrors += other.transportErrors
        lastTransportError = other.lastTransportError ?? lastTransportError
    }
}

