import CMallocCounter

/// Allocation counting through the CMallocCounter interposer linked into every benchmark.
public enum Allocations {
    /// Mean allocation calls per operation over `iterations` runs of `body` (after one untimed
    /// warm-up run, so lazy globals and caches do not count).
    public static func perOperation(iterations: Int, _ body: () -> Void) -> Double {
        body()
        gh_malloc_counting(1)
        let before = gh_malloc_count()
        for _ in 0..<iterations { body() }
        let after = gh_malloc_count()
        gh_malloc_counting(0)
        return Double(after - before) / Double(iterations)
    }

    /// Async variant of `perOperation(iterations:_:)`. Counts every thread of the process, so
    /// executor hops and task bookkeeping are included.
    public static func perOperation(iterations: Int, _ body: () async throws -> Void) async rethrows -> Double {
        try await body()
        gh_malloc_counting(1)
        let before = gh_malloc_count()
        for _ in 0..<iterations { try await body() }
        let after = gh_malloc_count()
        gh_malloc_counting(0)
        return Double(after - before) / Double(iterations)
    }

    /// True when the interposer sees Swift's allocations: 1,000 fresh heap arrays (allocated by
    /// libswiftCore through the dynamic `malloc`) must move the counter by at least 1,000.
    /// A link that kept glibc's `malloc` for the shared libraries would read 0 here.
    public static func interposerWorks() -> Bool {
        let perArray = perOperation(iterations: 1000) {
            let count = Int.random(in: 8...16)  // not a constant: no static or stack promotion
            blackHole(Array(repeating: count, count: count))
        }
        return perArray >= 1
    }
}
