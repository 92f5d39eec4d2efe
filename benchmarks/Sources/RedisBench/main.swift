// RedisBench: GatehouseRedis's automatic pipelining against `redis-benchmark -c 50 -P 1`, both
// running the same small Lua script (the shape of the code-check script: INCR with EXPIRE on
// first use, plus SET NX EX) against the same server, interleaved, in the same run.
//
// Run it through ../redis-bench.sh, which starts a private redis-server and builds this in
// release mode. Prints each repetition, the medians, the ratio client / redis-benchmark and the
// client's p50/p99 latency.

import Foundation
import GatehouseRedis

#if canImport(Glibc)
import Glibc
#endif

/// The code-check script's shape: a rate-limit counter that starts its window on first use, and
/// a replay marker written only if absent.
let script = RedisScript(
    """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end
    redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', 60)
    return n
    """
)

struct Options {
    var port = 6379
    var operations = 200_000
    var repetitions = 3
    var clients = 50
    var poolSize = 2
    var keyspace = 100_000

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next().flatMap(Int.init) else {
                fatalError("usage: RedisBench --port P [--ops N] [--reps R] [--clients C] [--pool S] [--keyspace K]")
            }
            switch flag {
            case "--port": self.port = value
            case "--ops": self.operations = value
            case "--reps": self.repetitions = value
            case "--clients": self.clients = value
            case "--pool": self.poolSize = value
            case "--keyspace": self.keyspace = value
            default: fatalError("unknown option \(flag)")
            }
        }
    }
}

struct Run {
    var operationsPerSecond: Double
    var p50Milliseconds: Double
    var p99Milliseconds: Double
}

func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// `prefix` + a 12-digit zero-padded number, as redis-benchmark renders `__rand_int__`.
func randomKey(_ prefix: String, keyspace: Int) -> String {
    var digits = String(Int.random(in: 0..<keyspace))
    if digits.count < 12 { digits = String(repeating: "0", count: 12 - digits.count) + digits }
    return prefix + digits
}

func percentile(_ sorted: [UInt64], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, Int(Double(sorted.count) * fraction))
    return Double(sorted[index]) / 1e6
}

/// The reference: redis-benchmark with 50 connections, each waiting for its reply.
func runRedisBenchmark(_ options: Options) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", "\(options.port)", "-c", "\(options.clients)", "-P", "1",
        "-n", "\(options.operations)", "-r", "\(options.keyspace)", "--csv",
        "EVALSHA", script.sha1, "2", "bench:cnt:__rand_int__", "bench:mark:__rand_int__", "1",
    ]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    // --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    guard let row = lines.last(where: { $0.hasPrefix("\"EVALSHA") }) else {
        throw RedisError(.unexpectedReply, "unexpected redis-benchmark output: \(lines)")
    }
    let fields = row.split(separator: ",").map { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
    guard fields.count >= 7, let rps = fields[1], let p50 = fields[4], let p99 = fields[6] else {
        throw RedisError(.unexpectedReply, "unexpected redis-benchmark row: \(row)")
    }
    return Run(operationsPerSecond: rps, p50Milliseconds: p50, p99Milliseconds: p99)
}

/// GatehouseRedis: `clients` concurrent tasks sharing one client (its pool pipelines them).
func runClient(_ client: RedisClient, _ options: Options, operations: Int) async throws -> Run {
    let perWorker = operations / options.clients
    let start = monotonicNanoseconds()
    let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for _ in 0..<options.clients {
            group.addTask {
                var latencies: [UInt64] = []
                latencies.reserveCapacity(perWorker)
                for _ in 0..<perWorker {
                    let keys = [
                        randomKey("bench:cnt:", keyspace: options.keyspace),
                        randomKey("bench:mark:", keyspace: options.keyspace),
                    ]
                    let before = monotonicNanoseconds()
                    let reply = try await client.eval(script, keys: keys, arguments: ["1"])
                    latencies.append(monotonicNanoseconds() - before)
                    guard case .integer = reply else {
                        throw RedisError(.unexpectedReply, "the script returned \(reply)")
                    }
                }
                return latencies
            }
        }
        var all: [UInt64] = []
        all.reserveCapacity(perWorker * options.clients)
        for try await part in group { all += part }
        return all
    }
    let seconds = Double(monotonicNanoseconds() - start) / 1e9
    let sorted = latencies.sorted()
    return Run(
        operationsPerSecond: Double(sorted.count) / seconds,
        p50Milliseconds: percentile(sorted, 0.50),
        p99Milliseconds: percentile(sorted, 0.99)
    )
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

func format(_ value: Double, _ digits: Int = 0) -> String {
    String(format: "%.\(digits)f", value)
}

let options = Options(CommandLine.arguments)
let configuration = RedisConfiguration(
    url: RedisURL(endpoint: .tcp(host: "127.0.0.1", port: options.port)),
    poolSize: options.poolSize
)
let client = RedisClient(configuration: configuration)
try await client.load(script)  // redis-benchmark's EVALSHA needs it loaded too

print("RedisBench: \(options.clients) concurrent callers, \(options.operations) EVALSHA per run, \(options.repetitions) interleaved runs each, pool \(options.poolSize), nproc=\(ProcessInfo.processInfo.activeProcessorCount)")
// Warm-up, not counted: connections, code paths, the server's keyspace.
_ = try await runClient(client, options, operations: min(options.operations, 20_000))

var reference: [Run] = []
var ours: [Run] = []
for repetition in 1...options.repetitions {
    _ = try await client.send(["FLUSHALL"])
    try await client.load(script)
    let benchmark = try runRedisBenchmark(options)
    reference.append(benchmark)
    _ = try await client.send(["FLUSHALL"])
    try await client.load(script)
    let run = try await runClient(client, options, operations: options.operations)
    ours.append(run)
    print(
        "run \(repetition): redis-benchmark -c \(options.clients) -P 1: \(format(benchmark.operationsPerSecond)) ops/s (p50 \(format(benchmark.p50Milliseconds, 3)) ms, p99 \(format(benchmark.p99Milliseconds, 3)) ms)"
            + " | GatehouseRedis: \(format(run.operationsPerSecond)) ops/s (p50 \(format(run.p50Milliseconds, 3)) ms, p99 \(format(run.p99Milliseconds, 3)) ms)"
    )
}

let referenceMedian = median(reference.map(\.operationsPerSecond))
let oursMedian = median(ours.map(\.operationsPerSecond))
let ratio = oursMedian / referenceMedian
print("median redis-benchmark -c \(options.clients) -P 1 EVALSHA: \(format(referenceMedian)) ops/s, p50 \(format(median(reference.map(\.p50Milliseconds)), 3)) ms, p99 \(format(median(reference.map(\.p99Milliseconds)), 3)) ms")
print("median GatehouseRedis (\(options.clients) callers, pool \(options.poolSize)): \(format(oursMedian)) ops/s, p50 \(format(median(ours.map(\.p50Milliseconds)), 3)) ms, p99 \(format(median(ours.map(\.p99Milliseconds)), 3)) ms")
print("RATIO GatehouseRedis / redis-benchmark = \(format(ratio, 2))x (target >= 1.00x): \(ratio >= 1.0 ? "PASS" : "MISS")")
await client.shutdown()
