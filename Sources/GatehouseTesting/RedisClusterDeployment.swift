import Foundation
public import GatehouseRedis
import Logging
import Synchronization

/// A real Redis Cluster for tests: `masters` masters and `replicasPerMaster` replicas of each, every
/// one a ``RedisServerProcess`` in cluster mode (``RedisServerProcess/Options/cluster``) on its own
/// free loopback port, with its cluster bus on another and its own temporary directory
/// (`nodes.conf`, log, data), joined with `redis-cli --cluster create`.
///
/// ``start(masters:replicasPerMaster:nodeTimeoutMilliseconds:password:appendOnly:timeout:)``
/// returns once every node reports `cluster_state:ok` with all 16 384 slots assigned, every node
/// names the same master for every slot, and every replica's link to its master is up (bounded).
/// Tests then talk to single nodes (``send(port:_:)``, ``pipeline(port:_:)``: no redirection is
/// followed, so `MOVED` and `ASK` come back as they are), look at the slot map
/// (``slotOwners()``, ``masterPort(forSlot:)``, ``keySlot(_:)``), move slots by hand
/// (``beginMigration(slot:to:)``, ``migrateKeys(slot:count:)``, ``finishMigration(slot:)``,
/// ``migrateSlot(_:to:pauseBetweenKeys:)``) or with `redis-cli` (``reshard(slots:from:to:)``),
/// and crash a master (``killMaster(port:)``, ``waitForFailover(ofMasterPort:timeout:)``).
///
/// Prefer ``withCluster(masters:replicasPerMaster:nodeTimeoutMilliseconds:password:appendOnly:_:)``,
/// which always cleans up; the `atexit` hook of ``RedisServerProcess`` SIGKILLs any node left
/// behind. If `redis-server` or `redis-cli` is missing, `start` throws
/// ``RedisServerError/Code/notInstalled`` naming the Debian package: tests fail, never skip.
/// Every wait is bounded, and its error says what was waited for, what was seen last and the tail
/// of every node's log.
public final class RedisClusterDeployment: Sendable {
    /// The number of hash slots of a Redis Cluster.
    public static let hashSlots = 16384

    /// Every node, in the order given to `redis-cli --cluster create` (which makes the first
    /// ``masterCount`` of them masters on a single host); roles change with failovers, so ask
    /// ``masterPorts()`` and ``replicaPorts(of:)`` for the current ones.
    public let nodes: [RedisServerProcess]
    /// The number of masters the cluster was created with.
    public let masterCount: Int
    /// The number of replicas each master was created with.
    public let replicasPerMaster: Int
    /// `cluster-node-timeout` of every node.
    public let nodeTimeoutMilliseconds: Int
    /// The `requirepass` (and `masterauth`) of every node, if any.
    public let password: String?
    private let cli: String
    /// The masters once the cluster had settled after its creation.
    private let initialMasters = Mutex<[Int]>([])
    /// Slot migrations begun with ``beginMigration(slot:to:)`` and not yet finished, by slot.
    private let migrations = Mutex<[Int: Migration]>([:])
    /// Masters stopped with ``killMaster(port:)``: what they owned and who replicated them.
    private let killedMasters = Mutex<[Int: KilledMaster]>([:])

    private struct Migration: Sendable {
        var source: Int
        var target: Int
        var targetID: String
    }

    private struct KilledMaster: Sendable {
        var slots: [ClosedRange<Int>]
        var replicas: [Int]
    }

    private init(
        nodes: [RedisServerProcess], masterCount: Int, replicasPerMaster: Int, nodeTimeoutMilliseconds: Int, password: String?, cli: String
    ) {
        self.nodes = nodes
        self.masterCount = masterCount
        self.replicasPerMaster = replicasPerMaster
        self.nodeTimeoutMilliseconds = nodeTimeoutMilliseconds
        self.password = password
        self.cli = cli
    }

    // MARK: Starting and stopping

    /// Starts `masters × (1 + replicasPerMaster)` nodes, joins them with
    /// `redis-cli --cluster create … --cluster-replicas <replicasPerMaster> --cluster-yes`, and
    /// waits (at most `timeout`) until every node reports `cluster_state:ok` with all 16 384 slots
    /// assigned and ok, every node knows every other and names the same master for every slot,
    /// and every master has `replicasPerMaster` replicas whose link to it is up.
    ///
    /// - Parameters:
    ///   - masters: at least 3 (`redis-cli` creates no smaller cluster).
    ///   - nodeTimeoutMilliseconds: `cluster-node-timeout`; at 1000 ms a killed master is
    ///     replaced within a few seconds.
    ///   - password: `requirepass` and `masterauth` of every node; `redis-cli` gets it through
    ///     `REDISCLI_AUTH`, never on its command line.
    ///   - appendOnly: the AOF of ``RedisServerProcess/Options/appendOnly`` on every node.
    /// - Throws: ``RedisServerError/Code/notInstalled`` if `redis-server` or `redis-cli` is
    ///   missing; ``RedisServerError/Code/startFailed`` if a node does not start or
    ///   `redis-cli --cluster create` fails; ``RedisServerError/Code/timedOut`` if the cluster
    ///   does not settle in time.
    public static func start(
        masters: Int = 3,
        replicasPerMaster: Int = 1,
        nodeTimeoutMilliseconds: Int = 1000,
        password: String? = nil,
        appendOnly: Bool = false,
        timeout: Duration = .seconds(30)
    ) async throws -> RedisClusterDeployment {
        guard masters >= 3 else {
            throw RedisServerError(
                .startFailed, "a Redis Cluster needs at least 3 masters (redis-cli --cluster create refuses fewer), not \(masters)"
            )
        }
        guard replicasPerMaster >= 0, nodeTimeoutMilliseconds > 0 else {
            throw RedisServerError(
                .startFailed,
                "replicasPerMaster must be 0 or more and nodeTimeoutMilliseconds positive, not \(replicasPerMaster) and \(nodeTimeoutMilliseconds)"
            )
        }
        let cli: String
        do { cli = try ExternalProgram.redisCLI.locate() } catch { throw RedisServerError(.notInstalled, error.description) }
        _ = try RedisServerProcess.findExecutable()

        let options = RedisServerProcess.Options(
            appendOnly: appendOnly,
            password: password,
            extraArguments: password.map { ["--masterauth", $0] } ?? [],
            cluster: .init(nodeTimeoutMilliseconds: nodeTimeoutMilliseconds)
        )
        var nodes: [RedisServerProcess] = []
        do {
            for _ in 0..<(masters * (1 + replicasPerMaster)) {
                nodes.append(try await RedisServerProcess.start(options))
            }
            let deployment = RedisClusterDeployment(
                nodes: nodes, masterCount: masters, replicasPerMaster: replicasPerMaster,
                nodeTimeoutMilliseconds: nodeTimeoutMilliseconds, password: password, cli: cli
            )
            try await deployment.create(timeout: timeout)
            try await deployment.waitUntilSettled(timeout: timeout)
            return deployment
        } catch {
            for node in nodes { await node.cleanup() }
            throw error
        }
    }

    /// Starts a cluster, runs `body` with it, and tears it down whatever `body` does.
    public static func withCluster<T: Sendable>(
        masters: Int = 3,
        replicasPerMaster: Int = 1,
        nodeTimeoutMilliseconds: Int = 1000,
        password: String? = nil,
        appendOnly: Bool = false,
        _ body: (RedisClusterDeployment) async throws -> T
    ) async throws -> T {
        try await scoped(
            try await start(
                masters: masters, replicasPerMaster: replicasPerMaster, nodeTimeoutMilliseconds: nodeTimeoutMilliseconds,
                password: password, appendOnly: appendOnly
            ),
            cleanup: { await $0.cleanup() },
            body
        )
    }

    /// SIGKILLs every node and removes every directory.
    public func cleanup() async {
        for node in self.nodes { await node.cleanup() }
    }

    // MARK: Addresses

    /// The masters' ports once the cluster had settled after its creation: the seeds of
    /// ``urlString`` (they stay the seeds after a failover; a cluster client finds the rest).
    public var seedPorts: [Int] { self.initialMasters.withLock { $0 } }

    /// `redis-cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…` with every master of ``seedPorts`` as
    /// a seed, and `:<password>@` (in clear) when the nodes have one: for `GATEHOUSE_REDIS_URL`.
    public var urlString: String {
        let credentials = self.password.map { ":\($0)@" } ?? ""
        return "redis-cluster://\(credentials)" + self.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
    }

    /// The node listening on `port`.
    public func node(port: Int) -> RedisServerProcess? {
        self.nodes.first { $0.port == port }
    }

    // MARK: Talking to one node

    /// Sends one command to the node on `port` alone (with the cluster's password), on a
    /// short-lived single-server client (`redis://`): redirections are not followed, and error
    /// replies (`MOVED`, `ASK`, `CROSSSLOT`, …) come back as ``RedisValue/error(_:)`` rather than
    /// being thrown.
    ///
    /// - Throws: a ``RedisError`` if the node cannot be reached or does not answer within
    ///   `timeout`.
    public func send(port: Int, _ command: [any RedisArgumentConvertible], timeout: Duration = .seconds(5)) async throws -> RedisValue {
        try await self.pipeline(port: port, [command], timeout: timeout)[0]
    }

    /// Sends `commands` back to back on one new connection to the node on `port` and returns
    /// every reply, errors as ``RedisValue/error(_:)``: for state that lives on a connection,
    /// such as `[["ASKING"], ["GET", key]]` or `[["READONLY"], ["GET", key]]`.
    public func pipeline(
        port: Int, _ commands: [[any RedisArgumentConvertible]], timeout: Duration = .seconds(5)
    ) async throws -> [RedisValue] {
        var logger = Logger(label: "gatehouse.testing.cluster")
        logger.logLevel = .critical
        let configuration = RedisConfiguration(
            url: RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port), password: self.password),
            poolSize: 1,
            connectTimeout: .seconds(1),
            commandTimeout: timeout,
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200)),
            clientName: nil
        )
        let client = RedisClient(configuration: configuration, logger: logger)
        do {
            let replies = try await client.pipeline(commands.map { RedisCommand($0) })
            await client.shutdown()
            return replies
        } catch {
            await client.shutdown()
            throw error
        }
    }

    // MARK: The slot map

    /// Which master owns which slots, as a running node's `CLUSTER SLOTS` says: each range of
    /// consecutive slots of one master (adjacent ranges merged) → the master's port. Slots that
    /// no master serves are absent.
    public func slotOwners() async throws -> [ClosedRange<Int>: Int] {
        try Self.slotMap(try await self.askRunningNode(["CLUSTER", "SLOTS"]))
    }

    /// How many slots each master owns (``slotOwners()`` summed per port).
    public func slotCounts() async throws -> [Int: Int] {
        Self.counts(try await self.slotOwners())
    }

    /// The port of the master that owns `slot`.
    ///
    /// - Throws: ``RedisServerError/Code/commandFailed`` if no master serves it.
    public func masterPort(forSlot slot: Int) async throws -> Int {
        let owners = try await self.slotOwners()
        guard let owner = owners.first(where: { $0.key.contains(slot) })?.value else {
            throw RedisServerError(.commandFailed, "no master serves slot \(slot): \(owners.sorted { $0.key.lowerBound < $1.key.lowerBound })")
        }
        return owner
    }

    /// The ports of the masters that own slots, ascending.
    public func masterPorts() async throws -> [Int] {
        Set(try await self.slotOwners().values).sorted()
    }

    /// Names whose slots (`name(i)` for i = 0, 1, …, the slot of the whole name, or of its
    /// `{hash tag}`) spread over every master: `perMaster` on each, by master port. Tests use it
    /// to put users or keys on every shard. Bounded: at most 20,000 names are tried.
    public func namesOnEveryMaster(perMaster: Int, _ name: (Int) -> String) async throws -> [Int: [String]] {
        let owners = try await self.slotOwners()
        let masters = Set(owners.values)
        var byMaster: [Int: [String]] = [:]
        for index in 0..<20_000 where masters.contains(where: { byMaster[$0, default: []].count < perMaster }) {
            let candidate = name(index)
            let slot = ClusterSlot.of(candidate)
            guard let owner = owners.first(where: { $0.key.contains(slot) })?.value else { continue }
            if byMaster[owner, default: []].count < perMaster { byMaster[owner, default: []].append(candidate) }
        }
        guard masters.allSatisfy({ byMaster[$0, default: []].count == perMaster }) else {
            throw RedisServerError(.commandFailed, "could not spread \(perMaster) names over every master: \(byMaster.mapValues(\.count))")
        }
        return byMaster
    }

    /// The running replicas of the master on `masterPort` (as a running node's `CLUSTER NODES`
    /// says; replicas flagged as failing are left out), ascending.
    public func replicaPorts(of masterPort: Int) async throws -> [Int] {
        let entries = try await self.clusterNodes()
        guard let master = entries.first(where: { $0.port == masterPort }) else {
            throw RedisServerError(.commandFailed, "no node of the cluster listens on \(masterPort)")
        }
        return entries.filter { entry in
            entry.flags.contains("slave") && entry.masterID == master.id && !entry.flags.contains { $0.hasPrefix("fail") }
                && self.node(port: entry.port)?.pid != nil
        }.map(\.port).sorted()
    }

    /// The first of ``replicaPorts(of:)``, nil if the master has no running replica.
    public func replicaPort(of masterPort: Int) async throws -> Int? {
        try await self.replicaPorts(of: masterPort).first
    }

    /// The cluster node id of the node on `port` (`CLUSTER MYID` if it runs, otherwise what a
    /// running node's `CLUSTER NODES` says).
    public func nodeID(port: Int) async throws -> String {
        if self.node(port: port)?.pid != nil, let id = try await self.send(port: port, ["CLUSTER", "MYID"]).string {
            return id
        }
        guard let entry = try await self.clusterNodes().first(where: { $0.port == port }) else {
            throw RedisServerError(.commandFailed, "no node of the cluster listens on \(port)")
        }
        return entry.id
    }

    /// The slot of `key` (hash tags included) as a running node computes it (`CLUSTER KEYSLOT`).
    public func keySlot(_ key: String) async throws -> Int {
        let reply = try await self.askRunningNode(["CLUSTER", "KEYSLOT", key])
        guard let slot = reply.integer else {
            throw RedisServerError(.commandFailed, "CLUSTER KEYSLOT answered \(reply)")
        }
        return Int(slot)
    }

    // MARK: Moving a slot by hand

    /// Starts moving `slot` from the master that owns it to the master on `targetPort`, the way
    /// the cluster specification describes: `CLUSTER SETSLOT <slot> IMPORTING <source id>` on the
    /// target, then `CLUSTER SETSLOT <slot> MIGRATING <target id>` on the source. No key moves
    /// yet: from now on the source answers `ASK` for a key of the slot it does not hold, and the
    /// target serves such a key only after `ASKING`. Continue with ``migrateKeys(slot:count:)``
    /// and ``finishMigration(slot:)``.
    public func beginMigration(slot: Int, to targetPort: Int) async throws {
        guard (0..<Self.hashSlots).contains(slot) else {
            throw RedisServerError(.commandFailed, "slot \(slot) is not in 0…\(Self.hashSlots - 1)")
        }
        guard self.migrations.withLock({ $0[slot] }) == nil else {
            throw RedisServerError(.commandFailed, "slot \(slot) is already being migrated")
        }
        let source = try await self.masterPort(forSlot: slot)
        guard try await self.masterPorts().contains(targetPort), source != targetPort else {
            throw RedisServerError(
                .commandFailed, "cannot move slot \(slot) from \(source) to \(targetPort): the target must be another master that owns slots"
            )
        }
        let sourceID = try await self.nodeID(port: source)
        let targetID = try await self.nodeID(port: targetPort)
        try await self.expectOK(port: targetPort, ["CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID])
        try await self.expectOK(port: source, ["CLUSTER", "SETSLOT", slot, "MIGRATING", targetID])
        self.migrations.withLock { $0[slot] = Migration(source: source, target: targetPort, targetID: targetID) }
    }

    /// Moves up to `count` keys of `slot` (begun with ``beginMigration(slot:to:)``) from the
    /// source to the target: `CLUSTER GETKEYSINSLOT` on the source, then one
    /// `MIGRATE 127.0.0.1 <target> "" 0 5000 [AUTH <password>] KEYS …`. Returns how many keys
    /// moved (0 once the source holds none).
    @discardableResult
    public func migrateKeys(slot: Int, count: Int = 100) async throws -> Int {
        let migration = try self.migration(of: slot)
        let reply = try await self.send(port: migration.source, ["CLUSTER", "GETKEYSINSLOT", slot, max(count, 1)])
        guard let keys = reply.array?.compactMap(\.bytes) else {
            throw RedisServerError(.commandFailed, "CLUSTER GETKEYSINSLOT \(slot) on \(migration.source) answered \(reply)")
        }
        guard !keys.isEmpty else { return 0 }
        var command: [any RedisArgumentConvertible] = ["MIGRATE", "127.0.0.1", migration.target, "", 0, 5000]
        if let password = self.password { command += ["AUTH", password] }
        command.append("KEYS")
        command.append(contentsOf: keys.map { $0 as any RedisArgumentConvertible })
        switch try await self.send(port: migration.source, command, timeout: .seconds(10)) {
        case .simpleString("OK"):
            return keys.count
        case .simpleString("NOKEY"):
            return 0
        case let other:
            throw RedisServerError(
                .commandFailed,
                "MIGRATE of \(keys.count) keys of slot \(slot) from \(migration.source) to \(migration.target) answered \(other)"
            )
        }
    }

    /// Ends a migration begun with ``beginMigration(slot:to:)``: moves the keys still on the
    /// source (in batches of 100, bounded), then `CLUSTER SETSLOT <slot> NODE <target id>` on
    /// the target, the source and every other running master, and waits (at most 30 s) until
    /// every running node names the target as the slot's owner.
    public func finishMigration(slot: Int) async throws {
        let migration = try self.migration(of: slot)
        try await self.moveRemainingKeys(slot: slot, migration: migration, pause: nil)
        let others = try await self.masterPorts().filter { $0 != migration.source && $0 != migration.target && self.node(port: $0)?.pid != nil }
        for port in [migration.target, migration.source] + others {
            try await self.expectOK(port: port, ["CLUSTER", "SETSLOT", slot, "NODE", migration.targetID])
        }
        self.migrations.withLock { _ = $0.removeValue(forKey: slot) }
        try await self.poll("every running node to name \(migration.target) as the owner of slot \(slot)", timeout: .seconds(30)) {
            () async -> PollResult<Void> in
            for node in self.nodes where node.pid != nil {
                do {
                    let owners = try Self.slotMap(try await self.send(port: node.port, ["CLUSTER", "SLOTS"], timeout: .seconds(2)))
                    let owner = owners.first { $0.key.contains(slot) }?.value
                    if owner != migration.target { return .waiting("node \(node.port) names \(owner.map { "\($0)" } ?? "no one")") }
                } catch {
                    return .waiting("node \(node.port): \(error)")
                }
            }
            return .done(())
        }
    }

    /// Moves `slot` to the master on `targetPort` by hand: ``beginMigration(slot:to:)``, then
    /// its keys in batches of 100 — or one at a time with `pauseBetweenKeys` between them, so
    /// that clients meet the half-moved slot — then ``finishMigration(slot:)``.
    public func migrateSlot(_ slot: Int, to targetPort: Int, pauseBetweenKeys: Duration? = nil) async throws {
        try await self.beginMigration(slot: slot, to: targetPort)
        if let pauseBetweenKeys {
            try await self.moveRemainingKeys(slot: slot, migration: try self.migration(of: slot), pause: pauseBetweenKeys)
        }
        try await self.finishMigration(slot: slot)
    }

    // MARK: Resharding with redis-cli

    /// Moves `count` slots (and their keys) from the master on `sourcePort` to the master on
    /// `targetPort` with `redis-cli --cluster reshard … --cluster-from <id> --cluster-to <id>
    /// --cluster-slots <count> --cluster-yes` (at most 120 s; its output is in the error if it
    /// fails), then waits (at most 30 s) until `redis-cli --cluster check` finds every node in
    /// agreement and every slot covered, and every running node reports the same slot map.
    ///
    /// `redis-cli` refuses to reshard a cluster whose nodes disagree or that has a slot half
    /// moved, so this first waits (at most 30 s) for `redis-cli --cluster check` to pass.
    public func reshard(slots count: Int, from sourcePort: Int, to targetPort: Int) async throws {
        try await self.waitForClusterCheck("redis-cli --cluster check to pass before resharding")
        let sourceID = try await self.nodeID(port: sourcePort)
        let targetID = try await self.nodeID(port: targetPort)
        let result = try await self.runCLI(
            [
                "--cluster", "reshard", "127.0.0.1:\(sourcePort)", "--cluster-from", sourceID, "--cluster-to", targetID,
                "--cluster-slots", "\(count)", "--cluster-yes",
            ],
            timeout: .seconds(120)
        )
        guard result.status == 0, !result.timedOut else {
            throw RedisServerError(
                .commandFailed,
                "redis-cli --cluster reshard of \(count) slots from \(sourcePort) to \(targetPort) "
                    + (result.timedOut ? "ran over 120 s" : "exited with \(result.status)") + ": \(Self.tail(result.stdout, lines: 15))"
            )
        }
        try await self.waitForClusterCheck("redis-cli --cluster check to pass after resharding")
        _ = try await self.waitForAgreement("every running node to report the same slot map after resharding", timeout: .seconds(30))
    }

    // MARK: Faults

    /// SIGKILLs the master on `port` (a crash: no shutdown, no last replication), after noting
    /// which slots it owns and which replicas it has, for ``waitForFailover(ofMasterPort:timeout:)``.
    public func killMaster(port: Int) async throws {
        guard let node = self.node(port: port), node.pid != nil else {
            throw RedisServerError(.signalFailed, "no running node of the cluster listens on \(port)")
        }
        let slots = try await self.slotOwners().filter { $0.value == port }.map(\.key).sorted { $0.lowerBound < $1.lowerBound }
        guard !slots.isEmpty else {
            throw RedisServerError(.signalFailed, "the node on \(port) is not a master that owns slots")
        }
        let replicas = try await self.replicaPorts(of: port)
        self.killedMasters.withLock { $0[port] = KilledMaster(slots: slots, replicas: replicas) }
        await node.kill()
    }

    /// Waits (at most `timeout`) until the slots of the master killed with ``killMaster(port:)``
    /// belong to one other node, every running node says so and reports `cluster_state:ok`, and
    /// that node answers `ROLE` as a master; returns its port (normally the killed master's
    /// replica).
    public func waitForFailover(ofMasterPort port: Int, timeout: Duration = .seconds(30)) async throws -> Int {
        guard let killed = self.killedMasters.withLock({ $0[port] }) else {
            throw RedisServerError(.commandFailed, "the master on \(port) was not stopped with killMaster(port:)")
        }
        return try await self.poll(
            "a replica of \(port) (\(killed.replicas)) to take over its \(killed.slots.count) slot ranges on every running node",
            timeout: timeout
        ) { () async -> PollResult<Int> in
            var successor: Int?
            for node in self.nodes where node.pid != nil {
                let view: NodeView
                do { view = try await self.view(port: node.port) } catch { return .waiting("node \(node.port): \(error)") }
                guard view.info["cluster_state"] == "ok" else {
                    return .waiting("node \(node.port): cluster_state:\(view.info["cluster_state"] ?? "?")")
                }
                // Who owns the first and the last slot of each range the killed master had.
                let owners = Set(
                    killed.slots.flatMap { [$0.lowerBound, $0.upperBound] }.map { slot in
                        view.slots.first { range, _ in range.contains(slot) }?.value
                    }
                )
                guard owners.count == 1, let owner = owners.first ?? nil, owner != port else {
                    let named = owners.map { owner in owner.map { "\($0)" } ?? "no one" }.sorted()
                    return .waiting("node \(node.port) names \(named) for the slots")
                }
                guard successor == nil || successor == owner else {
                    return .waiting("the nodes disagree: \(successor!) and \(owner)")
                }
                successor = owner
            }
            guard let successor else { return .waiting("no node runs") }
            let role = try? await self.send(port: successor, ["ROLE"], timeout: .seconds(2)).array?.first?.string
            return role == "master" ? .done(successor) : .waiting("\(successor) answers ROLE \(role ?? "nothing")")
        }
    }

    /// The last lines of every node's log, for failure messages.
    public func logTails() -> String {
        self.nodes.map { "node \($0.port): \($0.logTail())" }.joined(separator: " || ")
    }

    // MARK: Internals

    /// `redis-cli --cluster create` with every node, masters first.
    private func create(timeout: Duration) async throws {
        let result = try await self.runCLI(
            ["--cluster", "create"] + self.nodes.map { "127.0.0.1:\($0.port)" }
                + ["--cluster-replicas", "\(self.replicasPerMaster)", "--cluster-yes"],
            timeout: timeout
        )
        guard result.status == 0, !result.timedOut else {
            throw RedisServerError(
                .startFailed,
                "redis-cli --cluster create " + (result.timedOut ? "ran over \(timeout)" : "exited with \(result.status)")
                    + ": \(Self.tail(result.stdout, lines: 15)) — \(self.logTails())"
            )
        }
    }

    /// Until every node reports `cluster_state:ok`, all slots assigned and ok and every other
    /// node known, every node names the same masters, there are ``masterCount`` of them, and
    /// each has ``replicasPerMaster`` replicas whose link is up (`ROLE`: `connected`).
    private func waitUntilSettled(timeout: Duration) async throws {
        let expectedReplicas = self.masterCount * self.replicasPerMaster
        let settledMasters = try await self.poll(
            "the cluster to settle (\(self.masterCount) masters, \(expectedReplicas) replicas connected, every node ok)", timeout: timeout
        ) { () async -> PollResult<[Int]> in
            var views: [NodeView] = []
            for node in self.nodes {
                do { views.append(try await self.view(port: node.port)) } catch { return .waiting("node \(node.port): \(error)") }
            }
            for view in views {
                let info = view.info
                guard info["cluster_state"] == "ok", info["cluster_slots_assigned"] == "\(Self.hashSlots)",
                    info["cluster_slots_ok"] == "\(Self.hashSlots)", info["cluster_known_nodes"] == "\(self.nodes.count)"
                else {
                    return .waiting(
                        "node \(view.port): cluster_state:\(info["cluster_state"] ?? "?") slots_assigned:\(info["cluster_slots_assigned"] ?? "?") "
                            + "slots_ok:\(info["cluster_slots_ok"] ?? "?") known_nodes:\(info["cluster_known_nodes"] ?? "?")"
                    )
                }
                guard view.slots == views[0].slots else {
                    return .waiting("nodes \(views[0].port) and \(view.port) see different slot maps")
                }
            }
            let masters = Set(views[0].slots.values)
            guard masters.count == self.masterCount else { return .waiting("\(masters.count) masters own slots") }
            var replicas: [Int: Int] = [:]
            for view in views where view.role == "slave" && view.linkUp {
                if let master = view.replicaOf { replicas[master, default: 0] += 1 }
            }
            for master in masters where replicas[master, default: 0] != self.replicasPerMaster {
                return .waiting("master \(master) has \(replicas[master, default: 0]) connected replicas")
            }
            return .done(self.nodes.map(\.port).filter { masters.contains($0) })
        }
        self.initialMasters.withLock { $0 = settledMasters }
    }

    /// Until `redis-cli --cluster check` (asking the first running node) exits 0 and says that
    /// every node agrees about the slots and that every slot is covered: at most 30 s.
    private func waitForClusterCheck(_ what: String) async throws {
        try await self.poll(what, timeout: .seconds(30), interval: .milliseconds(200)) { () async -> PollResult<Void> in
            guard let port = self.nodes.first(where: { $0.pid != nil })?.port else { return .waiting("no node runs") }
            do {
                let check = try await self.runCLI(["--cluster", "check", "127.0.0.1:\(port)"], timeout: .seconds(20))
                let output = check.stdout
                if check.status == 0, output.contains("[OK] All nodes agree about slots configuration."),
                    output.contains("[OK] All \(Self.hashSlots) slots covered.")
                {
                    return .done(())
                }
                return .waiting(Self.tail(output, lines: 6))
            } catch {
                return .waiting("\(error)")
            }
        }
    }

    /// Until every running node reports `cluster_state:ok` and the same slot map; returns it.
    private func waitForAgreement(_ what: String, timeout: Duration) async throws -> [ClosedRange<Int>: Int] {
        try await self.poll(what, timeout: timeout) { () async -> PollResult<[ClosedRange<Int>: Int]> in
            var first: NodeView?
            for node in self.nodes where node.pid != nil {
                let view: NodeView
                do { view = try await self.view(port: node.port) } catch { return .waiting("node \(node.port): \(error)") }
                guard view.info["cluster_state"] == "ok" else {
                    return .waiting("node \(node.port): cluster_state:\(view.info["cluster_state"] ?? "?")")
                }
                if let first, first.slots != view.slots {
                    return .waiting("nodes \(first.port) and \(view.port) see different slot maps")
                }
                first = first ?? view
            }
            guard let first else { return .waiting("no node runs") }
            return .done(first.slots)
        }
    }

    /// What one node says about the cluster: `CLUSTER INFO`, `CLUSTER SLOTS` and `ROLE`.
    private struct NodeView: Sendable {
        var port: Int
        var info: [String: String]
        var slots: [ClosedRange<Int>: Int]
        /// `master` or `slave`.
        var role: String?
        /// For a replica, its master's port.
        var replicaOf: Int?
        /// For a replica, whether its link to the master is up (`connected`).
        var linkUp: Bool
    }

    private func view(port: Int) async throws -> NodeView {
        let replies = try await self.pipeline(port: port, [["CLUSTER", "INFO"], ["CLUSTER", "SLOTS"], ["ROLE"]], timeout: .seconds(2))
        guard let text = replies[0].string else {
            throw RedisServerError(.commandFailed, "CLUSTER INFO answered \(replies[0])")
        }
        var info: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { info[String(parts[0])] = String(parts[1]) }
        }
        // ROLE: ["master", offset, replicas] or ["slave", host, port, link state, offset].
        let role = replies[2].array ?? []
        var replicaOf: Int?
        var linkUp = false
        if role.count >= 4, role[0].string == "slave" {
            replicaOf = role[2].integer.map { Int($0) }
            linkUp = role[3].string == "connected"
        }
        return NodeView(
            port: port, info: info, slots: try Self.slotMap(replies[1]), role: role.first?.string, replicaOf: replicaOf, linkUp: linkUp
        )
    }

    /// A `CLUSTER SLOTS` reply as range → master port, adjacent ranges of one master merged.
    private static func slotMap(_ reply: RedisValue) throws -> [ClosedRange<Int>: Int] {
        guard let entries = reply.array else {
            throw RedisServerError(.commandFailed, "CLUSTER SLOTS answered \(reply)")
        }
        var ranges: [(ClosedRange<Int>, Int)] = []
        for entry in entries {
            guard let items = entry.array, items.count >= 3, let start = items[0].integer, let end = items[1].integer, start <= end,
                let master = items[2].array, master.count >= 2, let port = master[1].integer
            else {
                throw RedisServerError(.commandFailed, "unexpected CLUSTER SLOTS entry \(entry)")
            }
            ranges.append((Int(start)...Int(end), Int(port)))
        }
        ranges.sort { $0.0.lowerBound < $1.0.lowerBound }
        var merged: [ClosedRange<Int>: Int] = [:]
        var current: (ClosedRange<Int>, Int)?
        for (range, port) in ranges {
            if let (last, owner) = current, owner == port, last.upperBound + 1 == range.lowerBound {
                current = (last.lowerBound...range.upperBound, owner)
            } else {
                if let (last, owner) = current { merged[last] = owner }
                current = (range, port)
            }
        }
        if let (last, owner) = current { merged[last] = owner }
        return merged
    }

    private static func counts(_ owners: [ClosedRange<Int>: Int]) -> [Int: Int] {
        owners.reduce(into: [:]) { $0[$1.value, default: 0] += $1.key.count }
    }

    /// One line of `CLUSTER NODES`.
    private struct NodeEntry: Sendable {
        var id: String
        var port: Int
        var flags: [String]
        /// The master's id, for a replica.
        var masterID: String?
    }

    /// A running node's `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> …`.
    private func clusterNodes() async throws -> [NodeEntry] {
        let reply = try await self.askRunningNode(["CLUSTER", "NODES"])
        guard let text = reply.string else {
            throw RedisServerError(.commandFailed, "CLUSTER NODES answered \(reply)")
        }
        return try text.split(whereSeparator: \.isNewline).map { line throws -> NodeEntry in
            let fields = line.split(separator: " ")
            guard fields.count >= 8, let address = fields[1].split(separator: "@").first,
                let portText = address.split(separator: ":").last, let port = Int(portText)
            else {
                throw RedisServerError(.commandFailed, "unexpected CLUSTER NODES line: \(line)")
            }
            return NodeEntry(
                id: String(fields[0]), port: port, flags: fields[2].split(separator: ",").map(String.init),
                masterID: fields[3] == "-" ? nil : String(fields[3])
            )
        }
    }

    /// Sends `command` to the first running node that answers without an error reply.
    private func askRunningNode(_ command: [any RedisArgumentConvertible]) async throws -> RedisValue {
        var lastError: (any Error)?
        for node in self.nodes where node.pid != nil {
            do {
                let reply = try await self.send(port: node.port, command, timeout: .seconds(2))
                if case .error(let message) = reply {
                    lastError = RedisServerError(.commandFailed, "\(Self.describe(command)) on \(node.port) answered -\(message)")
                    continue
                }
                return reply
            } catch {
                lastError = error
            }
        }
        throw lastError ?? RedisServerError(.commandFailed, "no node of the cluster runs to answer \(Self.describe(command))")
    }

    /// Sends `command` to `port` and throws unless it answers `+OK`.
    private func expectOK(port: Int, _ command: [any RedisArgumentConvertible]) async throws {
        let reply = try await self.send(port: port, command)
        guard reply == .simpleString("OK") else {
            throw RedisServerError(.commandFailed, "\(Self.describe(command)) on \(port) answered \(reply)")
        }
    }

    private func migration(of slot: Int) throws -> Migration {
        guard let migration = self.migrations.withLock({ $0[slot] }) else {
            throw RedisServerError(.commandFailed, "slot \(slot) is not being migrated (beginMigration(slot:to:) first)")
        }
        return migration
    }

    /// Moves every key of `slot` still on the source: in batches of 100, or one at a time with
    /// `pause` between them. Bounded in count (the keys the source holds at the start: no new
    /// key of a migrating slot is created there) and in time (120 s).
    private func moveRemainingKeys(slot: Int, migration: Migration, pause: Duration?) async throws {
        let reply = try await self.send(port: migration.source, ["CLUSTER", "COUNTKEYSINSLOT", slot])
        guard let total = reply.integer else {
            throw RedisServerError(.commandFailed, "CLUSTER COUNTKEYSINSLOT \(slot) on \(migration.source) answered \(reply)")
        }
        let batch = pause == nil ? 100 : 1
        let deadline = ContinuousClock.now + .seconds(120)
        for _ in 0...(Int(total) / batch + 1) where ContinuousClock.now < deadline {
            if try await self.migrateKeys(slot: slot, count: batch) == 0 { return }
            if let pause { try await Task.sleep(for: pause) }
        }
        let left = try await self.send(port: migration.source, ["CLUSTER", "COUNTKEYSINSLOT", slot])
        guard left.integer == 0 else {
            throw RedisServerError(
                .timedOut, "slot \(slot) still holds \(left) keys on \(migration.source) after moving the \(total) it held (or 120 s)"
            )
        }
    }

    /// Runs redis-cli with `REDISCLI_AUTH` (never `-a`: the password stays off command lines),
    /// stdout and stderr together.
    private func runCLI(_ arguments: [String], timeout: Duration) async throws -> Program.Result {
        var environment = ProcessInfo.processInfo.environment
        if let password = self.password { environment["REDISCLI_AUTH"] = password }
        do {
            return try await Program.run(self.cli, arguments, environment: environment, mergingErrors: true, timeout: timeout)
        } catch {
            throw RedisServerError(.commandFailed, "cannot run redis-cli \(arguments.prefix(2).joined(separator: " ")): \(error)")
        }
    }

    private enum PollResult<T> {
        case done(T)
        /// Not yet; what was seen, for the error if the wait runs out.
        case waiting(String)
    }

    /// A poll (a cluster's state has no event to wait on): `check` every `interval` until it is
    /// done, bounded in time (`timeout`) and in count (10 000 checks).
    private func poll<T>(
        _ what: String, timeout: Duration, interval: Duration = .milliseconds(100), _ check: () async -> PollResult<T>
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        var last = "not checked"
        for _ in 0..<10_000 where ContinuousClock.now < deadline {
            switch await check() {
            case .done(let value): return value
            case .waiting(let state): last = state
            }
            try await Task.sleep(for: interval)
        }
        throw RedisServerError(.timedOut, "waited \(timeout) for \(what); last seen: \(last) — \(self.logTails())")
    }

    private static func tail(_ text: String, lines: Int) -> String {
        text.split(whereSeparator: \.isNewline).suffix(lines).joined(separator: " | ")
    }

    private static func describe(_ command: [any RedisArgumentConvertible]) -> String {
        command.map { argument in
            switch argument {
            case let text as String: text
            case let bytes as [UInt8]: String(decoding: bytes, as: UTF8.self)
            default: "\(argument)"
            }
        }.joined(separator: " ")
    }
}
