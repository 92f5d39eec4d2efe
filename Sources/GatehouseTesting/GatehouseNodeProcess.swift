public import Foundation
#if canImport(FoundationNetworking)
public import FoundationNetworking
#endif
import GatehouseSystem
import Glibc

/// A real `gatehouse serve` process for tests and load scripts: started with the given
/// environment on a port it picks itself (listen port 0; the URL is read from its output),
/// with stdout and stderr captured to a log file so tests can check what it logs.
public final class GatehouseNodeProcess: @unchecked Sendable {
    // @unchecked: `pid` and the paths are set once in init; `stop()` may race only with itself,
    // and both calls send signals to a process id that is waited for exactly once (waited flag
    // guarded by the lock).
    public let pid: pid_t
    /// `http://127.0.0.1:<port>`.
    public let baseURL: URL
    /// Captured stdout+stderr.
    public let logPath: String
    private let lock = NSLock()
    private var waited = false

    /// The API keys these helpers configure: one per scope and one with all of them.
    public static let apiKeys = [
        "verify": "verify-key-0123456789abcdef",
        "frontend": "frontend-key-0123456789abcdef",
        "mail": "mail-key-0123456789abcdef",
        "admin": "admin-key-0123456789abcdef",
    ]
    /// `GATEHOUSE_API_KEYS` for `apiKeys`.
    public static var apiKeysVariable: String {
        apiKeys.map { "\($0.key):\($0.key):\($0.value)" }.sorted().joined(separator: ",")
    }

    /// Locates the built `gatehouse` executable next to the running test bundle.
    public static func executable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["GATEHOUSE_BINARY"] { return path }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("gatehouse").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw NodeError("the gatehouse executable was not found next to the test bundle; build it (swift build) or set GATEHOUSE_BINARY")
    }

    /// An error starting or talking to a node.
    public struct NodeError: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Starts a node against `redisURL` with keys in `directory` (created if missing), waits until
    /// `/readyz` answers 200 (bounded by `timeout`).
    public static func start(
        redisURL: String, directory: String, extraEnvironment: [String: String] = [:], timeout: Duration = .seconds(30)
    ) async throws -> GatehouseNodeProcess {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let binary = try executable()
        let keyring = directory + "/keyring.json", dataKey = directory + "/data-key.json"
        if !FileManager.default.fileExists(atPath: keyring) {
            try await run(binary, ["keys", "create", "--file", keyring])
        }
        if !FileManager.default.fileExists(atPath: dataKey) {
            try await run(binary, ["data-key", "create", "--file", dataKey])
        }
        let logPath = directory + "/node-\(UUID().uuidString.prefix(8)).log"
        var environment = [
            "GATEHOUSE_LISTEN": "127.0.0.1:0",
            "GATEHOUSE_REDIS_URL": redisURL,
            "GATEHOUSE_KEYRING_FILE": keyring,
            "GATEHOUSE_DATA_KEY_FILE": dataKey,
            "GATEHOUSE_STATE_DIR": directory + "/state",
            "GATEHOUSE_API_KEYS": apiKeysVariable,
            "GATEHOUSE_ISSUER": "Gatehouse Test",
            "GATEHOUSE_LOG_LEVEL": "info",
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        ]
        environment.merge(extraEnvironment) { $1 }
        let pid: pid_t
        do throws(ChildProcess.SpawnFailure) {
            pid = try ChildProcess.spawn(binary, ["serve"], environment: environment, output: .file(logPath))
        } catch {
            throw NodeError(error.description)
        }
        // Readiness poll for the URL the node prints once it listens (a line in a file, no
        // event): at most one check per 50 ms of `timeout`, and `timeout`. An exit at start ends
        // it early.
        let deadline = ContinuousClock.now + timeout
        var base: URL?
        for _ in 0..<Int(timeout / .milliseconds(50)) where base == nil && ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8),
               let range = text.range(of: "Gatehouse listening on ") {
                let line = text[range.upperBound...].prefix { !$0.isNewline }
                base = URL(string: String(line))
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
            if let status = ChildProcess.reapIfExited(pid) {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw NodeError("gatehouse serve exited early (status \(status)):\n\(log.suffix(2000))")
            }
        }
        guard let base else {
            _ = await ChildProcess.kill(pid)
            throw NodeError("gatehouse serve did not start listening within \(timeout)")
        }
        let node = GatehouseNodeProcess(pid: pid, baseURL: base, logPath: logPath)
        // Readiness poll of /readyz (no event either): at most one check per 100 ms of
        // `timeout`, and the same deadline.
        for _ in 0..<Int(timeout / .milliseconds(100)) where ContinuousClock.now < deadline {
            if let (status, _, _) = try? await TestHTTP.request(node.baseURL.appendingPathComponent("readyz")), status == 200 { return node }
            try await Task.sleep(for: .milliseconds(100))
        }
        await node.kill()
        throw NodeError("gatehouse serve did not become ready within \(timeout)")
    }

    private init(pid: pid_t, baseURL: URL, logPath: String) {
        self.pid = pid
        self.baseURL = baseURL
        self.logPath = logPath
    }

    deinit {
        guard claimWait() else { return }
        ChildProcess.killBlocking(pid)
    }

    /// The captured log so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM and wait (graceful shutdown), SIGKILL after 10 s. The exit is waited for on a
    /// thread of its own (``ChildProcess/terminate(_:grace:)``), not by polling.
    /// Returns the wait status (nil when another call waits for the process): a node that did not
    /// exit within 10 s of SIGTERM was SIGKILLed.
    @discardableResult
    public func stop() async -> Int32? {
        guard claimWait() else { return nil }
        return await ChildProcess.terminate(pid, grace: .seconds(10))
    }

    /// Whether this call is the one that waits for the process (each pid is waited for once).
    private func claimWait() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if waited { return false }
        waited = true
        return true
    }

    /// SIGKILL at once; returns once the node has exited (``ChildProcess/kill(_:)``).
    public func kill() async {
        guard claimWait() else { return }
        _ = await ChildProcess.kill(pid)
    }

    /// Runs a command to completion (the CLI for key files), at most 60 s.
    static func run(_ binary: String, _ arguments: [String]) async throws {
        let result = try await Program.run(binary, arguments, timeout: .seconds(60))
        guard result.status == 0, !result.timedOut else {
            throw NodeError(
                "\(binary) \(arguments.joined(separator: " ")) failed with status \(result.status)\(result.timedOut ? " (stopped after 60 s)" : ""): \(result.stderr)"
            )
        }
    }
}

/// A small HTTP client over URLSession for tests (no cookies, no caching, many connections).
public enum TestHTTP {
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = 30
        configuration.httpShouldSetCookies = false
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration)
    }()

    /// One request; returns status, headers and body.
    public static func request(
        _ url: URL, method: String = "GET", headers: [String: String] = [:], body: Data? = nil
    ) async throws -> (Int, [String: String], Data) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw GatehouseNodeProcess.NodeError("not an HTTP response") }
        var fields: [String: String] = [:]
        for (k, v) in http.allHeaderFields { fields[String(describing: k).lowercased()] = String(describing: v) }
        return (http.statusCode, fields, data)
    }
}
