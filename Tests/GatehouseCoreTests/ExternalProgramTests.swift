import Foundation
import GatehouseTesting
import Testing

/// The fresh-machine rule: every program the tests, scripts and benchmarks start is installed by
/// the README's commands. GatehouseTesting's table and `scripts/bootstrap.sh`'s table must say
/// the same, and everything the suite starts must be present.
@Suite("External programs and scripts/bootstrap.sh")
struct ExternalProgramTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `scripts/bootstrap.sh --table`, one row per program: name, group, source, package.
    static func bootstrapTable() async throws -> [(name: String, group: String, source: String, package: String)] {
        let result = try await External.run("/bin/bash", [root.appendingPathComponent("scripts/bootstrap.sh").path, "--table"])
        #expect(result.status == 0, "bootstrap.sh --table failed: \(result.stderr)")
        return result.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            return fields.count >= 4 ? (fields[0], fields[1], fields[2], fields[3]) : nil
        }
    }

    @Test("bootstrap.sh installs every program in the table, from the same package, in a mode that covers its use")
    func bootstrapInstallsEveryProgram() async throws {
        let rows = try await Self.bootstrapTable()
        #expect(!rows.isEmpty, "bootstrap.sh --table printed no rows")
        for program in ExternalProgram.all {
            guard let row = rows.first(where: { $0.name == program.name }) else {
                Issue.record("scripts/bootstrap.sh never installs \(program.name): add the \(program.source.rawValue) package '\(program.package)' to its table (group \(program.group.rawValue))")
                continue
            }
            #expect(row.source == program.source.rawValue && row.package == program.package,
                    "\(program.name): bootstrap.sh installs \(row.source) package '\(row.package)', the table says \(program.source.rawValue) '\(program.package)'")
            // A mode installs its own group and the ones before it (run < tests < bench).
            let installedBy = ExternalProgram.Group(rawValue: row.group)
            #expect(installedBy != nil, "\(program.name): unknown group '\(row.group)' in bootstrap.sh")
            if let installedBy {
                let order = ExternalProgram.Group.allCases
                #expect(order.firstIndex(of: installedBy)! <= order.firstIndex(of: program.group)!,
                        "\(program.name) is needed by `bootstrap.sh --\(program.group.rawValue)` but installed only by --\(row.group) (package '\(program.package)')")
            }
        }
        let known = Set(ExternalProgram.all.map(\.name))
        for row in rows where !known.contains(row.name) {
            Issue.record("bootstrap.sh installs \(row.name) (\(row.package)), which GatehouseTesting's ExternalProgram table does not name: add it there")
        }
    }

    @Test("every program the suite starts is installed", arguments: ExternalProgram.all.filter { $0.group != .bench })
    func installed(_ program: ExternalProgram) throws {
        // A failure here names the package (ExternalProgram.Missing).
        _ = try External.locate(program)
    }

    @Test("a row that names a file off PATH: present when the file exists; missing, its package is named")
    func absolutePathRows() async throws {
        let paths = ExternalProgram.all.filter { $0.name.hasPrefix("/") }
        #expect(paths.contains(.dovecotLua) && paths.contains(.nginxMail))
        for program in paths {
            #expect(try program.locate() == program.name)
        }
        let script = Self.root.appendingPathComponent("scripts/bootstrap.sh").path
        // Looked up as a file, so no PATH finds it or loses it.
        let present = try await External.run("/usr/bin/env", ["PATH=/nonexistent", "/bin/bash", script, "--require"] + paths.map(\.name))
        #expect(present.status == 0, "\(present.stderr)")
        let missing = ExternalProgram("/nonexistent/gatehouse/module.so", group: .tests, source: .debian, package: "gatehouse-test-module")
        #expect {
            _ = try missing.locate()
        } throws: { error in
            let text = "\(error)"
            return text.contains("'gatehouse-test-module'") && text.contains("does not exist")
        }
    }

    @Test("bootstrap.sh --require names the package of a missing program and exits 1")
    func requireNamesThePackage() async throws {
        let script = Self.root.appendingPathComponent("scripts/bootstrap.sh").path
        let present = try await External.run("/bin/bash", [script, "--require", "redis-server", "python3"])
        #expect(present.status == 0, "\(present.stderr)")
        let unknown = try await External.run("/bin/bash", [script, "--require", "no-such-program"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("not in the table"))
        // A program looked up with a PATH that cannot have it: the message names its package.
        let missing = try await External.run("/usr/bin/env", ["PATH=/nonexistent", "/bin/bash", script, "--require", "zbarimg"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("'zbar-tools'"), "\(missing.stderr)")
    }
}
