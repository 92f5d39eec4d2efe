import Foundation
import GatehouseTesting
import Testing

/// Runs an external program (a real peer: zbarimg, python3 with PyJWT, rsvg-convert) and
/// captures its output. A missing program is a test *failure* with an install hint, never a skip.
struct External {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The program's path, through GatehouseTesting's table of external programs; a missing one
    /// is recorded as a failure naming its package.
    static func locate(_ program: ExternalProgram) throws -> String {
        do {
            return try program.locate()
        } catch {
            Issue.record(Comment(rawValue: error.description))
            throw MissingTool(name: program.name)
        }
    }

    struct MissingTool: Error { var name: String }

    /// Runs the program to completion (``Program/run(_:_:environment:input:mergingErrors:timeout:)``:
    /// its exit is awaited, not polled); past `timeout` it is stopped.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: Duration = .seconds(60)) async throws -> Result {
        let result = try await Program.run(executable, arguments, input: stdin.map { Data($0.utf8) }, timeout: timeout)
        return Result(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// A fresh temporary directory, removed by the caller's `defer`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
