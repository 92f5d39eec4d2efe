import GatehouseRedis
import GatehouseTesting
import Synchronization
import Testing

/// `RedisClient` on a real Redis Cluster (three masters, three replicas on loopback, started by
/// `RedisClusterDeployment`): routing by slot to every master, pipelines and transactions,
/// scripts each master has never seen, `MOVED` after a slot moved, `ASK` and `TRYAGAIN` while it
/// moves, the stream follower on its shard, and a master killed under writes.
@Suite("Cluster client", .serialized, .timeLimit(.minutes(4)))
struct ClusterClientTests {
    /// Hash tags spread over every master, `perMaster` on each.
    static func tags(_ cluster: RedisClusterDeployment, prefix: String, perMaster: Int) async throws -> [Int: [String]] {
        try await cluster.namesOnEveryMaster(perMaster: perMaster) { "\(prefix)-\($0)" }
    }

    @Test("slots match CLUSTER KEYSLOT; commands, pipelines, transactions and scripts reach every master")
    func routing() async throws {
        try await RedisClusterDeployment.withCluster { cluster in
            try await withClient(RedisConfiguration(url: try RedisURL(cluster.urlString))) { redis in
                // Our CRC16 against the server's, over tags, plain keys and odd braces.
                for key in ["a", "gh:{kate@example.org}:user", "{}x", "x{y}{z}", "gh:ip:{192.0.2.1}", "ü{é}", "user-17"] {
                    #expect(ClusterSlot.of(key) == (try await cluster.keySlot(key)), "\(key)")
                }
                let byMaster = try await Self.tags(cluster, prefix: "route", perMaster: 4)
                #expect(byMaster.count == 3)
                let tags = byMaster.values.flatMap { $0 }
                for tag in tags {
                    try await redis.set("t:{\(tag)}:v", tag)
                    #expect(try await redis.getString("t:{\(tag)}:v") == tag)
                }
                // Each key landed on its own master (asked directly, not through the router).
                for (port, owned) in byMaster {
                    for tag in owned {
                        #expect(try await cluster.send(port: port, ["GET", "t:{\(tag)}:v"]).string == tag)
                    }
                }
                // A pipeline over all masters: one reply per command, in order.
                let commands = tags.flatMap { [RedisCommand("INCR", "t:{\($0)}:n"), RedisCommand("GET", "t:{\($0)}:v")] }
                let replies = try await redis.pipeline(commands)
                #expect(replies.count == commands.count)
                for (index, tag) in tags.enumerated() {
                    #expect(replies[2 * index] == .integer(1) && replies[2 * index + 1].string == tag)
                }
                // A transaction on one user's slot.
                let tag = tags[0]
                let transaction = try await redis.pipeline([
                    RedisCommand("MULTI"), RedisCommand("INCR", "t:{\(tag)}:n"), RedisCommand("SET", "t:{\(tag)}:w", "x"), RedisCommand("EXEC"),
                ])
                #expect(transaction.last == .array([.integer(2), .simpleString("OK")]), "\(transaction)")
                // A script no master has seen: EVALSHA gets NOSCRIPT on each, the EVAL that follows
                // runs it there, and the next EVALSHA finds it.
                let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1]) .. '-' .. '\(UInt64.random(in: 0...UInt64.max))'")
                for port in byMaster.keys {
                    #expect(try await cluster.send(port: port, ["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))
                }
                for tag in tags {
                    let first = try await redis.eval(script, keys: ["t:{\(tag)}:s"], arguments: [5])
                    #expect(first.string?.hasPrefix("5-") == true, "\(first)")
                }
                for port in byMaster.keys {
                    #expect(try await cluster.send(port: port, ["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))
                }
                // SCRIPT LOAD reaches every master.
                let other = RedisScript("return 'loaded-\(UInt64.random(in: 0...UInt64.max))'")
                try await redis.load(other)
                for port in byMaster.keys {
                    #expect(try await cluster.send(port: port, ["SCRIPT", "EXISTS", other.sha1]) == .array([.integer(1)]))
                }
                #expect(redis.isCluster && redis.isConnected)
            }
        }
    }

    @Test("a moved slot: MOVED updates the map; mid-move, ASK reaches the keys already moved and TRYAGAIN waits")
    func slotMigration() async throws {
        try await RedisClusterDeployment.withCluster { cluster in
            try await withClient(RedisConfiguration(url: try RedisURL(cluster.urlString))) { redis in
                let masters = try await cluster.masterPorts()
                let tag = "moving-\(UInt64.random(in: 0...UInt64.max))"
                let slot = ClusterSlot.of(tag)
                let source = try await cluster.masterPort(forSlot: slot)
                let target = try #require(masters.first { $0 != source })
                for index in 0..<20 { try await redis.set("m:{\(tag)}:\(index)", "v\(index)") }
                #expect(redis.clusterRouter?.slotMap?.master(ofSlot: slot)?.port == source)

                // Half moved: 10 keys on the target, 10 still on the source.
                try await cluster.beginMigration(slot: slot, to: target)
                _ = try await cluster.migrateKeys(slot: slot, count: 10)
                for index in 0..<20 {
                    #expect(try await redis.getString("m:{\(tag)}:\(index)") == "v\(index)", "key \(index) mid-migration")
                }
                // A new key of a migrating slot is created on the target (ASK from the source).
                try await redis.set("m:{\(tag)}:new", "fresh")
                #expect(redis.clusterRouter?.slotMap?.master(ofSlot: slot)?.port == source, "ASK must not change the map")
                // A multi-key command over both halves gets TRYAGAIN until the move ends.
                var stillOnSource: [Int] = []
                // (A key already moved is answered with ASK by the source.)
                for index in 0..<20 where (try? await cluster.send(port: source, ["EXISTS", "m:{\(tag)}:\(index)"])) == .integer(1) {
                    stillOnSource.append(index)
                }
                let moved = try #require((0..<20).first { !stillOnSource.contains($0) })
                let staying = try #require(stillOnSource.first)
                let asked = ContinuousClock.now
                let mget = Task { try await redis.send(["MGET", "m:{\(tag)}:\(moved)", "m:{\(tag)}:\(staying)"]) }
                try await Task.sleep(for: .milliseconds(300))
                _ = try await cluster.migrateKeys(slot: slot, count: 100)
                try await cluster.finishMigration(slot: slot)
                let both = try await mget.value
                #expect(both.array?.compactMap(\.string) == ["v\(moved)", "v\(staying)"], "\(both)")
                #expect(ContinuousClock.now - asked >= .milliseconds(250), "MGET over both halves answered before the move ended")
                #expect(try await cluster.send(port: target, ["GET", "m:{\(tag)}:new"]).string == "fresh")

                // Moved: the first command gets MOVED, the map learns the slot's new master.
                for index in 0..<20 {
                    #expect(try await redis.getString("m:{\(tag)}:\(index)") == "v\(index)")
                }
                #expect(try await redis.getString("m:{\(tag)}:new") == "fresh")
                #expect(redis.clusterRouter?.slotMap?.master(ofSlot: slot)?.port == target)
                #expect(try await cluster.send(port: target, ["GET", "m:{\(tag)}:0"]).string == "v0")
            }
        }
    }

    @Test("the stream follower reads on the stream's master and follows the stream when its slot moves")
    func streamFollowerFollowsTheSlot() async throws {
        try await RedisClusterDeployment.withCluster { cluster in
            try await withClient(RedisConfiguration(url: try RedisURL(cluster.urlString))) { redis in
                let stream = "gh:revocations-\(UInt64.random(in: 0...UInt64.max))"
                let received = Received()
                let follower = RedisStreamFollower(client: redis, stream: stream, startingAfter: .zero, blockTime: .milliseconds(200)) { batch in
                    received.append(batch)
                }
                let following = Task { try await follower.run() }
                defer { following.cancel() }
                _ = try await redis.xadd(stream, fields: [.init("n", "1")])
                try await received.waitFor(1)
                let slot = ClusterSlot.of(stream)
                let source = try await cluster.masterPort(forSlot: slot)
                let target = try #require(try await cluster.masterPorts().first { $0 != source })
                try await cluster.migrateSlot(slot, to: target)
                _ = try await redis.xadd(stream, fields: [.init("n", "2")])
                try await received.waitFor(2)
                #expect(received.all.compactMap { $0.fields.first.map { String(decoding: $0.value, as: UTF8.self) } } == ["1", "2"])
                #expect(try await cluster.send(port: target, ["XLEN", stream]) == .integer(2))
            }
        }
    }

    /// 30 writers INCR keys on every master while the master of one is SIGKILLed; the cluster
    /// promotes its replica and the client must follow by itself. Writes to the other masters
    /// never stop; writes to the dead master's slots fail (never hang) until the promotion, and
    /// what was acknowledged but lost is at most the writes of the last moments.
    @Test("a master killed under writes: the client follows the failover")
    func failover() async throws {
        try await RedisClusterDeployment.withCluster { cluster in
            try await withClient(RedisConfiguration(url: try RedisURL(cluster.urlString))) { redis in
                let byMaster = try await Self.tags(cluster, prefix: "failover", perMaster: 10)
                let victim = try #require(byMaster.keys.sorted().first)
                let keys = byMaster.flatMap { port, tags in tags.map { (port, "f:{\($0)}:n") } }
                let tally = Tally()
                let start = ContinuousClock.now
                let writers = Task {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (port, key) in keys {
                            group.addTask {
                                for _ in 0..<100_000 where !tally.stop.load(ordering: .relaxed) && ContinuousClock.now - start < .seconds(60) {
                                    do {
                                        let value = try await redis.incr(key)
                                        tally.acknowledged.withLock { $0[key] = value }
                                    } catch {
                                        tally.failed.withLock { $0[port, default: 0] += 1 }
                                        try await Task.sleep(for: .milliseconds(20))
                                    }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                try await Task.sleep(for: .seconds(1))
                try await cluster.killMaster(port: victim)
                let killedAt = ContinuousClock.now
                let promoted = try await cluster.waitForFailover(ofMasterPort: victim, timeout: .seconds(30))
                // Writes to the promoted replica's slots succeed again within a few seconds.
                let victimKey = keys.first { $0.0 == victim }!.1
                let before = tally.acknowledged.withLock { $0[victimKey] ?? 0 }
                var resumedAfter: Duration?
                for _ in 0..<200 where resumedAfter == nil {
                    if tally.acknowledged.withLock({ $0[victimKey] ?? 0 }) > before { resumedAfter = ContinuousClock.now - killedAt }
                    try await Task.sleep(for: .milliseconds(50))
                }
                tally.stop.store(true, ordering: .relaxed)
                try await writers.value
                #expect(resumedAfter != nil, "writes to the failed master's slots never resumed")
                #expect(redis.clusterRouter?.slotMap?.master(ofSlot: ClusterSlot.of(victimKey))?.port == promoted)
                // Nothing acknowledged on the surviving masters was lost; on the failed one at most
                // the last few increments per key (asynchronous replication).
                var lost = 0
                for (port, key) in keys {
                    let owner = port == victim ? promoted : port
                    let stored = try await cluster.send(port: owner, ["GET", key]).integer ?? 0
                    let acked = tally.acknowledged.withLock { $0[key] ?? 0 }
                    if port == victim { lost += Int(max(0, acked - stored)) } else { #expect(stored >= acked, "\(key) lost writes on a healthy master") }
                }
                let failures = tally.failed.withLock { $0 }
                print("Cluster failover: promoted \(promoted) after the kill; writes resumed after \(resumedAfter.map { "\($0)" } ?? "never"); failed writes per master \(failures); acknowledged increments lost \(lost)")
                #expect(lost <= keys.filter { $0.0 == victim }.count * 5, "more acknowledged writes lost than the last moments hold: \(lost)")
                for port in byMaster.keys where port != victim {
                    #expect(failures[port, default: 0] == 0, "writes to the healthy master \(port) failed: \(failures)")
                }
            }
        }
    }
}

/// What the failover test's writers share.
private final class Tally: Sendable {
    let acknowledged = Mutex<[String: Int64]>([:])
    let failed = Mutex<[Int: Int]>([:])
    let stop = Atomic<Bool>(false)
}
