import Foundation
import Glibc
import GatehouseRedis
import GatehouseSystem
public import Logging

/// The `redis-server` child that `gatehouse serve` starts when no Redis is configured:
/// Unix socket only (no TCP port), AOF on, data under the state folder.
public final class EmbeddedRedis: Sendable {
    /// The URL clients use.
    public let url: String
    let pid: pid_t
    let logger: Logger

    private init(url: String, pid: pid_t, logger: Logger) {
        self.url = url
        self.pid = pid
        self.logger = logger
    }

    /// Starts (or, if one from an earlier run still answers on the socket, adopts) the server.
    public static func start(stateDirectory: String, logger: Logger) async throws(ServiceError) -> EmbeddedRedis {
        let dir = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        let dataDir = dir + "/redis"
        let socket = dir + "/redis.sock"
        let url = "unix://" + socket
        do { try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw ServiceError(.unavailable, "cannot create \(dataDir)", underlying: error)
        }
        if FileManager.default.fileExists(atPath: socket), await answers(url) {
            logger.notice("adopting the redis-server already running on \(socket)")
            return EmbeddedRedis(url: url, pid: 0, logger: logger)
        }
        unlink(socket)
        guard let server = ["/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ServiceError(.unavailable, "redis-server not found: install it with apt-get install redis-server, or set GATEHOUSE_REDIS_URL")
        }
        let arguments = [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--dir", dataDir,
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", dir + "/redis.log",
        ]
        // An empty signal mask in the child, so SIGTERM stops it (see ChildProcess.spawn).
        let pid: pid_t
        do { pid = try ChildProcess.spawn(server, arguments) } catch {
            throw ServiceError(.unavailable, "cannot start redis-server: errno \(error.errno)", underlying: error)
        }
        let embedded = EmbeddedRedis(url: url, pid: pid, logger: logger)
        for _ in 0..<100 {
            if await answers(url) { return embedded }
            try? await Task.sleep(for: .milliseconds(50))
        }
        await embedded.stop()
        throw ServiceError(.unavailable, "redis-server did not come up on \(socket); see \(dir)/redis.log")
    }

    static func answers(_ url: String) async -> Bool {
        guard let parsed = try? RedisURL(url) else { return false }
        // A quiet probe: "not there yet" is expected and not worth a warning.
        var logger = Logger(label: "gatehouse.redis.probe")
        logger.logLevel = .critical
        let client = RedisClient(configuration: RedisConfiguration(url: parsed), logger: logger)
        defer { Task { await client.shutdown() } }
        return (try? await client.ping()) != nil
    }

    /// Stops the child: SIGTERM (Redis flushes the AOF on it), then waits for it to exit on a
    /// dedicated thread; SIGKILL if it has not exited after 5 s. Call it once.
    public func stop() async {
        guard pid > 0 else { return }
        _ = await ChildProcess.terminate(pid, grace: .seconds(5))
    }
}
