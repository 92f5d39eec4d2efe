import Foundation
public import GatehouseRedis
import GatehouseSystem
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A real Redis Sentinel deployment for tests: a master and one replica (``RedisServerProcess``,
/// each on its own free loopback port and temporary directory) and three sentinels
/// (`redis-server sentinel.conf --sentinel`, each with its own writable config file in its own
/// directory) monitoring them with quorum 2, a 1 s `down-after-milliseconds` and a 5 s
/// `failover-timeout`, so a killed master is replaced within seconds.
///
/// ``start(masterName:password:)`` returns once every sentinel sees the replica and the two
/// other sentinels (bounded). Tests then kill the master (``killMaster()``), ask for a graceful
/// failover (``failover()``), wait for the promotion (``waitForNewMaster(other:timeout:)``) and
/// finally ``cleanup()``: SIGKILL everything and remove the directories. Prefer
/// ``withDeployment(masterName:password:_:)``, which always cleans up; the `atexit` hook of
/// ``RedisServerProcess`` SIGKILLs any process left behind. If `redis-server` is missing,
/// `start` throws the same "install it" error as ``RedisServerProcess``: tests fail, never skip.
public final class RedisSentinelDeployment: Sendable {
    /// The group's name in `sentinel monitor`.
    public let masterName: String
    /// The data nodes: the first master, then the replica (roles change with failovers).
    public let servers: [RedisServerProcess]
    /// The `requirepass` of the data nodes, if any.
    public let password: String?
    private let sentinels: [SentinelProcess]

    private init(masterName: String, servers: [RedisServerProcess], password: String?, sentinels: [SentinelProcess]) {
        self.masterName = masterName
        self.servers = servers
        self.password = password
        self.sentinels = sentinels
    }

    /// The sentinels' loopback ports.
    public var sentinelPorts: [Int] { self.sentinels.map(\.port) }

    /// The `redis-sentinel://` URL of the deployment (data-node password as userinfo).
    public func url(database: Int = 0) -> RedisURL {
        let addresses = self.sentinelPorts.map { RedisURL.Sentinel.Address(host: "127.0.0.1", port: $0) }
        return RedisURL(
            endpoint: .sentinel(.init(addresses: addresses, masterName: self.masterName)),
            password: self.password,
            database: database
        )
    }

    /// The URL as text, for `GATEHOUSE_REDIS_URL` (the password, if any, in clear).
    public func urlString(database: Int = 0) -> String {
        let credentials = self.password.map { ":\($0)@" } ?? ""
        let hosts = self.sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        return "redis-sentinel://\(credentials)\(hosts)/\(self.masterName)/\(database)"
    }

    /// A client configuration with the same test-friendly timeouts as
    /// ``RedisServerProcess/configuration(database:poolSize:commandTimeout:)``.
    public func configuration(database: Int = 0, poolSize: Int = 2, commandTimeout: Duration = .seconds(2)) -> RedisConfiguration {
        RedisConfiguration(
            url: self.url(database: database),
            poolSize: poolSize,
            connectTimeout: .seconds(1),
            commandTimeout: commandTimeout,
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        )
    }

    /// Starts the master, the replica and three sentinels, and waits until the sentinels see the
    /// replica and each other (at most `timeout`).
    public static func start(
        masterName: String = "gatehouse",
        password: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> RedisSentinelDeployment {
        let executable = try RedisServerProcess.findExecutable()
        var servers: [RedisServerProcess] = []
        var sentinels: [SentinelProcess] = []
        do {
            let auth = password.map { ["--masterauth", $0] } ?? []
            let master = try await RedisServerProcess.start(.init(password: password, extraArguments: auth))
            servers.append(master)
            servers.append(
                try await RedisServerProcess.start(
                    .init(password: password, extraArguments: auth + ["--replicaof", "127.0.0.1", "\(master.port)"])
                )
            )
            for _ in 0..<3 {
                sentinels.append(
                    try await SentinelProcess.start(
                        executable: executable, masterName: masterName, masterPort: master.port, password: password
                    )
                )
            }
            let deployment = RedisSentinelDeployment(masterName: masterName, servers: servers, password: password, sentinels: sentinels)
            try await deployment.waitUntilSettled(masterPort: master.port, timeout: timeout)
            return deployment
        } catch {
            for sentinel in sentinels { await sentinel.cleanup() }
            for server in servers { await server.cleanup() }
            throw error
        }
    }

    /// Starts a deployment, runs `body` with it, and tears it down whatever `body` does.
    public static func withDeployment<T: Sendable>(
        masterName: String = "gatehouse",
        password: String? = nil,
        _ body: (RedisSentinelDeployment) async throws -> T
    ) async throws -> T {
        try await scoped(try await start(masterName: masterName, password: password), cleanup: { await $0.cleanup() }, body)
    }

    /// SIGKILLs every process and removes every directory.
    public func cleanup() async {
        for sentinel in self.sentinels { await sentinel.cleanup() }
        for server in self.servers { await server.cleanup() }
    }

    // MARK: Asking the deployment

    /// The data node on `port`.
    public func server(port: Int) -> RedisServerProcess? {
        self.servers.first { $0.port == port }
    }

    /// The master's port according to sentinel `index` (nil if it does not know).
    public func masterPort(accordingTo index: Int) async throws -> Int? {
        let reply = try await Self.query(port: self.sentinels[index].port, password: nil, ["SENTINEL", "get-master-addr-by-name", self.masterName])
        guard let items = reply.array, items.count == 2, let port = items[1].integer else { return nil }
        return Int(port)
    }

    /// The first word of `ROLE` on data node `port` (`master`, `slave`), nil if unreachable.
    public func role(port: Int) async -> String? {
        guard let reply = try? await Self.query(port: port, password: self.password, ["ROLE"]) else { return nil }
        return reply.array?.first?.string
    }

    /// Sends one command to the data node on `port` (with the deployment's password).
    public func send(port: Int, _ command: [any RedisArgumentConvertible]) async throws -> RedisValue {
        try await Self.query(port: port, password: self.password, command)
    }

    /// Sends one command to every sentinel, in order.
    @discardableResult
    public func sendToSentinels(_ command: [any RedisArgumentConvertible]) async throws -> [RedisValue] {
        var replies: [RedisValue] = []
        for sentinel in self.sentinels {
            replies.append(try await Self.query(port: sentinel.port, password: nil, command))
        }
        return replies
    }

    /// The current master (as every sentinel names it, and it says `ROLE master`).
    public func currentMaster() async throws -> RedisServerProcess {
        var ports = Set<Int>()
        for index in self.sentinels.indices {
            if let port = try await self.masterPort(accordingTo: index) { ports.insert(port) }
        }
        guard ports.count == 1, let port = ports.first, let server = self.server(port: port), await self.role(port: port) == "master" else {
            throw RedisServerError(.startFailed, "the sentinels do not agree on a master of '\(self.masterName)': \(ports.sorted())")
        }
        return server
    }

    // MARK: Faults

    /// SIGKILLs the current master (a crash: no shutdown, no last replication); returns it.
    @discardableResult
    public func killMaster() async throws -> RedisServerProcess {
        let master = try await self.currentMaster()
        await master.kill()
        return master
    }

    /// Asks one sentinel for a graceful failover (`SENTINEL FAILOVER`), with both nodes alive.
    public func failover() async throws {
        let reply = try await Self.query(port: self.sentinels[0].port, password: nil, ["SENTINEL", "FAILOVER", self.masterName])
        if case .error(let message) = reply {
            throw RedisServerError(.signalFailed, "SENTINEL FAILOVER refused: \(message)")
        }
    }

    /// Waits (at most `timeout`) until every sentinel names a master other than `port` and that
    /// server says `ROLE master`; returns it.
    public func waitForNewMaster(other port: Int, timeout: Duration = .seconds(30)) async throws -> RedisServerProcess {
        let deadline = ContinuousClock.now + timeout
        var last: [Int?] = []
        // A poll: the condition spans every sentinel and the promoted server's ROLE, which no
        // single event reports. Bounded in time (the deadline) and in count (10 000 checks, each
        // after a 100 ms pause).
        for _ in 0..<10_000 where ContinuousClock.now < deadline {
            last = []
            for index in self.sentinels.indices {
                last.append(try? await self.masterPort(accordingTo: index))
            }
            if let first = last.first ?? nil, first != port, last.allSatisfy({ $0 == first }),
                let server = self.server(port: first), await self.role(port: first) == "master"
            {
                return server
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisServerError(
            .startFailed,
            "no new master of '\(self.masterName)' replaced port \(port) within \(timeout); sentinels say \(last): \(self.logTails())"
        )
    }

    /// The last lines of every sentinel's log, for failure messages.
    public func logTails() -> String {
        self.sentinels.map { "sentinel \($0.port): \($0.logTail())" }.joined(separator: " || ")
    }

    // MARK: Internals

    /// Until every sentinel knows the master, sees a replica that is up, and knows the two other
    /// sentinels, and the replica's link to the master is up.
    private func waitUntilSettled(masterPort: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastState = ""
        // A readiness poll (sentinels discover replicas and each other with no event to wait
        // on): bounded in time (the deadline) and in count (10 000 checks, each after a 100 ms
        // pause).
        for _ in 0..<10_000 where ContinuousClock.now < deadline {
            var settled = true
            for sentinel in self.sentinels {
                let port = sentinel.port
                let replicas = (try? await Self.query(port: port, password: nil, ["SENTINEL", "replicas", self.masterName]))?.array ?? []
                let healthy = replicas.filter { replica in
                    let fields = Self.fields(replica)
                    return !(fields["flags"] ?? "s_down").contains("down") && !(fields["flags"] ?? "").contains("disconnected")
                }
                let peers = (try? await Self.query(port: port, password: nil, ["SENTINEL", "sentinels", self.masterName]))?.array ?? []
                lastState = "sentinel \(port): \(healthy.count) healthy replicas, \(peers.count) other sentinels"
                if healthy.isEmpty || peers.count < self.sentinels.count - 1 {
                    settled = false
                    break
                }
            }
            if settled, let role = try? await Self.query(port: self.servers[1].port, password: self.password, ["ROLE"]).array,
                role.count >= 4, role[3].string == "connected"
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisServerError(
            .startFailed,
            "the sentinels did not see the replica and each other within \(timeout) (\(lastState)): \(self.logTails())"
        )
    }

    /// A `SENTINEL replicas`/`sentinels` entry (a flat name/value list) as a dictionary.
    private static func fields(_ entry: RedisValue) -> [String: String] {
        guard let items = entry.array else { return [:] }
        var result: [String: String] = [:]
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].string, let value = items[index + 1].string { result[name] = value }
            index += 2
        }
        return result
    }

    /// One command on a short-lived client (quiet logger; 1 s timeouts). Error replies come back
    /// as `.error`, not thrown.
    private static func query(port: Int, password: String?, _ command: [any RedisArgumentConvertible]) async throws -> RedisValue {
        var logger = Logger(label: "gatehouse.testing.sentinel")
        logger.logLevel = .critical
        let configuration = RedisConfiguration(
            url: RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port), password: password),
            poolSize: 1,
            connectTimeout: .seconds(1),
            commandTimeout: .seconds(1),
            clientName: nil
        )
        let client = RedisClient(configuration: configuration, logger: logger)
        do {
            let reply = try await client.pipeline([RedisCommand(command)])[0]
            await client.shutdown()
            return reply
        } catch {
            await client.shutdown()
            throw error
        }
    }
}

/// One `redis-server sentinel.conf --sentinel` child with its own directory.
private final class SentinelProcess: Sendable {
    let port: Int
    let directory: String
    /// The child, until it has been reaped.
    private let child = OwnedChild()

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    deinit {
        self.child.killBlocking()
        self.removeDirectory()
    }

    static func start(executable: String, masterName: String, masterPort: Int, password: String?) async throws -> SentinelProcess {
        var lastError: (any Error)?
        // A free port can be taken between probing and binding; try a few, each in a directory
        // of its own.
        for _ in 0..<5 {
            var template = Array("/tmp/gatehouse-sentinel-XXXXXX".utf8CString)
            guard let created = mkdtemp(&template) else {
                throw RedisServerError(.startFailed, "cannot create a temporary directory for a sentinel: errno \(errno)")
            }
            let sentinel = SentinelProcess(port: try RedisServerProcess.freePort(), directory: String(cString: created))
            do {
                try await sentinel.launch(executable: executable, masterName: masterName, masterPort: masterPort, password: password)
                return sentinel
            } catch {
                await sentinel.cleanup()
                lastError = error
            }
        }
        throw lastError!
    }

    private func launch(executable: String, masterName: String, masterPort: Int, password: String?) async throws {
        // Sentinel rewrites its config file (ids, discovered replicas and peers): it must be a
        // writable file of its own.
        var lines = [
            "port \(self.port)",
            "bind 127.0.0.1",
            "protected-mode no",
            "daemonize no",
            "dir \(self.directory)",
            "logfile \(self.directory)/sentinel.log",
            "sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 2",
            "sentinel down-after-milliseconds \(masterName) 1000",
            "sentinel failover-timeout \(masterName) 5000",
            "sentinel parallel-syncs \(masterName) 1",
        ]
        if let password { lines.append("sentinel auth-pass \(masterName) \(password)") }
        let file = self.directory + "/sentinel.conf"
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let pid: pid_t
        do throws(ChildProcess.SpawnFailure) {
            // posix_spawn with an empty signal mask, as for every redis-server of the tests.
            pid = try ChildProcess.spawn(executable, [file, "--sentinel"], output: .file("/dev/null"))
        } catch {
            throw RedisServerError(.startFailed, "cannot start a sentinel: \(error)")
        }
        LiveServers.add(self.directory, pid: pid)
        self.child.adopt(pid)
        // Readiness poll (a listening sentinel sends no event): at most 500 checks 20 ms apart
        // and 10 s. An exit at start ends it early.
        let deadline = ContinuousClock.now + .seconds(10)
        for _ in 0..<500 where ContinuousClock.now < deadline {
            guard self.child.pid != nil else {
                throw RedisServerError(.startFailed, "a sentinel exited at start (port \(self.port)): \(self.logTail())")
            }
            if RedisServerProcess.ping(port: self.port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RedisServerError(.startFailed, "a sentinel did not answer PING within 10 s (port \(self.port)): \(self.logTail())")
    }

    /// SIGKILL, wait for the exit (at most 10 s) and reap, remove the directory.
    func cleanup() async {
        await self.child.kill(timeout: .seconds(10))
        self.removeDirectory()
    }

    private func removeDirectory() {
        LiveServers.remove(self.directory)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    func logTail() -> String {
        guard let log = try? String(contentsOfFile: self.directory + "/sentinel.log", encoding: .utf8) else { return "(no log)" }
        return log.split(separator: "\n").suffix(5).joined(separator: " | ")
    }
}
