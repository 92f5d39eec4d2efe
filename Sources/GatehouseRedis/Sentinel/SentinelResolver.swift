import Synchronization

/// Finds the current master of a Redis Sentinel group, for the connections of one pool (or one
/// stream follower).
///
/// It follows the Sentinel client guidelines (https://redis.io/docs/reference/sentinel-clients/):
/// ask the sentinels one at a time, each bounded by the connect timeout, with
/// `SENTINEL get-master-addr-by-name NAME`; take the first address given; move the sentinel that
/// gave it to the front of the list so the next resolution asks it first. The caller then
/// connects to the address and checks `ROLE` (a sentinel's answer can be stale, and a demoted
/// master can still be reachable); a refusal is retried with the connection's backoff, asking
/// the sentinels again.
///
/// The sentinel queries are blocking hiredis calls (through ``HiredisContext``): call
/// ``resolveMaster(connectTimeout:maxReplyBytes:)`` on an I/O thread only. The mutex guards the
/// sentinel order and the last confirmed master, never I/O.
package final class SentinelResolver: Sendable {
    private struct State {
        var order: [RedisURL.Sentinel.Address]
        var confirmedMaster: RedisURL.Sentinel.Address?
    }

    package let sentinel: RedisURL.Sentinel
    private let state: Mutex<State>

    package init(_ sentinel: RedisURL.Sentinel) {
        self.sentinel = sentinel
        self.state = Mutex(State(order: sentinel.addresses, confirmedMaster: nil))
    }

    /// The sentinels in the order the next resolution asks them.
    package var order: [RedisURL.Sentinel.Address] { self.state.withLock { $0.order } }

    /// Asks the sentinels in turn for the master's address.
    ///
    /// - Throws: ``RedisError/Code/connectionUnavailable`` naming the master and every
    ///   sentinel's reason (unreachable, unknown master, error reply) when none gave an address;
    ///   never a password.
    package func resolveMaster(connectTimeout: Duration, maxReplyBytes: Int) throws(RedisError) -> RedisURL.Sentinel.Address {
        let order = self.order
        var reasons: [String] = []
        for address in order {
            do {
                let master = try self.ask(address, connectTimeout: connectTimeout, maxReplyBytes: maxReplyBytes)
                self.state.withLock { state in
                    // Another connection may have reordered meanwhile: move this one, keep the rest.
                    if let index = state.order.firstIndex(of: address), index != 0 {
                        state.order.remove(at: index)
                        state.order.insert(address, at: 0)
                    }
                }
                return master
            } catch {
                reasons.append("\(address): \(error.message)")
            }
        }
        throw RedisError(
            .connectionUnavailable,
            "no Redis Sentinel gave the address of master '\(self.sentinel.masterName)' (asked \(order.count): \(reasons.joined(separator: "; ")))"
        )
    }

    /// Records the master a connection has verified (`ROLE` said `master`). Returns the previous
    /// one when this is a change, so that exactly one connection logs it.
    package func confirm(_ master: RedisURL.Sentinel.Address) -> (changed: Bool, previous: RedisURL.Sentinel.Address?) {
        self.state.withLock { state in
            let previous = state.confirmedMaster
            state.confirmedMaster = master
            return (previous != master, previous)
        }
    }

    /// One sentinel's answer: connect (bounded), `AUTH` if configured, then the query, in one
    /// pipeline; the socket's timeout is the connect timeout too.
    private func ask(
        _ address: RedisURL.Sentinel.Address,
        connectTimeout: Duration,
        maxReplyBytes: Int
    ) throws(RedisError) -> RedisURL.Sentinel.Address {
        let context = try HiredisContext.connect(
            to: .tcp(host: address.host, port: address.port),
            connectTimeout: connectTimeout,
            ioTimeout: connectTimeout
        )
        var commands: [RedisCommand] = []
        if let password = self.sentinel.password {
            if let user = self.sentinel.user {
                commands.append(RedisCommand("AUTH", user, password))
            } else {
                commands.append(RedisCommand("AUTH", password))
            }
        }
        commands.append(RedisCommand("SENTINEL", "get-master-addr-by-name", self.sentinel.masterName))
        let replies = try context.roundTrip(commands, maxBytes: maxReplyBytes)
        for reply in replies {
            // The server's own words; an AUTH error never echoes the password.
            if case .error(let message) = reply { throw RedisError(.connectionUnavailable, "error reply: \(message)") }
        }
        return try Self.address(from: replies[replies.count - 1], masterName: self.sentinel.masterName)
    }

    /// Parses the reply to `SENTINEL get-master-addr-by-name`: `[host, port]`, or nil when the
    /// sentinel does not monitor that name.
    package static func address(from reply: RedisValue, masterName: String) throws(RedisError) -> RedisURL.Sentinel.Address {
        switch reply {
        case .null:
            throw RedisError(.connectionUnavailable, "does not know master '\(masterName)'")
        case .array(let items) where items.count == 2:
            guard case .bulkString(let hostBytes) = items[0], case .bulkString(let portBytes) = items[1],
                let port = Int(String(decoding: portBytes, as: UTF8.self)), (1...65535).contains(port)
            else { break }
            let host = String(decoding: hostBytes, as: UTF8.self)
            guard !host.isEmpty else { break }
            return RedisURL.Sentinel.Address(host: host, port: port)
        default:
            break
        }
        throw RedisError(.connectionUnavailable, "unexpected answer to SENTINEL get-master-addr-by-name: \(reply)")
    }
}
