import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One ``RedisLoopConnection`` per SwiftNIO event loop that has sent through the client, made on
/// the loop's first command. ``RedisClient/send(_:completion:)`` asks here first when it is
/// called on an event loop of `MultiThreadedEventLoopGroup`; everywhere else (tasks, I/O
/// threads) it uses the pool.
final class RedisLoopConnections: Sendable {
    private let configuration: RedisConfiguration
    private let logger: Logger
    private struct Registry {
        var connections: [ObjectIdentifier: RedisLoopConnection] = [:]
        var closed = false
    }
    private let registry = Mutex(Registry())

    /// Whether loop connections can serve `configuration`'s URL: one fixed server (`redis://`,
    /// `unix://`). A Sentinel group's master moves and a cluster routes by key: those go through
    /// their own connections.
    static func serves(_ configuration: RedisConfiguration) -> Bool {
        switch configuration.url.endpoint {
        case .tcp, .unix: true
        case .sentinel, .cluster: false
        }
    }

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Sends `bytes` on the current event loop's connection and returns true, or returns false
    /// (not on an event loop, its connection not up yet or lost, the client closed).
    func send(_ bytes: [UInt8], completion: @escaping RedisLoopConnection.Completion) -> Bool {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return false }
        let key = ObjectIdentifier(loop)
        let connection: RedisLoopConnection? = registry.withLock { registry in
            if let connection = registry.connections[key] { return connection }
            guard !registry.closed else { return nil }
            let connection = RedisLoopConnection(eventLoop: loop, configuration: configuration, logger: logger)
            registry.connections[key] = connection
            return connection
        }
        return connection?.send(bytes, completion: completion) ?? false
    }

    /// Closes every loop connection without waiting (for a client that was never shut down).
    func closeSoon() {
        for connection in closeAll() {
            connection.eventLoop.execute { connection.close() }
        }
    }

    /// Closes every loop connection (in-flight commands are answered first, bounded by the
    /// command timeout) and waits until they are closed, at most the command timeout and a
    /// second (a loop that was shut down first never runs the close). Later sends return false.
    func close() async {
        let connections = closeAll()
        for connection in connections {
            connection.eventLoop.execute { connection.close() }
        }
        let deadline = ContinuousClock.now + configuration.commandTimeout + .seconds(1)
        for connection in connections {
            while !connection.hasClosed.load(ordering: .acquiring), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    private func closeAll() -> [RedisLoopConnection] {
        registry.withLock { registry in
            registry.closed = true
            return Array(registry.connections.values)
        }
    }
}
