import GatehouseRedis
import GatehouseTesting
import Synchronization
import Testing

/// Collects what a follower delivers.
final class Received: Sendable {
    private let entries = Mutex<[RedisStreamEntry]>([])

    func append(_ batch: [RedisStreamEntry]) { self.entries.withLock { $0 += batch } }
    var all: [RedisStreamEntry] { self.entries.withLock { $0 } }
    var count: Int { self.entries.withLock { $0.count } }

    /// Waits (bounded: 20 s) until at least `count` entries arrived.
    func waitFor(_ count: Int) async throws {
        for _ in 0..<2000 where self.count < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        if self.count < count {
            Issue.record("only \(self.count) of \(count) stream entries arrived")
        }
    }
}

@Suite("Stream follower", .timeLimit(.minutes(1)))
struct StreamFollowerTests {
    @Test func resumesExactlyAfterDroppedConnectionsAndAServerRestart() async throws {
        try await RedisServerProcess.withServer(.init(appendOnly: true)) { server in
            // The default command timeout: the dropped connections and the killed server are
            // noticed at once (end of file, refused), so no step waits for a timeout, and a tight
            // one would only turn a slow fsync on a loaded machine into a failed XADD.
            let configuration = server.configuration()
            try await withClient(configuration) { redis in
                let stream = "revocations"
                let received = Received()
                let follower = RedisStreamFollower(
                    configuration: configuration,
                    stream: stream,
                    startingAfter: .zero,
                    batchSize: 7,
                    blockTime: .milliseconds(200)
                ) { batch in
                    received.append(batch)
                }
                let running = Task { try await follower.run() }
                defer { running.cancel() }

                var added: [RedisStreamID] = []
                func add(_ count: Int) async throws {
                    for _ in 0..<count {
                        added.append(try await redis.xadd(stream, fields: [.init("n", "\(added.count)")]))
                    }
                }
                try await add(30)
                try await received.waitFor(30)

                // Drop every other client's connection (the follower's among them) mid-stream.
                _ = try await redis.send(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
                try await add(30)
                try await received.waitFor(60)

                // Kill the server (AOF with fsync always keeps the entries), add while the
                // follower is disconnected, restart.
                await server.kill()
                try await server.start()
                try await eventually { try await add(1) }
                try await add(39)
                try await received.waitFor(100)

                let ids = received.all.map(\.id)
                #expect(ids == added, "every entry exactly once, in order")
                #expect(received.all.map { $0["n"] } == (0..<100).map { "\($0)" })
                #expect(follower.status.lastDeliveredID == added.last)
                #expect(follower.status.deliveredCount == 100)
            }
        }
    }

    @Test func catchesUpFromAStartIdAndReportsIt() async throws {
        try await RedisServerProcess.withServer { server in
            let configuration = server.configuration()
            try await withClient(configuration) { redis in
                let stream = "backlog"
                var ids: [RedisStreamID] = []
                let commands = (0..<1200).map { RedisCommand("XADD", stream, "*", "n", $0) }
                for reply in try await redis.pipeline(commands) {
                    ids.append(try #require(reply.string.flatMap { RedisStreamID($0) }))
                }
                let received = Received()
                // Start after the 200th entry: the first 200 must not be delivered.
                let follower = RedisStreamFollower(
                    configuration: configuration,
                    stream: stream,
                    startingAfter: ids[199],
                    batchSize: 500,
                    blockTime: .milliseconds(100)
                ) { batch in
                    received.append(batch)
                }
                #expect(!follower.status.isCaughtUp)
                let running = Task { try await follower.run() }
                defer { running.cancel() }
                try await follower.waitUntilCaughtUp()
                // Reads of 500, 500, 0 entries: caught up once the short read came back.
                #expect(follower.status.isCaughtUp)
                #expect(received.all.map(\.id) == Array(ids[200...]))

                // Live entries keep flowing after catching up.
                let live = try await redis.xadd(stream, fields: [.init("n", "live")])
                try await received.waitFor(1001)
                #expect(received.all.last?.id == live)
            }
        }
    }

    @Test func runEndsOnCancellation() async throws {
        try await RedisServerProcess.withServer { server in
            let follower = RedisStreamFollower(
                configuration: server.configuration(),
                stream: "quiet",
                startingAfter: .zero,
                blockTime: .milliseconds(100)
            ) { _ in }
            // On the timing executor, so the bound below times the follower (see TimingExecutor).
            let running = Task(executorPreference: TimingExecutor.shared) { try await follower.run() }
            try await follower.waitUntilCaughtUp()  // an empty stream: the first read is short
            let waited = await elapsed {
                running.cancel()
                _ = await running.result
            }
            // It ends rather than hangs: closing waits at most for the XREAD in flight, bounded by
            // blockTime + commandTimeout (2.1 s here). A hang guard, not a speed target: about
            // 7× that, for a loaded machine.
            #expect(waited < .seconds(15))
        }
    }
}
