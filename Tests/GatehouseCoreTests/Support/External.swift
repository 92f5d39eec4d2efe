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

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let errThread = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        errThread.start()
        let deadline = Date().addingTimeInterval(timeout)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning {
            if Date() > deadline { process.terminate(); break }
            usleep(10_000)
        }
        process.waitUntilExit()
        while !errThread.isFinished { usleep(1_000) }
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A fresh temporary directory, removed by the caller's `defer`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
