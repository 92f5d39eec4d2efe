import Foundation
import GatehouseApp
import GatehouseService
import GatehouseTesting
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization

/// What the tests need of a node, whether it runs in this process or as a `gatehouse serve`
/// process (kept for what only a process can show: signals, start-up, scripts).
protocol TestNode: Sendable {
    /// `http://127.0.0.1:<port>`.
    var baseURL: URL { get }
    /// Everything the node logged so far.
    var log: String { get }
    /// Where the log is, for failure messages.
    var logPath: String { get }
    /// Stops the node gracefully and waits for it.
    func shutdown() async
}

extension GatehouseNodeProcess: TestNode {
    func shutdown() async { await self.stop() }
}

/// A node built with `buildApplication` and run in this process by HummingbirdTesting's live
/// test framework (the application's own server, on a port of its own), against a real Redis:
/// the same HTTP server, fast path, service and Redis client as `gatehouse serve`, without a
/// process start per test. Its clocks move with the deployment's ``ClockOffset``.
final class InProcessNode: TestNode {
    let baseURL: URL
    private let lines: LogLines
    /// Finishing it ends the live test closure, which shuts the application down.
    private let stop: AsyncStream<Void>.Continuation
    private let running: Task<Void, any Error>

    var log: String { lines.text }
    var logPath: String { "the in-process node at \(baseURL)" }

    private init(baseURL: URL, lines: LogLines, stop: AsyncStream<Void>.Continuation, running: Task<Void, any Error>) {
        self.baseURL = baseURL
        self.lines = lines
        self.stop = stop
        self.running = running
    }

    /// Builds and starts a node configured like ``GatehouseNodeProcess`` (the same API keys and
    /// issuer; keys under `directory/state`, shared by the nodes of one deployment), then waits
    /// until `/readyz` answers 200 (bounded by `timeout`).
    static func start(
        redisURL: String, directory: String, environment: [String: String] = [:], clockOffset: ClockOffset,
        timeout: Duration = .seconds(30)
    ) async throws -> InProcessNode {
        var variables = [
            "GATEHOUSE_REDIS_URL": redisURL,
            "GATEHOUSE_STATE_DIR": directory + "/state",
            "GATEHOUSE_API_KEYS": GatehouseNodeProcess.apiKeysVariable,
            "GATEHOUSE_ISSUER": "Gatehouse Test",
        ]
        variables.merge(environment) { $1 }
        let configuration = try GatehouseConfiguration.load(environment: variables)
        let lines = LogLines()
        var logger = Logger(label: "gatehouse") { label in LogLines.Handler(label: label, lines: lines) }
        logger.logLevel = Logger.Level(rawValue: variables["GATEHOUSE_LOG_LEVEL"] ?? "info") ?? .info
        let (addresses, listening) = AsyncStream.makeStream(of: ApplicationHooks.Listening.self)
        let application = try await buildApplication(
            configuration: configuration,
            hooks: ApplicationHooks(logger: logger, clockOffset: clockOffset, onListening: { listening.yield($0) }, announce: false)
        )
        // The live framework binds `localhost` on port 0 and runs the application until the
        // closure returns: here, until `shutdown()` finishes `stopped`.
        let (stopped, stop) = AsyncStream.makeStream(of: Void.self)
        let running = Task {
            defer { listening.finish() }
            try await application.test(.live) { _ in
                for await _ in stopped {}
            }
        }
        // The address stream ends when the application stops (it did not start) or at the
        // deadline: either way no address.
        let deadline = Task {
            try? await Task.sleep(for: timeout)
            listening.finish()
        }
        var iterator = addresses.makeAsyncIterator()
        let address = await iterator.next()
        deadline.cancel()
        guard let address else {
            stop.finish()
            let outcome = await running.result
            throw GatehouseNodeProcess.NodeError("the in-process node did not start (\(outcome)); log:\n\(lines.text)")
        }
        // Tests, nginx and the load generator reach nodes on 127.0.0.1.
        guard address.host == "127.0.0.1" else {
            stop.finish()
            _ = await running.result
            throw GatehouseNodeProcess.NodeError(
                "the in-process node bound \(address.host) for 'localhost'; Gatehouse's tests reach nodes on 127.0.0.1: make 'localhost' resolve to 127.0.0.1 first (/etc/hosts)"
            )
        }
        let node = InProcessNode(baseURL: URL(string: "http://127.0.0.1:\(address.port)")!, lines: lines, stop: stop, running: running)
        // Readiness (Redis reached, scripts loaded) has no event to wait on: poll, bounded by `timeout`.
        let readyBy = ContinuousClock.now + timeout
        while ContinuousClock.now < readyBy {
            if let (status, _, _) = try? await TestHTTP.request(node.baseURL.appendingPathComponent("readyz")), status == 200 {
                return node
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await node.shutdown()
        throw GatehouseNodeProcess.NodeError("the in-process node at \(node.baseURL) did not become ready; log:\n\(lines.text)")
    }

    func shutdown() async {
        stop.finish()
        _ = await running.result
    }
}

/// A node's log lines, kept in memory so tests can look for (or make sure of the absence of)
/// what it logged.
final class LogLines: Sendable {
    private let storage = Mutex<String>("")

    var text: String { storage.withLock { $0 } }

    func append(_ line: String) {
        storage.withLock { $0 += line + "\n" }
    }

    /// Writes each record as `LEVEL label: message key=value…`.
    struct Handler: LogHandler {
        let label: String
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = self.metadata
            if let extra = event.metadata { all.merge(extra) { $1 } }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            lines.append("\(event.level) \(label): \(event.message)\(fields.isEmpty ? "" : " " + fields) [\(event.source)]")
        }
    }
}
