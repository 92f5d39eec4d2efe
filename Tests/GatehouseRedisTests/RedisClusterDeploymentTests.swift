import GatehouseRedis
import GatehouseTesting
import Testing

/// The Redis Cluster harness itself (``RedisClusterDeployment``), proven with raw commands to
/// single nodes: the shape of a new cluster, `MOVED` from a node that does not own a key, `ASK`
/// while a slot is half moved, a slot moved by hand and back, `redis-cli --cluster reshard`, and
/// a killed master replaced by its replica. One cluster walks through all of it (node timeout
/// 1000 ms, so the failover takes seconds); every wait is bounded by the harness.
@Suite("RedisClusterDeployment", .serialized, .timeLimit(.minutes(3)))
struct RedisClusterDeploymentTests {
    @Test func startsRedirectsMigratesReshardsAndFailsOver() async throws {
        try await RedisClusterDeployment.withCluster { cluster in
            // Three masters with about a third of the slots each, each with one replica of its own.
            let masters = try await cluster.masterPorts()
            #expect(cluster.nodes.count == 6)
            #expect(masters.count == 3)
            #expect(Set(masters) == Set(cluster.seedPorts))
            #expect(cluster.urlString == "redis-cluster://" + cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","))
            let counts = try await cluster.slotCounts()
            #expect(counts.values.reduce(0, +) == RedisClusterDeployment.hashSlots)
            for port in masters {
                #expect((5400...5500).contains(counts[port] ?? 0), "master \(port) owns \(counts[port] ?? 0) slots")
            }
            var replicaOf: [Int: Int] = [:]
            for port in masters {
                let replicas = try await cluster.replicaPorts(of: port)
                #expect(replicas.count == 1, "master \(port) has replicas \(replicas)")
                guard let replica = replicas.first else { continue }
                replicaOf[port] = replica
                let role = try await cluster.send(port: replica, ["ROLE"]).array ?? []
                #expect(role.count >= 4 && role[0].string == "slave" && role[2].integer == Int64(port) && role[3].string == "connected", "\(role)")
            }
            #expect(Set(replicaOf.values).count == 3 && Set(replicaOf.values).isDisjoint(with: masters))

            // Key slots as the nodes compute them: the specification's CRC16 check value, and a
            // hash tag that puts a user's keys in the slot of the user.
            #expect(try await cluster.keySlot("123456789") == 12739)
            let userSlot = try await cluster.keySlot("alice@example.org")
            #expect(try await cluster.keySlot("{alice@example.org}:totp:last") == userSlot)

            // A key lives on its owner; another master and the owner's replica answer MOVED; the
            // replica has a copy it serves after READONLY.
            let key = "gatehouse:cluster-harness"
            let slot = try await cluster.keySlot(key)
            let owner = try await cluster.masterPort(forSlot: slot)
            #expect(try await cluster.send(port: owner, ["SET", key, "v1"]) == .simpleString("OK"))
            #expect(try await cluster.send(port: owner, ["GET", key]) == .bulkString(Array("v1".utf8)))
            let stranger = try #require(masters.first { $0 != owner })
            #expect(try await cluster.send(port: stranger, ["GET", key]) == .error("MOVED \(slot) 127.0.0.1:\(owner)"))
            let ownerReplica = try #require(replicaOf[owner])
            #expect(try await cluster.send(port: ownerReplica, ["GET", key]) == .error("MOVED \(slot) 127.0.0.1:\(owner)"))
            #expect(try await cluster.send(port: owner, ["WAIT", 1, 2000]) == .integer(1))
            #expect(try await cluster.pipeline(port: ownerReplica, [["READONLY"], ["GET", key]]).last == .bulkString(Array("v1".utf8)))

            // A slot half moved: the source still serves the keys it holds and sends the client
            // to the target with ASK for the others; the target serves those only after ASKING.
            let tag = "{gatehouse-migration}"
            let keys = (0..<5).map { "\(tag):\($0)" }
            let missing = "\(tag):missing"
            let movingSlot = try await cluster.keySlot(keys[0])
            let source = try await cluster.masterPort(forSlot: movingSlot)
            let target = try #require(masters.first { $0 != source })
            for (index, key) in keys.enumerated() {
                #expect(try await cluster.send(port: source, ["SET", key, "\(index)"]) == .simpleString("OK"))
            }
            try await cluster.beginMigration(slot: movingSlot, to: target)
            #expect(try await cluster.send(port: source, ["GET", keys[0]]) == .bulkString(Array("0".utf8)))
            #expect(try await cluster.send(port: source, ["GET", missing]) == .error("ASK \(movingSlot) 127.0.0.1:\(target)"))
            #expect(try await cluster.send(port: target, ["GET", missing]) == .error("MOVED \(movingSlot) 127.0.0.1:\(source)"))
            #expect(try await cluster.pipeline(port: target, [["ASKING"], ["GET", missing]]) == [.simpleString("OK"), .null])
            #expect(try await cluster.migrateKeys(slot: movingSlot, count: 2) == 2)
            var asked = 0
            for key in keys {
                let reply = try await cluster.send(port: source, ["GET", key])
                if reply == .error("ASK \(movingSlot) 127.0.0.1:\(target)") {
                    asked += 1
                    let replies = try await cluster.pipeline(port: target, [["ASKING"], ["GET", key]])
                    #expect(replies.last?.string == key.split(separator: ":").last.map { String($0) }, "\(key): \(replies)")
                }
            }
            #expect(asked == 2)
            #expect(try await cluster.masterPort(forSlot: movingSlot) == source)

            // Finished: the target owns the slot and every key; the source answers MOVED.
            try await cluster.finishMigration(slot: movingSlot)
            #expect(try await cluster.masterPort(forSlot: movingSlot) == target)
            #expect(try await cluster.send(port: source, ["GET", keys[0]]) == .error("MOVED \(movingSlot) 127.0.0.1:\(target)"))
            #expect(try await cluster.send(port: target, ["CLUSTER", "COUNTKEYSINSLOT", movingSlot]) == .integer(5))
            for (index, key) in keys.enumerated() {
                #expect(try await cluster.send(port: target, ["GET", key]) == .bulkString(Array("\(index)".utf8)))
            }

            // And back in one call, a key at a time.
            try await cluster.migrateSlot(movingSlot, to: source, pauseBetweenKeys: .milliseconds(5))
            #expect(try await cluster.masterPort(forSlot: movingSlot) == source)
            #expect(try await cluster.send(port: source, ["CLUSTER", "COUNTKEYSINSLOT", movingSlot]) == .integer(5))
            #expect(try await cluster.send(port: target, ["CLUSTER", "COUNTKEYSINSLOT", movingSlot]) == .integer(0))

            // redis-cli moves 100 slots from one master to another; the third keeps its own.
            let (from, to) = (masters[0], masters[1])
            let before = try await cluster.slotCounts()
            try await cluster.reshard(slots: 100, from: from, to: to)
            let after = try await cluster.slotCounts()
            #expect(after[from] == before[from].map { $0 - 100 })
            #expect(after[to] == before[to].map { $0 + 100 })
            #expect(after[masters[2]] == before[masters[2]])

            // A killed master: its replica takes over its slots and has its acknowledged writes.
            let victim = to
            let victimReplica = try #require(replicaOf[victim])
            let owners = try await cluster.slotOwners()
            var victimKey: String?
            for index in 0..<100 where victimKey == nil {
                let candidate = "gatehouse:failover:\(index)"
                let candidateSlot = try await cluster.keySlot(candidate)
                if owners.first(where: { $0.key.contains(candidateSlot) })?.value == victim { victimKey = candidate }
            }
            let survivorKey = try #require(victimKey)
            #expect(try await cluster.send(port: victim, ["SET", survivorKey, "kept"]) == .simpleString("OK"))
            #expect(try await cluster.send(port: victim, ["WAIT", 1, 2000]) == .integer(1))
            try await cluster.killMaster(port: victim)
            let promoted = try await cluster.waitForFailover(ofMasterPort: victim)
            #expect(promoted == victimReplica)
            let afterFailover = try await cluster.slotCounts()
            #expect(afterFailover[promoted] == after[victim])
            #expect(afterFailover[victim] == nil)
            #expect(try await cluster.masterPorts() == masters.map { $0 == victim ? promoted : $0 }.sorted())
            #expect(try await cluster.send(port: promoted, ["GET", survivorKey]) == .bulkString(Array("kept".utf8)))
            #expect(try await cluster.replicaPorts(of: promoted).isEmpty)
        }
    }

    /// A cluster with a password and no replicas: nodes refuse a client without it, and the
    /// harness's own commands (`MIGRATE … AUTH`, `redis-cli` through `REDISCLI_AUTH`) carry it.
    @Test func passwordProtectedClusterWithoutReplicas() async throws {
        try await RedisClusterDeployment.withCluster(replicasPerMaster: 0, password: "cluster-secret") { cluster in
            #expect(cluster.nodes.count == 3)
            #expect(cluster.urlString.hasPrefix("redis-cluster://:cluster-secret@127.0.0.1:"))
            let masters = try await cluster.masterPorts()
            #expect(masters.count == 3)
            #expect(try await cluster.replicaPort(of: masters[0]) == nil)

            // The handshake's PING is refused; the error reported is the last connect attempt's
            // (the client's retries are logged into `log`, not the test output).
            let anonymous = RedisConfiguration(url: RedisURL(endpoint: .tcp(host: "127.0.0.1", port: masters[0])), clientName: nil)
            let log = CapturedLog()
            let redis = RedisClient(configuration: anonymous, logger: log.logger)
            do {
                try await redis.ping()
                Issue.record("a node of a cluster with a password answered a client without it")
            } catch let error as RedisError {
                #expect(error.code == .connectionUnavailable)
                #expect(error.message.contains("NOAUTH"), "\(error)")
            }
            await redis.shutdown()
            #expect(log.text.contains("NOAUTH"))

            let keys = (0..<3).map { "{gatehouse-auth}:\($0)" }
            let slot = try await cluster.keySlot(keys[0])
            let source = try await cluster.masterPort(forSlot: slot)
            let target = try #require(masters.first { $0 != source })
            for key in keys {
                #expect(try await cluster.send(port: source, ["SET", key, "x"]) == .simpleString("OK"))
            }
            try await cluster.migrateSlot(slot, to: target)
            #expect(try await cluster.masterPort(forSlot: slot) == target)
            #expect(try await cluster.send(port: target, ["CLUSTER", "COUNTKEYSINSLOT", slot]) == .integer(3))

            let before = try await cluster.slotCounts()
            try await cluster.reshard(slots: 10, from: target, to: source)
            let after = try await cluster.slotCounts()
            #expect(after[target] == before[target].map { $0 - 10 })
            #expect(after[source] == before[source].map { $0 + 10 })
        }
    }

    @Test func refusesAClusterOfFewerThanThreeMasters() async throws {
        let error = try await #require(throws: RedisServerError.self) {
            try await RedisClusterDeployment.start(masters: 2)
        }
        #expect(error.code == .startFailed)
        #expect(error.message.contains("at least 3 masters"))
    }
}
