/// Collects the samples of one benchmark program and prints them: a table, then one line per
/// target (`RATIO …` / `ALLOC …`, each ending PASS or FAIL), optionally a JSON summary.
public struct Report: Sendable {
    /// How a target's value is printed.
    public enum Style: Sendable {
        /// `14.2x`
        case times
        /// `0.63`
        case fraction
        /// `2.00`, compared with `<=`
        case atMost
    }

    struct Series {
        var name: String
        var note: String
        var samples: [Sample]
    }

    struct Target {
        var kind: String  // RATIO or ALLOC
        var name: String
        var value: Double
        var target: Double?
        var style: Style
        var detail: String

        var passed: Bool? {
            guard let target, value.isFinite else { return target == nil ? nil : false }
            return style == .atMost ? value <= target : value >= target
        }
    }

    /// The program's title, printed as a heading.
    public let title: String
    private var series: [Series] = []
    private var targets: [Target] = []
    private var notes: [(String, String)] = []

    /// Creates an empty report.
    public init(title: String) { self.title = title }

    /// Appends `sample` to the series `name` (created on first use, in that order).
    public mutating func add(_ name: String, _ sample: Sample, note: String = "") {
        if let i = series.firstIndex(where: { $0.name == name }) {
            series[i].samples.append(sample)
        } else {
            series.append(Series(name: name, note: note, samples: [sample]))
        }
    }

    /// Median ops per CPU second of `name`.
    public func medianOps(_ name: String) -> Double {
        median(samples(name).map(\.opsPerCPUSecond))
    }

    /// Median ops per wall second of `name`.
    public func medianWallOps(_ name: String) -> Double {
        median(samples(name).map(\.opsPerWallSecond))
    }

    private func samples(_ name: String) -> [Sample] {
        series.first(where: { $0.name == name })?.samples ?? []
    }

    /// Adds a ratio target: the median over rounds of `numerator / denominator` measured in the
    /// same round (rounds are interleaved, so each pair saw the same machine conditions).
    /// Returns the ratio.
    @discardableResult
    public mutating func ratio(_ name: String, _ numerator: String, over denominator: String, target: Double?, style: Style) -> Double {
        let a = samples(numerator), b = samples(denominator)
        let perRound = zip(a, b).map { $0.opsPerCPUSecond / $1.opsPerCPUSecond }
        let wall = median(zip(a, b).map { $0.opsPerWallSecond / $1.opsPerWallSecond })
        let value = perRound.isEmpty ? .nan : median(perRound)
        let detail = "\(numerator) / \(denominator), CPU-time basis, median of \(perRound.count) rounds; wall basis \(format(wall, style))"
        targets.append(Target(kind: "RATIO", name: name, value: value, target: target, style: style, detail: detail))
        return value
    }

    /// Adds an allocations-per-operation line (target compared with `<=`; nil: information only).
    public mutating func allocations(_ name: String, _ value: Double, target: Double?) {
        targets.append(Target(kind: "ALLOC", name: name, value: value, target: target, style: .atMost, detail: "malloc-family calls per operation"))
    }

    /// Adds a free-form note (printed under the table and included in the JSON).
    public mutating func note(_ key: String, _ value: String) {
        notes.append((key, value))
    }

    /// True when every line with a target passed.
    public var allPassed: Bool { targets.allSatisfy { $0.passed != false } }

    private func format(_ value: Double, _ style: Style) -> String {
        switch style {
        case .times: "\(fixed(value, 1))x"
        case .fraction, .atMost: fixed(value, 2)
        }
    }

    /// Prints the table, the notes and the target lines.
    public func print() {
        Swift.print("== \(title) ==")
        let header = ["benchmark", "ops/s (CPU)", "ops/s (wall)", "ns/op (CPU)", "min..max ops/s (CPU)", "rounds"]
        var rows: [[String]] = [header]
        for s in series {
            let cpu = s.samples.map(\.opsPerCPUSecond)
            let m = median(cpu)
            rows.append([
                s.name, grouped(m), grouped(median(s.samples.map(\.opsPerWallSecond))),
                m > 0 ? fixed(1e9 / m, 1) : "-",
                "\(grouped(cpu.min() ?? 0))..\(grouped(cpu.max() ?? 0))", "\(s.samples.count)",
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for (r, row) in rows.enumerated() {
            let cells = row.enumerated().map { c, cell in c == 0 ? cell.padding(widths[c]) : cell.leftPadding(widths[c]) }
            Swift.print(cells.joined(separator: "  "))
            if r == 0 { Swift.print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        for s in series where !s.note.isEmpty { Swift.print("  \(s.name): \(s.note)") }
        for (k, v) in notes { Swift.print("  \(k): \(v)") }
        Swift.print("")
        for t in targets {
            var line = "\(t.kind) \(t.name) = \(format(t.value, t.style))"
            if let target = t.target {
                let op = t.style == .atMost ? "<=" : ">="
                let targetText = t.style == .times ? "\(fixed(target, 0))x" : fixed(target, t.style == .atMost ? 0 : 2)
                line += " (target \(op) \(targetText)) \(t.passed == true ? "PASS" : "FAIL")"
            } else {
                line += " (info)"
            }
            Swift.print(line)
        }
    }

    /// A JSON summary of everything printed.
    public func json() -> String {
        var out = "{\"title\":\(quoted(title)),\"series\":["
        out += series.map { s in
            let cpu = s.samples.map(\.opsPerCPUSecond).map { fixed($0, 1) }.joined(separator: ",")
            return "{\"name\":\(quoted(s.name)),\"median_ops_per_cpu_s\":\(fixed(median(s.samples.map(\.opsPerCPUSecond)), 1)),"
                + "\"median_ops_per_wall_s\":\(fixed(median(s.samples.map(\.opsPerWallSecond)), 1)),\"rounds_ops_per_cpu_s\":[\(cpu)]}"
        }.joined(separator: ",")
        out += "],\"targets\":["
        out += targets.map { t in
            "{\"kind\":\(quoted(t.kind)),\"name\":\(quoted(t.name)),\"value\":\(t.value.isFinite ? fixed(t.value, 4) : "null"),"
                + "\"target\":\(t.target.map { fixed($0, 2) } ?? "null"),\"comparison\":\(quoted(t.style == .atMost ? "<=" : ">=")),"
                + "\"pass\":\(t.passed.map { $0 ? "true" : "false" } ?? "null")}"
        }.joined(separator: ",")
        out += "],\"notes\":{"
        out += notes.map { "\(quoted($0.0)):\(quoted($0.1))" }.joined(separator: ",")
        out += "}}"
        return out
    }
}

// MARK: Formatting (no Foundation: keeps the harness free of locale surprises)

/// `value` with `digits` decimals.
public func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "nan" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = Int(rounded / scale)
    let fraction = Int(rounded - Double(whole) * scale)
    var text = (value < 0 && rounded > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(fraction)
        text += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return text
}

/// An integer rendering with thousands separators: `1,234,567`.
public func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "nan" }
    let digits = Array(String(Int(value.rounded())))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(d)
    }
    return out
}

func quoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension String {
    fileprivate func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    fileprivate func leftPadding(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
