import GatehouseService
import Testing

/// The bound on refused-code log lines: a flood is counted, not written, and the next line
/// written says how many were left out.
@Suite("Log budget")
struct LogBudgetTests {
    @Test("at most the budget per window; the first line of a later window carries the count left out")
    func budget() {
        let budget = LogBudget(lines: 3, window: .seconds(10))
        let second: UInt64 = 1_000_000_000
        let start = 5 * second
        let first = (0..<10).map { i in budget.take(now: start + UInt64(i) * second / 10) }
        #expect(first.map(\.write) == [true, true, true] + Array(repeating: false, count: 7))
        #expect(first.allSatisfy { $0.leftOut == 0 })
        // Still inside the window.
        #expect(budget.take(now: start + 9 * second).write == false)
        // A new window: written, with the 8 left out before it; then counting starts again.
        let next = budget.take(now: start + 10 * second)
        #expect(next.write && next.leftOut == 8)
        #expect(budget.take(now: start + 11 * second) == (true, 0))
    }

    @Test("a clock that went backwards starts a new window instead of silencing the log")
    func backwards() {
        let budget = LogBudget(lines: 1, window: .seconds(10))
        #expect(budget.take(now: 50_000_000_000).write)
        #expect(!budget.take(now: 50_000_000_001).write)
        #expect(budget.take(now: 1_000).write)
    }
}
