package import Logging

/// A fixed set of connections; each command goes to the least-loaded one that is up.
///
/// Fixed rather than elastic: with automatic pipelining a connection carries any number of
/// concurrent callers, so more connections would only cost the server more system calls.
package struct RedisConnectionPool: Sendable {
    package let connections: [RedisConnection]

    package init(configuration: RedisConfiguration, logger: Logger) {
        // One resolver for the whole pool (see RedisConnection.sentinelResolver).
        var resolver: SentinelResolver?
        if case .sentinel(let sentinel) = configuration.url.endpoint {
            resolver = SentinelResolver(sentinel)
        }
        self.connections = (0..<configuration.poolSize).map { index in
            RedisConnection(configuration: configuration, name: "gh-redis-\(index)", sentinelResolver: resolver, logger: logger)
        }
    }

    /// The connected connection with the fewest commands queued or in flight; if none is
    /// connected, the least-loaded one (its callers wait, bounded, for the reconnect).
    package func pick() -> RedisConnection {
        if self.connections.count == 1 { return self.connections[0] }
        var best: RedisConnection?
        var bestLoad = Int.max
        var fallback = self.connections[0]
        var fallbackLoad = Int.max
        for connection in self.connections {
            let load = connection.load
            if connection.isConnected {
                if load < bestLoad {
                    best = connection
                    bestLoad = load
                }
            } else if load < fallbackLoad {
                fallback = connection
                fallbackLoad = load
            }
        }
        return best ?? fallback
    }

    package var isConnected: Bool { self.connections.contains { $0.isConnected } }

    package func close() {
        for connection in self.connections { connection.close() }
    }

    package func waitUntilClosed() async {
        for connection in self.connections { await connection.waitUntilClosed() }
    }
}
