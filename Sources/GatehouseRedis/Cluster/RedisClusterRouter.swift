import GatehouseSystem
package import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The Redis Cluster side of ``RedisClient``: one pipelined ``RedisConnection`` per master, and
/// every command sent to the master that owns its key's slot.
///
/// The slot map comes from `CLUSTER SLOTS`, asked by a map thread of the masters it knows, then of
/// the seeds from the URL, then of the replicas it has seen: at start, every 10 seconds (every
/// 250 ms while a master's connection is down), and soon after anything suggests it changed (a `MOVED` reply, `CLUSTERDOWN`, a connection that failed);
/// requests for a new map are coalesced and at most one refresh runs every 100 ms. Between
/// refreshes a `MOVED` reply updates its one slot at once, so a reshard costs each moved slot one
/// redirect, not one per command.
///
/// What each answer leads to (all retries stay within the command timeout, counted from the
/// first send):
/// - `MOVED <slot> <node>`: the map learns the slot's new master; the command goes there (at most
///   five redirects).
/// - `ASK <slot> <node>`: the key is being migrated; `ASKING` and the command go to that node in
///   one write, once, and the map is left alone.
/// - `TRYAGAIN` (a multi-key command during a migration) and `CLUSTERDOWN`: sent again after
///   10, 20, 40 … 200 ms.
/// - A command that was never written (the master is unreachable, or its connection was closed
///   because the node is no longer a master): sent again, to the slot's master by the newest
///   map, after the same back-off. A command that was written and whose connection then failed
///   is not sent again (it may have run): the caller gets the error.
///
/// Transactions (`MULTI` … `EXEC` in one pipeline) go to the slot of their first key and are
/// redirected as a whole. Other pipelines are split by master and sent concurrently; a command
/// in them that was redirected is sent again on its own.
package final class RedisClusterRouter: Sendable {
    package typealias Completion = @Sendable (Result<RedisValue, any Error>) -> Void

    /// One command (or transaction, or a group of a pipeline) on its way.
    struct Request: Sendable {
        var bytes: [UInt8]
        var replyCount: Int
        var slot: Int?
        /// `MULTI`/`EXEC`: redirected as a whole. A plain group's replies are returned as they are.
        var isTransaction: Bool
        var deadline: UInt64
        var redirects = 0
        var retries = 0
    }

    private struct State {
        var map: ClusterSlotMap?
        var connections: [RedisURL.Address: RedisConnection] = [:]
        /// Connections to nodes that stopped being masters: closed, awaited at shutdown.
        var retired: [RedisConnection] = []
        var refreshWanted = false
        var waitingForMap: [(request: Request, completion: Completion)] = []
        var closed = false
        var lastRefreshError: String?
        var nextKeyless = 0
    }

    package let configuration: RedisConfiguration
    private let seeds: [RedisURL.Address]
    private let logger: Logger
    private let state: Mutex<State>
    private let wakeup = Wakeup()
    private let exit = ThreadExit()

    static let periodicRefreshNanoseconds: UInt64 = 10_000_000_000
    static let degradedRefreshNanoseconds: UInt64 = 250_000_000
    static let minimumRefreshIntervalNanoseconds: UInt64 = 100_000_000
    static let maximumRedirects = 5

    /// Starts the map thread, which asks the seeds for the slot map at once.
    package init(configuration: RedisConfiguration, logger: Logger) {
        guard case .cluster(let seeds) = configuration.url.endpoint else {
            preconditionFailure("RedisClusterRouter needs a redis-cluster:// URL")
        }
        self.configuration = configuration
        self.seeds = seeds
        self.logger = logger
        self.state = Mutex(State())
        IOThread.spawn(name: "gh-redis-cluster-map") { [self] in
            self.runMapThread()
        }
    }

    /// A slot map is known and at least one master's connection is up.
    package var isConnected: Bool {
        self.state.withLock { state in
            state.map != nil && state.connections.values.contains { $0.isConnected }
        }
    }

    /// The current map (for tests and diagnostics).
    package var slotMap: ClusterSlotMap? { self.state.withLock { $0.map } }

    // MARK: Sending

    /// Sends one command to the master of its key's slot and returns its reply (error replies
    /// as ``RedisValue/error(_:)``).
    package func execute(_ bytes: [UInt8]) async throws -> RedisValue {
        try await withUnsafeThrowingContinuation { continuation in
            self.execute(bytes) { continuation.resume(with: $0) }
        }
    }

    /// ``execute(_:)`` with a completion, run on an I/O thread (or the map thread).
    package func execute(_ bytes: [UInt8], completion: @escaping Completion) {
        let request = Request(bytes: bytes, replyCount: 1, slot: ClusterSlot.of(command: bytes), isTransaction: false, deadline: self.deadline())
        self.attempt(request, target: nil, asking: false, completion: completion)
    }

    /// Sends `commands` and returns one reply per command, in order. A `MULTI` … `EXEC`
    /// pipeline goes to one master as one write; any other is split by master.
    package func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        let slots = commands.map { ClusterSlot.of(command: $0.bytes) }
        if let first = commands.first, ClusterSlot.isMulti(first.bytes) {
            let bytes = commands.flatMap(\.bytes)
            let request = Request(
                bytes: bytes, replyCount: commands.count, slot: slots.lazy.compactMap { $0 }.first, isTransaction: true,
                deadline: self.deadline()
            )
            let reply = try await self.send(request)
            guard case .array(let replies) = reply, replies.count == commands.count else {
                throw RedisError(.unexpectedReply, "a transaction did not return one reply per command")
            }
            return replies
        }
        // Group by the master each slot has now; keyless commands join the first group.
        let map = self.state.withLock { $0.map }
        var groups: [RedisURL.Address?: [Int]] = [:]
        var order: [RedisURL.Address?] = []
        for (index, slot) in slots.enumerated() {
            let owner: RedisURL.Address? = slot.flatMap { map?.master(ofSlot: $0) } ?? (order.first ?? nil)
            if groups[owner] == nil { order.append(owner) }
            groups[owner, default: []].append(index)
        }
        var replies = [RedisValue](repeating: .null, count: commands.count)
        if order.count == 1 {
            // One master (a user's pipeline): one write, no tasks.
            let request = Request(
                bytes: commands.flatMap(\.bytes), replyCount: commands.count, slot: slots.lazy.compactMap { $0 }.first,
                isTransaction: false, deadline: self.deadline()
            )
            let reply = try await self.send(request)
            if commands.count == 1 {
                replies[0] = reply
            } else {
                guard case .array(let items) = reply, items.count == commands.count else {
                    throw RedisError(.unexpectedReply, "a pipeline did not return one reply per command")
                }
                replies = items
            }
        } else {
            try await self.sendGroups(commands, slots: slots, groups: groups, order: order, into: &replies)
        }
        // A command of a group that landed on the wrong master (the map changed meanwhile) goes
        // again on its own, with the full redirect handling.
        for index in replies.indices where Self.isClusterRetryable(replies[index]) {
            replies[index] = try await self.execute(commands[index].bytes)
        }
        return replies
    }

    /// The groups of a pipeline that spans masters, sent concurrently, their replies put back in order.
    private func sendGroups(
        _ commands: [RedisCommand], slots: [Int?], groups: [RedisURL.Address?: [Int]], order: [RedisURL.Address?],
        into replies: inout [RedisValue]
    ) async throws {
        try await withThrowingTaskGroup(of: (indices: [Int], replies: [RedisValue]).self) { group in
            for owner in order {
                let indices = groups[owner]!
                group.addTask {
                    let request = Request(
                        bytes: indices.flatMap { commands[$0].bytes }, replyCount: indices.count,
                        slot: indices.lazy.compactMap { slots[$0] }.first, isTransaction: false, deadline: self.deadline()
                    )
                    let reply = try await self.send(request)
                    if indices.count == 1 { return (indices, [reply]) }
                    guard case .array(let items) = reply, items.count == indices.count else {
                        throw RedisError(.unexpectedReply, "a pipeline did not return one reply per command")
                    }
                    return (indices, items)
                }
            }
            for try await (indices, items) in group {
                for (index, item) in zip(indices, items) { replies[index] = item }
            }
        }
    }

    /// Sends `bytes` to every master (for `SCRIPT LOAD`); returns their replies.
    package func broadcast(_ bytes: [UInt8]) async throws -> [RedisValue] {
        if self.slotMap == nil {
            _ = try await self.execute(RedisCommand("PING").bytes)  // waits for the first map
        }
        let connections = try self.state.withLock { state throws(RedisError) -> [RedisConnection] in
            guard let map = state.map else { throw RedisError(.connectionUnavailable, "no Redis Cluster slot map") }
            return map.masters.compactMap { state.connections[$0] }
        }
        var replies: [RedisValue] = []
        for connection in connections { replies.append(try await connection.execute(bytes)) }
        return replies
    }

    private func send(_ request: Request) async throws -> RedisValue {
        try await withUnsafeThrowingContinuation { continuation in
            self.attempt(request, target: nil, asking: false) { continuation.resume(with: $0) }
        }
    }

    private func deadline() -> UInt64 {
        MonotonicClock.now() &+ self.configuration.commandTimeout.nanosecondsClamped
    }

    private enum Route {
        case send(RedisConnection, RedisURL.Address)
        case create(RedisURL.Address)
        case waitForMap
        case noMaster
        case closed
    }

    private func attempt(_ request: Request, target: RedisURL.Address?, asking: Bool, completion: @escaping Completion) {
        let route: Route = self.state.withLock { state in
            if state.closed { return .closed }
            guard let map = state.map else {
                state.waitingForMap.append((request, completion))
                return .waitForMap
            }
            let address: RedisURL.Address?
            if let target {
                address = target
            } else if let slot = request.slot {
                address = map.master(ofSlot: slot)
            } else if !map.masters.isEmpty {
                state.nextKeyless &+= 1
                address = map.masters[state.nextKeyless % map.masters.count]
            } else {
                address = nil
            }
            guard let address else { return .noMaster }
            if let connection = state.connections[address] { return .send(connection, address) }
            return .create(address)
        }
        switch route {
        case .closed:
            completion(.failure(RedisError(.clientClosed, "the Redis client has been shut down")))
        case .waitForMap:
            self.requestRefresh()
        case .noMaster:
            self.requestRefresh()
            let slot = request.slot.map { "slot \($0)" } ?? "a keyless command"
            self.retryLater(request, after: .failure(RedisError(.connectionUnavailable, "no Redis Cluster master serves \(slot)")), completion: completion)
        case .create(let address):
            let connection = self.connection(to: address)
            self.send(request, on: connection, address: address, asking: asking, completion: completion)
        case .send(let connection, let address):
            self.send(request, on: connection, address: address, asking: asking, completion: completion)
        }
    }

    private func send(_ request: Request, on connection: RedisConnection, address: RedisURL.Address, asking: Bool, completion: @escaping Completion) {
        let bytes = asking ? Self.askingBytes + request.bytes : request.bytes
        connection.execute(bytes, replyCount: request.replyCount + (asking ? 1 : 0)) { result in
            self.handle(result, request: request, address: address, asking: asking, completion: completion)
        }
    }

    private static let askingBytes = RedisCommand("ASKING").bytes

    private func handle(
        _ result: Result<RedisValue, any Error>, request: Request, address: RedisURL.Address, asking: Bool,
        completion: @escaping Completion
    ) {
        switch result {
        case .success(var reply):
            if asking {
                // Drop ASKING's own `+OK`.
                guard case .array(var items) = reply, items.count == request.replyCount + 1 else {
                    completion(.failure(RedisError(.unexpectedReply, "ASKING and its command did not return two replies")))
                    return
                }
                items.removeFirst()
                reply = request.replyCount == 1 ? items[0] : .array(items)
            }
            let deciding: RedisValue? =
                if request.replyCount == 1 { reply } else if request.isTransaction { Self.firstClusterError(reply) } else { nil }
            guard let deciding, case .error(let message) = deciding else {
                completion(.success(reply))
                return
            }
            if var redirect = ClusterRedirect(message: message) {
                if redirect.address.host.isEmpty { redirect.address.host = address.host }
                guard request.redirects < Self.maximumRedirects else {
                    completion(.success(reply))
                    return
                }
                var next = request
                next.redirects += 1
                switch redirect.kind {
                case .moved:
                    self.apply(redirect)
                    self.attempt(next, target: redirect.address, asking: false, completion: completion)
                case .ask where !request.isTransaction:
                    self.attempt(next, target: redirect.address, asking: true, completion: completion)
                case .ask:
                    // A transaction cannot follow ASK (ASKING covers one command); the slot is
                    // finished moving within moments.
                    self.retryLater(request, after: .success(reply), completion: completion)
                }
            } else if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
                if message.hasPrefix("CLUSTERDOWN") { self.requestRefresh() }
                self.retryLater(request, after: .success(reply), completion: completion)
            } else {
                completion(.success(reply))
            }
        case .failure(let error as RedisError) where error.code == .connectionUnavailable || error.code == .clientClosed:
            // Never written: safe to send again, to wherever the newest map says.
            self.requestRefresh()
            self.retryLater(request, after: result, completion: completion)
        case .failure(let error as RedisError) where error.code == .connectionLost || error.code == .timeout:
            self.requestRefresh()
            completion(result)
        case .failure:
            completion(result)
        }
    }

    /// Sends `request` again after a short back-off, or completes with `last` when the deadline
    /// would pass first (or the client is closing).
    private func retryLater(_ request: Request, after last: Result<RedisValue, any Error>, completion: @escaping Completion) {
        let delay = min(UInt64(10_000_000) << UInt64(min(request.retries, 5)), 200_000_000)
        let closed = self.state.withLock { $0.closed }
        guard !closed, MonotonicClock.now() &+ delay < request.deadline else {
            completion(last)
            return
        }
        var next = request
        next.retries += 1
        Task {
            try? await Task.sleep(for: .nanoseconds(delay))
            self.attempt(next, target: nil, asking: false, completion: completion)
        }
    }

    /// A reply that means "ask the cluster again": a redirect, `TRYAGAIN` or `CLUSTERDOWN`.
    static func isClusterRetryable(_ reply: RedisValue) -> Bool {
        guard case .error(let message) = reply else { return false }
        return ClusterRedirect(message: message) != nil || message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN")
    }

    /// The first redirect or cluster error among a transaction's replies.
    private static func firstClusterError(_ reply: RedisValue) -> RedisValue? {
        guard case .array(let items) = reply else { return reply }
        return items.first(where: isClusterRetryable)
    }

    // MARK: The map

    /// Records a `MOVED` redirect in the map and asks for a refresh (other slots may have moved too).
    package func apply(_ redirect: ClusterRedirect) {
        guard redirect.kind == .moved else { return }
        self.state.withLock { state in
            state.map?.assign(slot: redirect.slot, to: redirect.address)
        }
        self.requestRefresh()
    }

    /// Asks the map thread to read the slot map again soon.
    package func requestRefresh() {
        let signal = self.state.withLock { state in
            defer { state.refreshWanted = true }
            return !state.refreshWanted
        }
        if signal { self.wakeup.signal() }
    }

    /// The master that serves `key`'s slot now, as an endpoint for a connection of its own (the
    /// stream follower's blocking reads).
    ///
    /// Runs on that connection's I/O thread: before the first map it waits for one there, up to
    /// the connect timeout, so a follower started with the client does not fail its first connect.
    package func endpoint(forKey key: String) throws(RedisError) -> RedisURL.Endpoint {
        let slot = ClusterSlot.of(key)
        let waitUntil = MonotonicClock.now() &+ self.configuration.connectTimeout.nanosecondsClamped
        var address = self.state.withLock { $0.map?.master(ofSlot: slot) }
        while address == nil, self.slotMap == nil, MonotonicClock.now() < waitUntil {
            usleep(10_000)
            address = self.state.withLock { $0.map?.master(ofSlot: slot) }
        }
        guard let address else {
            self.requestRefresh()
            throw RedisError(.connectionUnavailable, "no Redis Cluster master is known for the slot of \(key) yet")
        }
        return .tcp(host: address.host, port: address.port)
    }

    /// The connection to `address`, made if there is none yet.
    private func connection(to address: RedisURL.Address) -> RedisConnection {
        if let existing = self.state.withLock({ $0.connections[address] }) { return existing }
        let made = RedisConnection(
            configuration: self.configuration, name: "gh-redis-\(address)",
            resolveEndpoint: { .tcp(host: address.host, port: address.port) }, logger: self.logger
        )
        let (connection, surplus) = self.state.withLock { state -> (RedisConnection, RedisConnection?) in
            if let existing = state.connections[address] { return (existing, made) }
            if state.closed { return (made, made) }
            state.connections[address] = made
            return (made, nil)
        }
        surplus?.close()
        return connection
    }

    private func runMapThread() {
        var lastRefresh: UInt64 = 0
        var nextAllowed: UInt64 = 0
        var failures = 0
        while true {
            let now = MonotonicClock.now()
            let (closed, refresh, expired, earliestWaiter, interval) = self.state.withLock { state in
                var expired: [(request: Request, completion: Completion)] = []
                state.waitingForMap.removeAll { item in
                    guard item.request.deadline <= now else { return false }
                    expired.append(item)
                    return true
                }
                // While a master's connection is down (it may be failing over) the map is read
                // every 250 ms, so commands queued for it move to the promoted replica soon
                // after the promotion rather than when they time out.
                let masterDown = state.connections.values.contains { !$0.isConnected }
                let interval = masterDown ? Self.degradedRefreshNanoseconds : Self.periodicRefreshNanoseconds
                let due = state.map == nil || state.refreshWanted || now &- lastRefresh >= interval
                let refresh = !state.closed && due && now >= nextAllowed
                if refresh { state.refreshWanted = false }
                return (state.closed, refresh, expired, state.waitingForMap.map(\.request.deadline).min(), interval)
            }
            for item in expired {
                let reason = self.state.withLock { $0.lastRefreshError }.map { ": \($0)" } ?? ""
                item.completion(.failure(RedisError(.connectionUnavailable, "no Redis Cluster slot map within the command timeout\(reason); the command was not sent")))
            }
            if closed {
                self.shutDownFromMapThread()
                return
            }
            if refresh {
                do {
                    let map = try self.discover()
                    self.publish(map)
                    failures = 0
                    lastRefresh = MonotonicClock.now()
                    nextAllowed = lastRefresh &+ Self.minimumRefreshIntervalNanoseconds
                } catch {
                    failures += 1
                    self.state.withLock { $0.lastRefreshError = error.message }
                    self.logger.log(
                        level: failures == 1 ? .warning : .debug, "cannot read the Redis Cluster slot map; retrying",
                        metadata: ["error": "\(error.message)"]
                    )
                    let backoff = min(UInt64(50_000_000) << UInt64(min(failures - 1, 5)), 1_000_000_000)
                    nextAllowed = MonotonicClock.now() &+ backoff
                    self.state.withLock { $0.refreshWanted = true }
                }
            }
            // Sleep until the next periodic refresh, an allowed retry of a wanted one, or the
            // first waiting command's deadline; a refresh request wakes the thread earlier.
            let after = MonotonicClock.now()
            var wakeAt = lastRefresh &+ interval
            if self.state.withLock({ $0.refreshWanted || $0.map == nil }) { wakeAt = min(wakeAt, nextAllowed) }
            if let earliestWaiter { wakeAt = min(wakeAt, earliestWaiter) }
            _ = self.wakeup.wait(socket: nil, timeoutNanoseconds: wakeAt > after ? wakeAt - after : 0)
        }
    }

    /// Asks one node after another for `CLUSTER SLOTS`: masters whose connection is up, the
    /// seeds, the other masters, then replicas. A map that serves every slot wins at once; else
    /// the most complete one found.
    private func discover() throws(RedisError) -> ClusterSlotMap {
        let (map, connections) = self.state.withLock { ($0.map, $0.connections) }
        var candidates: [RedisURL.Address] = []
        func add(_ address: RedisURL.Address) { if !candidates.contains(address) { candidates.append(address) } }
        for master in map?.masters ?? [] where connections[master]?.isConnected == true { add(master) }
        for seed in self.seeds { add(seed) }
        for master in map?.masters ?? [] { add(master) }
        for replica in map?.replicas ?? [] { add(replica) }
        var best: ClusterSlotMap?
        var reasons: [String] = []
        for address in candidates {
            do {
                let found = try self.askSlots(address)
                if found.assignedSlotCount == ClusterSlot.count { return found }
                if found.assignedSlotCount > (best?.assignedSlotCount ?? 0) { best = found }
                reasons.append("\(address): serves \(found.assignedSlotCount) of \(ClusterSlot.count) slots")
            } catch {
                reasons.append("\(address): \(error.message)")
            }
        }
        if let best { return best }
        throw RedisError(.connectionUnavailable, "no Redis Cluster node gave a slot map (asked \(candidates.count): \(reasons.joined(separator: "; ")))")
    }

    private func askSlots(_ address: RedisURL.Address) throws(RedisError) -> ClusterSlotMap {
        let timeout = min(self.configuration.connectTimeout, self.configuration.commandTimeout)
        let context = try HiredisContext.connect(to: .tcp(host: address.host, port: address.port), connectTimeout: timeout, ioTimeout: timeout)
        var commands: [RedisCommand] = []
        let url = self.configuration.url
        if let password = url.password {
            commands.append(url.user.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password))
        }
        commands.append(RedisCommand("CLUSTER", "SLOTS"))
        let replies = try context.roundTrip(commands, maxBytes: self.configuration.limits.maxReplyBytes)
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(.connectionUnavailable, "error reply: \(message)") }
        }
        return try ClusterSlotMap(clusterSlotsReply: replies[replies.count - 1], askedNode: address)
    }

    /// Installs a new map: connections for new masters, retirement for nodes that are no longer
    /// masters (their queued commands fail as "not sent" and go to the new owner), and the
    /// commands that waited for a map are sent.
    private func publish(_ map: ClusterSlotMap) {
        let (previous, retiring, waiting) = self.state.withLock { state in
            let previous = state.map
            state.map = map
            var retiring: [RedisConnection] = []
            for (address, connection) in state.connections where !map.masters.contains(address) {
                retiring.append(connection)
                state.connections[address] = nil
            }
            state.retired += retiring
            let waiting = state.waitingForMap
            state.waitingForMap = []
            return (previous, retiring, waiting)
        }
        for connection in retiring { connection.close() }
        for master in map.masters { _ = self.connection(to: master) }
        if previous?.masters.sorted(by: { $0.description < $1.description }) != map.masters.sorted(by: { $0.description < $1.description }) {
            self.logger.info(
                previous == nil ? "Redis Cluster slot map read" : "Redis Cluster masters changed",
                metadata: ["masters": "\(map.masters.map(\.description).joined(separator: ","))", "slots": "\(map.assignedSlotCount)"]
            )
        }
        for item in waiting { self.attempt(item.request, target: nil, asking: false, completion: item.completion) }
    }

    // MARK: Shutdown

    /// Stops accepting commands; connections finish what they have, then close.
    package func close() {
        let wake = self.state.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
        if wake { self.wakeup.signal() }
    }

    private func shutDownFromMapThread() {
        let (connections, waiting) = self.state.withLock { state in
            let all = Array(state.connections.values) + state.retired
            let waiting = state.waitingForMap
            state.waitingForMap = []
            return (all, waiting)
        }
        for item in waiting {
            item.completion(.failure(RedisError(.clientClosed, "the Redis client was shut down before the command could be sent")))
        }
        for connection in connections { connection.close() }
        self.exit.signal()
    }

    /// Waits until the map thread has ended and every connection's I/O thread with it.
    package func waitUntilClosed() async {
        await self.exit.wait()
        let connections = self.state.withLock { Array($0.connections.values) + $0.retired }
        for connection in connections { await connection.waitUntilClosed() }
    }
}
