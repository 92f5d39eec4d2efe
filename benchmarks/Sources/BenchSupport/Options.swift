import Glibc

/// Command-line options shared by the benchmark programs.
public struct Options: Sendable {
    /// Interleaved rounds; every figure is a median over them (at least 3).
    public var rounds = 5
    /// Seconds of wall time per measurement slice.
    public var slice = 0.5
    /// `-seconds` for each `openssl speed` run.
    public var opensslSeconds = 3
    /// Operations averaged for the allocation counts.
    public var allocationIterations = 10_000
    /// Print a JSON summary after the table.
    public var json = false
    /// Run only this series, once, for one slice (for `perf record` / callgrind), and print nothing
    /// else of note.
    public var profile: String?

    /// Parses `CommandLine.arguments`; prints usage and exits on `--help` or a bad option.
    public static func parse(program: String) -> Options {
        var options = Options()
        var args = CommandLine.arguments.dropFirst().makeIterator()
        func value(_ flag: String) -> Double {
            guard let text = args.next(), let v = Double(text), v > 0 else { usage(program, "\(flag) needs a positive number") }
            return v
        }
        while let arg = args.next() {
            switch arg {
            case "--rounds": options.rounds = max(3, Int(value(arg)))
            case "--slice": options.slice = value(arg)
            case "--openssl-seconds": options.opensslSeconds = max(1, Int(value(arg)))
            case "--alloc-iterations": options.allocationIterations = Int(value(arg))
            case "--quick": options.rounds = 3; options.slice = 0.25; options.opensslSeconds = 1
            case "--json": options.json = true
            case "--profile":
                guard let name = args.next() else { usage(program, "--profile needs a series name") }
                options.profile = name
            case "-h", "--help": usage(program, nil)
            default: usage(program, "unknown option \(arg)")
            }
        }
        return options
    }

    private static func usage(_ program: String, _ error: String?) -> Never {
        if let error { print("error: \(error)") }
        print("""
            usage: \(program) [--rounds N (>=3, default 5)] [--slice SECONDS (default 0.5)]
                   [--openssl-seconds N (default 3)] [--alloc-iterations N (default 10000)]
                   [--quick] [--json] [--profile SERIES (run one series for one slice)]
            """)
        exit(error == nil ? 0 : 2)
    }
}
