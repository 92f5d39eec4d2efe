import Glibc

/// Consumes a value so the optimizer cannot drop the work that produced it.
///
/// `@_optimize(none)` keeps the call from being reduced to nothing even under whole-module or
/// cross-module optimization; `@inline(never)` keeps it a real call that takes the value.
@inline(never) @_optimize(none)
public func blackHole<T>(_ value: T) {}

/// Current readings of the two clocks every measurement uses.
struct ClockReading {
    /// CLOCK_MONOTONIC, seconds.
    var wall: Double
    /// CLOCK_PROCESS_CPUTIME_ID, seconds: CPU time of all threads of this process. On a shared,
    /// noisy machine this is the steadier basis (time spent descheduled is not charged), and it is
    /// what `openssl speed` divides by by default (user CPU time; ours adds the negligible system
    /// time of a compute loop).
    var cpu: Double

    static func now() -> ClockReading {
        var w = timespec(), c = timespec()
        clock_gettime(CLOCK_MONOTONIC, &w)
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c)
        return ClockReading(
            wall: Double(w.tv_sec) + Double(w.tv_nsec) / 1e9,
            cpu: Double(c.tv_sec) + Double(c.tv_nsec) / 1e9
        )
    }
}

/// One timed slice: how many operations ran in how much wall and CPU time.
public struct Sample: Sendable {
    /// Operations completed.
    public var operations: Int
    /// Wall-clock seconds.
    public var wallSeconds: Double
    /// Process CPU seconds.
    public var cpuSeconds: Double

    /// Creates a sample.
    public init(operations: Int, wallSeconds: Double, cpuSeconds: Double) {
        self.operations = operations
        self.wallSeconds = wallSeconds
        self.cpuSeconds = cpuSeconds
    }

    /// Operations per CPU second (the basis of every ratio).
    public var opsPerCPUSecond: Double { cpuSeconds > 0 ? Double(operations) / cpuSeconds : 0 }
    /// Operations per wall-clock second (printed for information).
    public var opsPerWallSecond: Double { wallSeconds > 0 ? Double(operations) / wallSeconds : 0 }
}

/// Runs `body(n)` (which must perform `n` operations) in growing batches until `slice` seconds of
/// wall time have passed, after one untimed warm-up batch. Batches double while one takes less
/// than a tenth of the slice, so the per-batch clock reads cost nothing measurable.
public func measure(slice: Double, _ body: (Int) -> Void) -> Sample {
    body(16)  // warm-up: caches, lazy globals, first-touch page faults
    var batch = 16
    var total = Sample(operations: 0, wallSeconds: 0, cpuSeconds: 0)
    while total.wallSeconds < slice {
        let start = ClockReading.now()
        body(batch)
        let end = ClockReading.now()
        total.operations += batch
        total.wallSeconds += end.wall - start.wall
        total.cpuSeconds += end.cpu - start.cpu
        if end.wall - start.wall < slice / 10 { batch *= 2 }
    }
    return total
}

/// `measure(slice:_:)` for async work (each batch runs in the caller's async context).
public func measure(slice: Double, _ body: (Int) async throws -> Void) async rethrows -> Sample {
    try await body(16)
    var batch = 16
    var total = Sample(operations: 0, wallSeconds: 0, cpuSeconds: 0)
    while total.wallSeconds < slice {
        let start = ClockReading.now()
        try await body(batch)
        let end = ClockReading.now()
        total.operations += batch
        total.wallSeconds += end.wall - start.wall
        total.cpuSeconds += end.cpu - start.cpu
        if end.wall - start.wall < slice / 10 { batch *= 2 }
    }
    return total
}

/// The median (mean of the middle two for an even count); 0 for no values.
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
