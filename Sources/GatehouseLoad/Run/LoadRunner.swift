import Dispatch
import Foundation
import GatehouseCore
import GatehouseCrypto
import Glibc
import Synchronization
import GatehouseSystem

/// `gatehouse load`'s generator: seeds users with known TOTP secrets through
/// `POST /v1/users/import`, signs each in once, then drives a weighted mix of session checks, valid
/// codes (never reusing a time step), wrong codes and replays from epoll event loops
/// (``LoadEventLoop``, or ``LoadNIOLoop`` with `--engine nio`), and checks the answers: an accepted replay or wrong code, a refused valid
/// code or a refused live session is a correctness failure (``LoadReport/passed`` is false).
package enum LoadGenerator {
    /// Runs `config` to its end and returns the report. Everything blocking (sockets, joins) runs on
    /// dedicated threads, never on the cooperative pool. Throws when seeding fails or the run
    /// cannot start or end (a run with failures still returns its report).
    package static func run(_ config: LoadConfig) async throws(LoadError) -> LoadReport {
        let runner = LoadRunner(config)
        let result: Result<LoadReport, LoadError> = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Result { () throws(LoadError) in try runner.run() }) }
            thread.start()
        }
        return try result.get()
    }
}

/// User + system CPU seconds of this process so far, all threads (getrusage(2)).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func jsonString(_ text: String) -> String {
    var w = JSONWriter(capacity: text.utf8.count + 2)
    w.string(text)
    return String(decoding: w.bytes, as: UTF8.self)
}

/// Seeds, runs the workers and builds the report. Blocking: call it on a dedicated thread.
struct LoadRunner {
    let config: LoadConfig

    init(_ config: LoadConfig) { self.config = config }

    /// Starts `count` threads running `body(index)`, waits for all (bounded by `timeout` seconds).
    private func threads(_ count: Int, timeout: Double, failing code: LoadError.Code, _ body: @escaping @Sendable (Int) -> Void) throws(LoadError) {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        guard group.wait(timeout: .now() + timeout) == .success else {
            throw LoadError(code, "load: worker threads did not finish within \(Int(timeout)) s")
        }
    }

    func run() throws(LoadError) -> LoadReport {
        let config = self.config
        // Users and secrets. A failure of the system random source keeps its own text.
        var users: [LoadUser] = []
        let seedStart: UInt64
        do {
            let prefix = try config.prefix ?? "load-" + Base32.encode(SystemRandom().bytes(5)).lowercased()
            seedStart = MonotonicClock.now()
            users.reserveCapacity(config.users)
            for i in 0..<config.users {
                let bytes = try SystemRandom().bytes(20)
                users.append(try LoadUser(name: "\(prefix.lowercased())-\(i)@load.example", secret: bytes))
            }
        } catch {
            throw LoadError(.seedingFailed, "\(error)", underlying: error)
        }
        let onlyWrongCodes = config.mix.weights.allSatisfy { op, weight in weight == 0 || op == .wrong || op == .wrongcheck }
        let shared = LoadShared(users: users, onlyWrongCodes: onlyWrongCodes)

        // Import, in chunks of at most 1000 lines.
        let importer = LoadConnection(config.endpoints[0])
        for chunkStart in stride(from: 0, to: users.count, by: 1000) {
            let chunk = users[chunkStart..<min(chunkStart + 1000, users.count)]
            let text = chunk.map { u in
                "{\"user\":\(jsonString(u.name)),\"totp_secret\":\(jsonString(u.secret)),\"recovery_email\":\(jsonString("recovery+" + u.name)),\"verified\":true}"
            }.joined(separator: "\n")
            let reply: LoadResponse
            do {
                reply = try importer.request("POST", "/v1/users/import", headers: [("Authorization", "Bearer \(config.adminKey)")], body: Array(text.utf8), contentType: "application/x-ndjson")
            } catch {
                throw LoadError(.seedingFailed, "load: import failed: \(error)", underlying: error)
            }
            let imported = reply.json["imported"] as? Int ?? 0
            guard reply.status == 200, imported == chunk.count else {
                throw LoadError(.seedingFailed, "load: import answered \(reply.status), imported \(imported) of \(chunk.count): \(String(decoding: reply.body.prefix(500), as: UTF8.self))")
            }
        }
        importer.close()

        // One sign-in per user: a session for the checks, and a first accepted code for replays
        // (not needed when the mix is only lone code checks).
        let seedErrors = Mutex<[String]>([])
        let seeders = min(config.concurrency, users.count)
        let weight = Dictionary(uniqueKeysWithValues: config.mix.weights.map { ($0.0.rawValue, $0.1) })
        // Lone code checks need no session and no accepted code.
        let checksOnly = weight["check", default: 0] + weight["wrongcheck", default: 0] == config.mix.total
        try threads(checksOnly ? 0 : seeders, timeout: 120, failing: .seedingFailed) { t in
            let worker = LoadWorker(config: config, shared: shared, index: t)
            for i in stride(from: t, to: shared.users.count, by: seeders) {
                let user = shared.users[i]
                var done = false
                for attempt in 0..<2 where !done {
                    do {
                        let (status, challenge) = try worker.startLogin(user.name, affinity: i)
                        guard let challenge else {
                            seedErrors.withLock { $0.append("login/start for \(user.name) answered \(status) without a second step") }
                            break
                        }
                        let step = loadStep() + Int64(attempt)
                        shared.markSubmitted(i, step: step)
                        let code = user.code(step: step)
                        let reply = try worker.finish(challenge, code: code, affinity: i)
                        if reply.status == 200, let token = reply.sessionToken {
                            shared.accepted(i, code: code, step: step, session: token)
                            done = true
                        } else if attempt == 1 {
                            seedErrors.withLock { $0.append("sign-in of \(user.name) answered \(reply.status)") }
                        }
                    } catch {
                        seedErrors.withLock { $0.append("sign-in of \(user.name): \(error)") }
                        break
                    }
                }
            }
        }
        // Challenges for `check` and `wrongcheck` operations, opened before the clock starts.
        let pools: [(op: String, users: Range<Int>, keep: @Sendable (Int, String) -> Void)] = [
            ("check", shared.validPool, { shared.setChallenge($0, $1) }),
            ("wrongcheck", shared.wrongPool, { shared.setWrongChallenge($0, $1) }),
        ]
        for pool in pools where weight[pool.op, default: 0] > 0 {
            try threads(seeders, timeout: 120, failing: .seedingFailed) { t in
                let worker = LoadWorker(config: config, shared: shared, index: t)
                for i in stride(from: pool.users.lowerBound + t, to: pool.users.upperBound, by: seeders) {
                    do {
                        let (status, challenge) = try worker.startLogin(shared.users[i].name, affinity: i)
                        guard let challenge else {
                            seedErrors.withLock { $0.append("login/start for \(shared.users[i].name) answered \(status) without a second step") }
                            break
                        }
                        pool.keep(i, challenge)
                    } catch {
                        seedErrors.withLock { $0.append("login/start for \(shared.users[i].name): \(error)") }
                        break
                    }
                }
                worker.connections.forEach { $0.close() }
            }
        }
        let errors = seedErrors.withLock { $0 }
        guard errors.isEmpty else {
            throw LoadError(.seedingFailed, "load: seeding failed for \(errors.count) user(s); first: \(errors[0])")
        }
        let seedSeconds = Double(MonotonicClock.now() - seedStart) / 1e9

        // The run.
        let results = Mutex<[LoadWorkerResult]>([])
        let done = Atomic<Bool>(false)
        let startCPU = processCPUSeconds()
        let start = MonotonicClock.now()
        let deadline = start + UInt64(config.duration * 1e9)
        let interval = config.rate.map { UInt64(1e9 / $0) }
        if config.progress {
            let thread = Thread {
                var lastOps = 0
                var tick = 0
                // Bounded: the run lasts at most 3600 s plus the workers' 10 s socket timeouts.
                while !done.load(ordering: .relaxed), tick < 4000 {
                    usleep(1_000_000)
                    tick += 1
                    if done.load(ordering: .relaxed) { break }
                    let ops = shared.ops.load(ordering: .relaxed)
                    let elapsed = Double(MonotonicClock.now() - start) / 1e9
                    let line = String(format: "load: %5.0fs  ops %9d  %8.0f ops/s  errors %d  failures %d\n",
                                      elapsed, ops, Double(ops - lastOps), shared.errors.load(ordering: .relaxed), shared.failures.load(ordering: .relaxed))
                    lastOps = ops
                    FileHandle.standardError.write(Data(line.utf8))
                }
            }
            thread.start()
        }
        // The timed run: event loops, each with its share of the requests in flight.
        let loops = config.threads
        let loopErrors = Mutex<[String]>([])
        try threads(loops, timeout: config.duration + 60, failing: .runFailed) { t in
            let worker = LoadWorker(config: config, shared: shared, index: t)
            let share = config.concurrency / loops + (t < config.concurrency % loops ? 1 : 0)
            switch config.engine {
            case .epoll:
                do {
                    let loop = try LoadEventLoop(worker: worker, slots: share)
                    loop.run(deadline: deadline, interval: interval)
                } catch {
                    loopErrors.withLock { $0.append("\(error)") }
                }
            case .nio:
                LoadNIOLoop.run(worker: worker, slots: share, deadline: deadline, interval: interval)
            }
            let result = worker.result
            results.withLock { $0.append(result) }
        }
        if let first = loopErrors.withLock({ $0.first }) { throw LoadError(.runFailed, "load: \(first)") }
        done.store(true, ordering: .relaxed)
        let elapsed = Double(MonotonicClock.now() - start) / 1e9
        let runCPU = processCPUSeconds() - startCPU
        var total = LoadWorkerResult()
        for r in results.withLock({ $0 }) { total.merge(r) }
        return LoadReport(config: config, result: total, elapsed: elapsed, seedSeconds: seedSeconds, runCPUSeconds: runCPU,
                          validPool: shared.validPool.count, wrongPool: shared.wrongPool.count)
    }
}

