import GatehouseRedis
import GatehouseTesting
import Logging
import Synchronization
import Testing

/// Captures log messages (and their metadata) so tests can check what the client logs.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])
    var all: [Entry] { self.entries.withLock { $0 } }
    func append(_ entry: Entry) { self.entries.withLock { $0.append(entry) } }

    var logger: Logger {
        Logger(label: "gatehouse.redis.test") { _ in CapturingHandler(log: self) }
    }

    /// Every entry as one line, for "no password in the log" checks.
    var text: String {
        self.all.map { "\($0.level) \($0.message) \($0.metadata.sorted { $0.key < $1.key })" }.joined(separator: "\n")
    }
}

struct CapturingHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = self.metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        self.log.append(.init(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
    }
}

/// A shared nanosecond count (an `Atomic` cannot be captured by an escaping closure).
final class SharedNanoseconds: Sendable {
    private let storage = Atomic<Int64>(0)
    var value: Int64 {
        get { self.storage.load(ordering: .relaxed) }
        set { self.storage.store(newValue, ordering: .relaxed) }
    }
}

/// What one writer of the failover test saw.
struct WriterReport: Sendable {
    /// Which writer (and key).
    var writer: Int
    /// Nanoseconds since the test's start of every acknowledged INCR.
    var acknowledgedAt: [Int64] = []
    /// Acknowledged increments that vanished (the counter went back), with when it was seen.
    var lost = 0
    /// The highest value acknowledged, i.e. what the key must hold at the end.
    var lastAcknowledged: Int64 = 0
    /// Failed commands by error code (or server error prefix).
    var failures: [String: Int] = [:]
}

/// Redis Sentinel with real processes: a master, a replica and three sentinels per test
/// (``RedisSentinelDeployment``). Every loop is bounded in count and time.
@Suite("Sentinel", .serialized, .timeLimit(.minutes(3)))
struct SentinelTests {
    @Test func findsTheMasterThroughTheSentinelsAndServesCommands() async throws {
        try await RedisSentinelDeployment.withDeployment(password: "data-node-secret") { deployment in
            let log = CapturedLog()
            let redis = RedisClient(configuration: deployment.configuration(database: 2), logger: log.logger)
            do {
                let key = uniqueKey()
                try await redis.set(key, "through sentinel")
                #expect(try await redis.getString(key) == "through sentinel")
                // It is on the master (database 2), and the replica has it too.
                let master = try await deployment.currentMaster()
                #expect(master.port == deployment.servers[0].port)
                let direct = try await withClient(master.configuration(database: 2)) { try await $0.getString(key) }
                #expect(direct == "through sentinel")
                #expect(!log.text.contains("data-node-secret"))
                await redis.shutdown()
            } catch {
                await redis.shutdown()
                throw error
            }
        }
    }

    @Test func unknownMasterNameAndUnreachableSentinelsAreClearErrors() async throws {
        try await RedisSentinelDeployment.withDeployment { deployment in
            var configuration = deployment.configuration(commandTimeout: .milliseconds(500))
            configuration.url = try RedisURL(
                "redis-sentinel://:pw-never-shown@127.0.0.1:\(deployment.sentinelPorts[0])/no-such-group?sentinel_password=sentinel-secret"
            )
            try await withClient(configuration) { redis in
                do {
                    try await redis.ping()
                    Issue.record("an unknown master name answered")
                } catch {
                    #expect(redisCode(error) == .connectionUnavailable)
                    let text = "\(error)"
                    #expect(text.contains("no-such-group"), "\(text)")
                    #expect(!text.contains("pw-never-shown") && !text.contains("sentinel-secret"), "\(text)")
                }
            }
        }
        // Nothing listens on these ports (freed a moment ago); the error still names the master.
        var configuration = RedisConfiguration(
            url: try RedisURL("redis-sentinel://127.0.0.1:1,127.0.0.1:2/lonely"),
            connectTimeout: .milliseconds(200),
            commandTimeout: .milliseconds(500)
        )
        configuration.backoff = .init(initial: .milliseconds(20), maximum: .milliseconds(100))
        try await withClient(configuration) { redis in
            do {
                try await redis.ping()
                Issue.record("no sentinel, yet an answer")
            } catch {
                #expect(redisCode(error) == .connectionUnavailable)
                #expect("\(error)".contains("'lonely'"), "\(error)")
            }
        }
    }

    /// 50 writers INCR their own keys while the master is SIGKILLed; Sentinel promotes the
    /// replica and the client must find it by itself. A stream follower on the same URL must
    /// follow too.
    @Test func followsAFailoverAfterTheMasterIsKilledUnderLoad() async throws {
        try await RedisSentinelDeployment.withDeployment { deployment in
            let log = CapturedLog()
            let configuration = deployment.configuration()
            let redis = RedisClient(configuration: configuration, logger: log.logger)
            let stream = uniqueKey("sentinel-stream")
            let received = Received()
            let follower = RedisStreamFollower(
                configuration: configuration, stream: stream, startingAfter: .zero, blockTime: .milliseconds(200), logger: log.logger
            ) { batch in received.append(batch) }
            let following = Task { try await follower.run() }
            defer { following.cancel() }
            do {
                let report = try await self.runFailoverUnderLoad(deployment, redis, stream: stream, received: received)
                // The master change is logged (once for the pool, once for the follower), with
                // the addresses.
                let changes = log.all.filter { $0.message == "Redis master changed" }
                #expect(changes.count >= 1 && changes.count <= 2, "\(changes)")
                #expect(changes.allSatisfy { $0.metadata["new"] == "127.0.0.1:\(report.newMasterPort)" })
                #expect(changes.allSatisfy { $0.metadata["old"] == "127.0.0.1:\(deployment.servers[0].port)" })
                await redis.shutdown()
            } catch {
                await redis.shutdown()
                throw error
            }
        }
    }

    struct FailoverReport { var newMasterPort: Int }

    private func runFailoverUnderLoad(
        _ deployment: RedisSentinelDeployment,
        _ redis: RedisClient,
        stream: String,
        received: Received
    ) async throws -> FailoverReport {
        let writers = 50
        let prefix = uniqueKey("sentinel-load")
        let start = ContinuousClock.now
        @Sendable func since(_ instant: ContinuousClock.Instant) -> Int64 {
            let (seconds, attoseconds) = (instant - start).components
            return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        }
        let killedAt = SharedNanoseconds()  // since start; 0 until the kill
        let stop = Counter()  // > 0: stop
        let acknowledgedAfterKill = Counter()
        // A hard end for every writer, whatever happens below.
        let hardDeadline = start + .seconds(60)

        try await redis.ping()
        _ = try await redis.xadd(stream, fields: [.init("n", "before")])
        try await received.waitFor(1)

        let (reports, killAt, recoveredAt) = try await onTimingExecutor {
            try await withThrowingTaskGroup(of: WriterReport.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var report = WriterReport(writer: writer)
                        let key = "\(prefix):\(writer)"
                        // Bounded in count and in time.
                        for _ in 0..<2_000_000 {
                            if stop.count > 0 || ContinuousClock.now >= hardDeadline { break }
                            do {
                                let value = try await redis.incr(key)
                                let now = since(ContinuousClock.now)
                                report.acknowledgedAt.append(now)
                                if value <= report.lastAcknowledged {
                                    // The counter went back: acknowledged increments were never
                                    // replicated before the old master died.
                                    report.lost += Int(report.lastAcknowledged - value + 1)
                                }
                                report.lastAcknowledged = value
                                let kill = killedAt.value
                                if kill > 0 && now > kill + 200_000_000 { acknowledgedAfterKill.increment() }
                            } catch {
                                let name = (error as? RedisError).map { $0.serverErrorPrefix.map(String.init) ?? "\($0.code)" } ?? "\(error)"
                                report.failures[name, default: 0] += 1
                                // No busy loop while there is no master.
                                try? await Task.sleep(for: .milliseconds(10))
                            }
                        }
                        return report
                    }
                }
                // Let the load run, then crash the master.
                try await Task.sleep(for: .seconds(2))
                let killAt = since(ContinuousClock.now)
                killedAt.value = killAt
                try await deployment.killMaster()
                // The client must reach the promoted replica by itself within 20 s.
                var recoveredAt: Int64?
                for _ in 0..<400 {
                    if acknowledgedAfterKill.count > 0 {
                        recoveredAt = since(ContinuousClock.now)
                        break
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                if recoveredAt != nil {
                    try await Task.sleep(for: .seconds(2))  // writes keep succeeding
                }
                stop.increment()
                var reports: [WriterReport] = []
                for try await report in group { reports.append(report) }
                reports.sort { $0.writer < $1.writer }
                return (reports, killAt, recoveredAt)
            }
        }

        let recovery = recoveredAt.map { Double($0 - killAt) / 1e9 }
        let failures = reports.reduce(into: [String: Int]()) { total, report in total.merge(report.failures, uniquingKeysWith: +) }
        let lost = reports.reduce(0) { $0 + $1.lost }
        let acknowledged = reports.reduce(0) { $0 + $1.acknowledgedAt.count }
        // "The last moments before the kill": replication on loopback lags by well under a
        // second, so only writes acknowledged in the last second can be missing.
        let lastSecond = reports.reduce(0) { total, report in
            total + report.acknowledgedAt.filter { $0 > killAt - 1_000_000_000 && $0 <= killAt }.count
        }
        print(
            """
            Sentinel failover under load: \(writers) writers, \(acknowledged) acknowledged INCRs, \
            recovery \(recovery.map { "\($0) s" } ?? "none within 20 s") after SIGKILL; \
            failed commands during the outage \(failures.values.reduce(0, +)) \(failures.sorted { $0.key < $1.key }); \
            acknowledged writes lost (not replicated before the kill) \(lost); \
            acknowledged in the last second before the kill \(lastSecond)
            """
        )
        #expect(recovery != nil, "the client did not reach the new master within 20 s: \(deployment.logTails())")
        #expect(recovery.map { $0 < 20 } ?? false)
        #expect(lost <= lastSecond, "lost \(lost) acknowledged writes, more than the \(lastSecond) of the last second")
        // Only outage errors: nothing unexpected (no WRONGTYPE, no protocol error, …).
        let allowed: Set<String> = ["connectionLost", "connectionUnavailable", "timeout", "READONLY", "LOADING", "MASTERDOWN"]
        #expect(Set(failures.keys).isSubset(of: allowed), "\(failures)")

        // The new master holds every write acknowledged after the failover.
        let newMaster = try await deployment.waitForNewMaster(other: deployment.servers[0].port, timeout: .seconds(10))
        for writer in 0..<writers where reports[writer].lastAcknowledged > 0 {
            let value = try await deployment.send(port: newMaster.port, ["GET", "\(prefix):\(writer)"]).integer ?? 0
            #expect(value >= reports[writer].lastAcknowledged, "writer \(writer): \(value) < \(reports[writer].lastAcknowledged)")
        }

        // The stream follower followed: an entry added on the new master arrives.
        let before = received.count
        _ = try await eventually { try await redis.xadd(stream, fields: [.init("n", "after")]) }
        try await received.waitFor(before + 1)
        #expect(received.all.last?.fields.first?.value == Array("after".utf8))
        return FailoverReport(newMasterPort: newMaster.port)
    }

    /// Graceful `SENTINEL FAILOVER` with both nodes alive: the client ends up writing to the new
    /// master without being restarted (Sentinel demotes the old master and kills its clients).
    @Test func followsAGracefulFailover() async throws {
        try await RedisSentinelDeployment.withDeployment { deployment in
            try await withClient(deployment.configuration()) { redis in
                let key = uniqueKey()
                try await redis.set(key, "before")
                let old = try await deployment.currentMaster()
                try await deployment.failover()
                let new = try await deployment.waitForNewMaster(other: old.port, timeout: .seconds(30))
                // Until Sentinel demotes the old master (some seconds after the promotion) it
                // still accepts writes; then it kills its clients, and ours reconnect through the
                // sentinels. Bounded: 60 s.
                let start = ContinuousClock.now
                var landed = false
                var attempts = 0
                for attempt in 0..<600 where ContinuousClock.now - start < .seconds(60) {
                    attempts = attempt + 1
                    let token = "after-\(attempt)"
                    if (try? await redis.set(key, token)) != nil,
                        (try? await deployment.send(port: new.port, ["GET", key]).string) == token
                    {
                        landed = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                print("Sentinel graceful failover: writes landed on the new master after \(ContinuousClock.now - start) (\(attempts) attempts)")
                #expect(landed, "the client's writes never reached the new master: \(deployment.logTails())")
                #expect(await deployment.role(port: old.port) == "slave")
            }
        }
    }

    /// A connection that gets `READONLY` (its server was turned into a replica without its
    /// clients being killed) is closed after that batch and the next connect asks the sentinels.
    @Test func readOnlyReplyLeadsToANewResolution() async throws {
        try await RedisSentinelDeployment.withDeployment { deployment in
            let log = CapturedLog()
            let redis = RedisClient(configuration: deployment.configuration(poolSize: 2), logger: log.logger)
            do {
                let key = uniqueKey()
                // Both pooled connections up, on the first master.
                for _ in 0..<20 { _ = try await redis.incr(key) }
                // …and replicated, so the count below is exact.
                #expect(try await redis.send(["WAIT", 1, 5000]) == .integer(1))
                let old = deployment.servers[0], new = deployment.servers[1]
                // Swap the roles by hand (REPLICAOF does not kill normal clients, unlike
                // Sentinel's own reconfiguration), and point the sentinels at the new master.
                _ = try await deployment.send(port: new.port, ["REPLICAOF", "NO", "ONE"])
                _ = try await deployment.send(port: old.port, ["REPLICAOF", "127.0.0.1", new.port])
                try await deployment.sendToSentinels(["SENTINEL", "REMOVE", deployment.masterName])
                try await deployment.sendToSentinels(["SENTINEL", "MONITOR", deployment.masterName, "127.0.0.1", new.port, 2])
                try await deployment.sendToSentinels(["SENTINEL", "SET", deployment.masterName, "down-after-milliseconds", 1000])

                var notMaster: [String] = []
                var succeeded = 0
                var otherErrors: [String] = []
                // Bounded: 200 attempts, 20 s.
                let start = ContinuousClock.now
                for _ in 0..<200 where succeeded < 20 && ContinuousClock.now - start < .seconds(20) {
                    do {
                        _ = try await redis.incr(key)
                        succeeded += 1
                    } catch let error as RedisError where ["READONLY", "LOADING", "MASTERDOWN"].contains(error.serverErrorPrefix) {
                        notMaster.append(String(error.serverErrorPrefix ?? ""))
                    } catch {
                        otherErrors.append("\(error)")
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                print("Sentinel READONLY: not-master replies \(notMaster), then \(succeeded) writes succeeded; other errors: \(otherErrors)")
                #expect(notMaster.contains("READONLY"))
                #expect(notMaster.count <= 2, "one not-master reply per pooled connection at most")
                #expect(succeeded == 20)
                // They went to the new master.
                #expect(try await deployment.send(port: new.port, ["GET", key]).integer == Int64(20 + succeeded))
                let changes = log.all.filter { $0.message == "Redis master changed" }
                #expect(changes.count == 1, "\(changes.map(\.metadata))")
                #expect(changes.first?.metadata["old"] == "127.0.0.1:\(old.port)")
                #expect(changes.first?.metadata["new"] == "127.0.0.1:\(new.port)")
                #expect(log.all.contains { $0.message.contains("no longer the master") })
                await redis.shutdown()
            } catch {
                await redis.shutdown()
                throw error
            }
        }
    }
}
