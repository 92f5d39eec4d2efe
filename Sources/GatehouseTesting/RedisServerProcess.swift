import Foundation
public import GatehouseRedis
import GatehouseSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one error type of GatehouseTesting.
public struct RedisServerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable {
        private enum Value: Hashable, Sendable { case notInstalled, startFailed, signalFailed, commandFailed, timedOut }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        /// `redis-server` (or `redis-cli`, which ``RedisClusterDeployment`` runs) is not installed.
        public static var notInstalled: Self { .init(.notInstalled) }
        /// The server did not start or did not answer PING in time.
        public static var startFailed: Self { .init(.startFailed) }
        /// Sending a signal to the server failed (it is not running).
        public static var signalFailed: Self { .init(.signalFailed) }
        /// A command or `redis-cli` run that a deployment needed was refused or failed (a
        /// `CLUSTER SETSLOT`, a `MIGRATE`, a `redis-cli --cluster reshard`).
        public static var commandFailed: Self { .init(.commandFailed) }
        /// A bounded wait for a deployment's state (a cluster settling, a failover) ran out.
        public static var timedOut: Self { .init(.timedOut) }
    }

    /// What went wrong.
    public let code: Code
    /// Why, for the test log.
    public let message: String
    /// The file that raised the error (`#fileID`).
    public let file: String
    /// The line that raised the error.
    public let line: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    /// The message.
    public var description: String { self.message }
}

/// A real `redis-server` child process for tests: its own free loopback port and its own
/// temporary directory (data, AOF, log, Unix socket), torn down at the end.
///
/// Fault tests drive it: ``stop()`` (SIGTERM), ``kill()`` (SIGKILL), ``pause()`` (SIGSTOP),
/// ``resume()`` (SIGCONT) and ``restart()`` on the same port and directory (so an AOF
/// survives). If `redis-server` is missing, ``start(_:)`` throws a clear error: tests that need
/// Redis fail, they never skip.
///
/// Prefer ``withServer(_:_:)`` (or the `.redisServer()` test trait), which always cleans up; as a
/// backstop `deinit` and an `atexit` hook SIGKILL any server still running. With
/// ``Options/cluster`` it is a Redis Cluster node, not yet part of a cluster
/// (``RedisClusterDeployment`` joins such nodes into one).
public final class RedisServerProcess: Sendable {
    /// How to configure the server.
    public struct Options: Sendable {
        /// An ACL user to create, with every permission.
        public struct User: Sendable {
            /// The user name.
            public var name: String
            /// The user's password.
            public var password: String
            /// Creates a user.
            public init(name: String, password: String) {
                self.name = name
                self.password = password
            }
        }

        /// Turn on the append-only file (fsync always), so data survives ``restart()``.
        public var appendOnly: Bool
        /// `requirepass` for the default user.
        public var password: String?
        /// ACL users.
        public var users: [User]
        /// More `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`.
        public var extraArguments: [String]
        /// Redis Cluster mode (nil: a standalone server).
        public var cluster: Cluster?

        /// Redis Cluster mode for one node: `cluster-enabled yes`, the node's cluster
        /// configuration file (`nodes.conf`) in its own directory, and the cluster bus on a second
        /// free loopback port of its own (`cluster-port`, ``RedisServerProcess/clusterBusPort``)
        /// rather than the client port + 10 000, which may be taken or above 65 535.
        public struct Cluster: Sendable {
            /// `cluster-node-timeout`: how long a node may be unreachable before it counts as
            /// failing (and a replica of a failed master starts a failover).
            public var nodeTimeoutMilliseconds: Int

            /// Creates cluster options.
            public init(nodeTimeoutMilliseconds: Int = 1000) {
                self.nodeTimeoutMilliseconds = nodeTimeoutMilliseconds
            }
        }

        /// Creates options; by default no persistence, no password, a standalone server.
        public init(
            appendOnly: Bool = false, password: String? = nil, users: [User] = [], extraArguments: [String] = [],
            cluster: Cluster? = nil
        ) {
            self.appendOnly = appendOnly
            self.password = password
            self.users = users
            self.extraArguments = extraArguments
            self.cluster = cluster
        }
    }

    /// The loopback port the server listens on (the same across restarts).
    public let port: Int
    /// With ``Options/cluster``: the loopback port of the cluster bus (the same across restarts).
    public let clusterBusPort: Int?
    /// The server's own temporary directory.
    public let directory: String
    /// The options it was started with.
    public let options: Options
    private let executable: String
    /// The child, until it has been reaped.
    private let child = OwnedChild()

    private init(port: Int, clusterBusPort: Int?, directory: String, options: Options, executable: String) {
        self.port = port
        self.clusterBusPort = clusterBusPort
        self.directory = directory
        self.options = options
        self.executable = executable
    }

    deinit {
        self.child.killBlocking()
        LiveServers.remove(self.directory)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// The Unix socket the server also listens on.
    public var unixSocketPath: String { self.directory + "/redis.sock" }

    /// A `redis://127.0.0.1:<port>/<database>` URL, with the default user's password if set.
    public func url(database: Int = 0) -> RedisURL {
        RedisURL(endpoint: .tcp(host: "127.0.0.1", port: self.port), password: self.options.password, database: database)
    }

    /// A client configuration with test-friendly timeouts: short enough that fault tests run
    /// fast, long enough not to flake on a loaded 2-core machine.
    public func configuration(
        database: Int = 0,
        poolSize: Int = 2,
        commandTimeout: Duration = .seconds(2)
    ) -> RedisConfiguration {
        RedisConfiguration(
            url: self.url(database: database),
            poolSize: poolSize,
            connectTimeout: .seconds(1),
            commandTimeout: commandTimeout,
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        )
    }

    /// The server's process id while it runs.
    public var pid: Int32? {
        self.child.pid
    }

    /// Starts a server on a free loopback port in a new temporary directory and waits until it
    /// answers `PING`.
    ///
    /// - Throws: ``RedisServerError/Code/notInstalled`` with install instructions if
    ///   `redis-server` is not on `PATH` (or in /usr/bin, /usr/sbin, /usr/local/bin);
    ///   ``RedisServerError/Code/startFailed`` with the server log otherwise.
    public static func start(_ options: Options = .init()) async throws -> RedisServerProcess {
        let executable = try findExecutable()
        var lastError: (any Error)?
        // A free port can be taken by someone else between probing and binding (another test's
        // outgoing connection gets its local port from the same range); try a few. Each attempt
        // has a directory of its own: a failed attempt's `deinit` removes its directory.
        for _ in 0..<5 {
            let port = try freePort()
            let busPort = try options.cluster.map { _ in try freePort(other: port) }
            let directory = try makeTemporaryDirectory()
            let server = RedisServerProcess(
                port: port, clusterBusPort: busPort, directory: directory, options: options, executable: executable
            )
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    private static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/gatehouse-redis-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw RedisServerError(.startFailed, "cannot create a temporary directory for redis-server: errno \(errno)")
        }
        return String(cString: created)
    }

    /// Starts a server, runs `body` with it, and stops the server and removes its directory
    /// whatever `body` does.
    public static func withServer<T: Sendable>(
        _ options: Options = .init(),
        _ body: (RedisServerProcess) async throws -> T
    ) async throws -> T {
        try await scoped(try await start(options), cleanup: { await $0.cleanup() }, body)
    }

    /// SIGTERM (after SIGCONT, in case it is paused), then waits up to 10 s for it to exit, then
    /// SIGKILLs it and waits up to 10 s more. The exit is waited for on a thread of its own
    /// (``ChildProcess``), not by polling.
    public func stop() async {
        await self.child.stop(grace: .seconds(10), killTimeout: .seconds(10))
    }

    /// SIGKILL: the server dies at once, mid-command, as in a crash. Returns once it has exited
    /// (at most 10 s).
    public func kill() async {
        await self.child.kill(timeout: .seconds(10))
    }

    /// SIGSTOP: the server stops answering but keeps its connections open (a hung server).
    public func pause() throws {
        try self.signal(SIGSTOP)
    }

    /// SIGCONT: undoes ``pause()``.
    public func resume() throws {
        try self.signal(SIGCONT)
    }

    /// Stops the server if it runs and starts it again on the same port and directory.
    public func restart() async throws {
        await self.stop()
        var lastError: (any Error)?
        // The port can still be held for a moment after the old server's exit, with no event to
        // wait for: bounded, 3 attempts 200 ms apart.
        for _ in 0..<3 {
            do {
                try await self.launch()
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        throw lastError!
    }

    /// Starts the server again after ``stop()`` or ``kill()`` (no-op if it runs).
    public func start() async throws {
        if self.pid != nil { return }
        try await self.launch()
    }

    /// Kills the server and removes its directory.
    public func cleanup() async {
        await self.kill()
        LiveServers.remove(self.directory)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    // MARK: Internals

    private func signal(_ signal: Int32) throws {
        guard self.child.signal(signal) else {
            throw RedisServerError(.signalFailed, "redis-server on port \(self.port) is not running (signal \(signal) not sent)")
        }
    }

    private var arguments: [String] {
        var arguments = [
            "--port", "\(self.port)",
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--appendonly", self.options.appendOnly ? "yes" : "no",
            "--daemonize", "no",
            "--unixsocket", self.unixSocketPath,
            "--unixsocketperm", "700",
            "--logfile", self.directory + "/redis.log",
        ]
        if self.options.appendOnly { arguments += ["--appendfsync", "always"] }
        if let password = self.options.password { arguments += ["--requirepass", password] }
        if let cluster = self.options.cluster, let busPort = self.clusterBusPort {
            arguments += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", self.directory + "/nodes.conf",
                "--cluster-port", "\(busPort)",
                "--cluster-node-timeout", "\(cluster.nodeTimeoutMilliseconds)",
            ]
        }
        for user in self.options.users {
            arguments += ["--user", user.name, "on", ">" + user.password, "~*", "&*", "+@all"]
        }
        return arguments + self.options.extraArguments
    }

    private func launch() async throws {
        let pid = try self.spawn()
        LiveServers.add(self.directory, pid: pid)
        self.child.adopt(pid)

        // Readiness poll (a listening server sends no event): at most 500 checks 20 ms apart and
        // 10 s. An exit at start ends it early.
        let deadline = ContinuousClock.now + .seconds(10)
        for _ in 0..<500 where ContinuousClock.now < deadline {
            guard self.pid != nil else {
                throw RedisServerError(.startFailed, "redis-server exited at start (port \(self.port)): \(self.logTail())")
            }
            if Self.ping(port: self.port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        await self.kill()
        throw RedisServerError(.startFailed, "redis-server did not answer PING within 10 s (port \(self.port)): \(self.logTail())")
    }

    /// Starts redis-server with ``ChildProcess/spawn(_:_:environment:output:)`` (an empty signal
    /// mask and default handlers: Swift's concurrency threads block most signals, a child inherits
    /// the mask, and a redis-server with SIGTERM blocked ignores ``stop()``).
    private func spawn() throws -> pid_t {
        do throws(ChildProcess.SpawnFailure) {
            return try ChildProcess.spawn(self.executable, self.arguments, output: .file("/dev/null"))
        } catch {
            throw RedisServerError(.startFailed, error.description)
        }
    }

    /// The last `lines` lines of the server's log, on one line, for failure messages.
    func logTail(lines: Int = 5) -> String {
        guard let log = try? String(contentsOfFile: self.directory + "/redis.log", encoding: .utf8) else {
            return "(no log)"
        }
        return log.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// Shared with ``RedisSentinelDeployment`` (its sentinels are redis-server too).
    static func findExecutable() throws -> String {
        do { return try ExternalProgram.redisServer.locate() } catch { throw RedisServerError(.notInstalled, error.description) }
    }

    /// A loopback port that was free a moment ago.
    static func freePort() throws -> Int {
        do { return try Loopback.freePort() } catch { throw RedisServerError(.startFailed, error.description) }
    }

    /// A loopback port that was free a moment ago and is not `other` (the kernel may hand the
    /// port just probed out again): at most 10 probes.
    static func freePort(other: Int) throws -> Int {
        for _ in 0..<10 {
            let port = try freePort()
            if port != other { return port }
        }
        throw RedisServerError(.startFailed, "no free loopback port other than \(other) in 10 probes")
    }

    /// Whether something on the port answers `PING` with any RESP reply (`-NOAUTH` counts: the
    /// server is up).
    static func ping(port: Int) -> Bool {
        guard let fd = Loopback.connect(port: port, receiveTimeout: .milliseconds(200), sendTimeout: .milliseconds(200)) else { return false }
        defer { close(fd) }
        let request = Array("PING\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var reply = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &reply, reply.count, 0)
        return count > 0 && (reply[0] == UInt8(ascii: "+") || reply[0] == UInt8(ascii: "-"))
    }
}

/// Servers still running, SIGKILLed at process exit: the backstop for a test process that ends
/// without tearing down (a crash in a test, a time limit), so no redis-server outlives it.
/// (``RedisSentinelDeployment`` registers its sentinels here too.)
enum LiveServers {
    private static let servers = Mutex<[String: Int32]>([:])
    private static let hook: Void = {
        atexit {
            LiveServers.servers.withLock { servers in
                for pid in servers.values { kill(pid, SIGKILL) }
            }
        }
    }()

    static func add(_ directory: String, pid: Int32) {
        _ = hook
        self.servers.withLock { $0[directory] = pid }
    }

    static func remove(_ directory: String) {
        self.servers.withLock { _ = $0.removeValue(forKey: directory) }
    }
}
