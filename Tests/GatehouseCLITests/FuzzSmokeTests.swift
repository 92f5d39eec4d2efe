import Foundation
import GatehouseTesting
import Testing

/// A short run of every fuzz target (`scripts/fuzz.sh --all --seconds 5`): the fuzz package
/// builds with libFuzzer and AddressSanitizer, every target runs its committed seeds and a few
/// seconds of mutations without a crash, a sanitizer report or a broken invariant, and executes
/// inputs. The long runs are by hand (`scripts/fuzz.sh --seconds N`).
///
/// The first build of fuzz/ compiles the root's modules and their dependencies again, in release
/// with the sanitizers: this test then takes about 12 minutes on a shared 2-core machine; after
/// that the build is incremental and the test takes about 90 seconds.
@Suite("Fuzz targets, a short run", .timeLimit(.minutes(40)))
struct FuzzSmokeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = root.appendingPathComponent("scripts/fuzz.sh").path

    @Test("scripts/fuzz.sh --all --seconds 5: every target builds, runs without a crash and executes inputs")
    func shortRun() async throws {
        let list = try await Program.run("/bin/bash", [Self.script, "--list"], timeout: .seconds(30))
        try #require(list.status == 0, "\(list.stdout)\(list.stderr)")
        let targets = list.stdout.split(separator: "\n").map(String.init)
        #expect(Set(targets).isSuperset(of: ["cbor", "token", "json", "base", "otpauth", "smtp", "resp", "fastpath"]), "\(targets)")

        // Bounded: a cold build plus 8 runs of 5 s fit well within this; past it the script is
        // stopped and the test fails with what it printed.
        let result = try await Program.run("/bin/bash", [Self.script, "--all", "--seconds", "5"], mergingErrors: true, timeout: .seconds(35 * 60))
        let output = result.stdout
        try #require(!result.timedOut, "scripts/fuzz.sh did not finish within 35 minutes:\n\(output.suffix(20_000))")
        try #require(result.status == 0, "scripts/fuzz.sh failed (exit \(result.status)):\n\(output.suffix(20_000))")
        for target in targets {
            // `<name>: executed <N> inputs in <S>s, crashes: 0`
            let summary = try #require(output.split(separator: "\n").first { $0.hasPrefix("\(target): executed ") },
                                       "no summary for \(target):\n\(output.suffix(20_000))")
            let words = summary.split(separator: " ")
            let executed = words.count > 2 ? Int(words[2]) : nil
            #expect((executed ?? 0) > 0, "\(target) executed no input: \(summary)")
            #expect(summary.hasSuffix("crashes: 0"), "\(summary)")
        }
    }
}
