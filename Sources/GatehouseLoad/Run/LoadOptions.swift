import Foundation
import Glibc

/// What a run of the load generator is asked for, as the command line gives it: raw, with the
/// defaults of `gatehouse load`. ``validated(environment:)`` checks it and turns it into a
/// ``LoadConfig``; nothing else validates options.
package struct LoadOptions: Sendable {
    /// Base URLs of the nodes (each a loopback `http://host:port[/base]`); empty means
    /// `GATEHOUSE_URL`, or `http://127.0.0.1:8080`. At most 64.
    package var urls: [String] = []
    /// Users to seed (2...100000).
    package var users = 200
    /// Requests in flight (1...1024).
    package var concurrency = 50
    /// Event-loop threads the requests in flight are spread over (1...16, at most `concurrency`).
    package var threads = 1
    /// What drives the timed run's connections: `epoll` (``LoadEventLoop``) or `nio` (``LoadNIOLoop``).
    package var engine = LoadEngine.epoll.rawValue
    /// Seconds of the timed run, in (0, 3600].
    package var duration: Double = 10
    /// Cap on operations per second across all event loops, in (0, 1000000]; nil for none.
    package var rate: Double?
    /// Weights of the operations (``LoadMix``).
    package var mix = "auth=70,valid=10,wrong=15,replay=5"
    /// API keys; nil or empty means `GATEHOUSE_ADMIN_KEY`, `GATEHOUSE_FRONTEND_KEY`, `GATEHOUSE_VERIFY_KEY`.
    package var adminKey: String?
    /// See ``adminKey``.
    package var frontendKey: String?
    /// See ``adminKey``.
    package var verifyKey: String?
    /// User name prefix; nil for `load-<random>`.
    package var prefix: String?
    /// A progress line on stderr every second; nil for "when stderr is a terminal".
    package var progress: Bool?
    /// Count 503 answers to code operations (a state-store outage under test) as errors of their
    /// own, not as refused valid codes.
    package var tolerateUnavailable = false
    /// Code checks carry a `client_ip`, one of this many addresses (10.64.0.0 upwards, by user);
    /// 0 sends none. With addresses, a node on a Redis Cluster keeps each address's failure
    /// budget on that address's own master, as it does for real front ends.
    package var clientIPs = 0
    /// Wrong codes submitted on each challenge opened for `wrongcheck` (1...1000). Up to 5 stay
    /// inside a user's free failures, so every answer must be `401 invalid_code`; beyond 5 the
    /// user is throttled and `429` is also right.
    package var wrongPerChallenge = 4

    /// The defaults of `gatehouse load`.
    package init() {}

    /// Checks every option, in the order the command has always reported them, and resolves the
    /// URLs (loopback only) and keys (from `environment` when not given). Errors are
    /// ``LoadError/Code/invalidOption`` and name the command-line flag.
    package func validated(environment: [String: String] = ProcessInfo.processInfo.environment) throws(LoadError) -> LoadConfig {
        func invalid(_ message: String) -> LoadError { LoadError(.invalidOption, message) }
        guard (2...100_000).contains(users) else { throw invalid("--users must be 2...100000") }
        guard (1...1024).contains(concurrency) else { throw invalid("--concurrency must be 1...1024") }
        guard (1...16).contains(threads), threads <= concurrency else { throw invalid("--threads must be 1...16 and at most --concurrency") }
        guard duration > 0, duration <= 3600 else { throw invalid("--duration must be in (0, 3600] seconds") }
        if let rate, !(rate > 0 && rate <= 1_000_000) { throw invalid("--rate must be in (0, 1000000]") }
        guard (0...1_000_000).contains(clientIPs) else { throw invalid("--client-ips must be 0...1000000") }
        guard (1...1000).contains(wrongPerChallenge) else { throw invalid("--wrong-per-challenge must be 1...1000") }
        guard let engine = LoadEngine(rawValue: engine) else { throw invalid("--engine must be epoll or nio") }
        let mix = try LoadMix(parsing: mix)
        let list = urls.isEmpty ? [environment["GATEHOUSE_URL"] ?? "http://127.0.0.1:8080"] : urls
        guard list.count <= 64 else { throw invalid("at most 64 --url") }
        var endpoints: [LoadEndpoint] = []
        for url in list { endpoints.append(try LoadEndpoint(parsing: url)) }
        func key(_ value: String?, _ variable: String, _ option: String) throws(LoadError) -> String {
            if let value, !value.isEmpty { return value }
            if let value = environment[variable], !value.isEmpty { return value }
            throw invalid("no \(option): pass it or set \(variable)")
        }
        return LoadConfig(
            endpoints: endpoints, users: users, concurrency: concurrency, threads: threads, engine: engine, duration: duration, rate: rate, mix: mix,
            adminKey: try key(adminKey, "GATEHOUSE_ADMIN_KEY", "--admin-key"),
            frontendKey: try key(frontendKey, "GATEHOUSE_FRONTEND_KEY", "--frontend-key"),
            verifyKey: try key(verifyKey, "GATEHOUSE_VERIFY_KEY", "--verify-key"),
            prefix: prefix, progress: progress ?? (isatty(2) != 0), tolerateUnavailable: tolerateUnavailable, clientIPs: clientIPs,
            wrongPerChallenge: wrongPerChallenge
        )
    }
}

/// A checked run configuration, made only by ``LoadOptions/validated(environment:)``.
package struct LoadConfig: Sendable {
    /// The nodes, resolved.
    package let endpoints: [LoadEndpoint]
    /// Users to seed.
    package let users: Int
    /// Requests in flight.
    package let concurrency: Int
    /// Event-loop threads of the timed run.
    package let threads: Int
    /// What drives the timed run's connections.
    package let engine: LoadEngine
    /// Seconds of the timed run.
    package let duration: Double
    /// Cap on operations per second, if any.
    package let rate: Double?
    /// The weighted mix of operations.
    package let mix: LoadMix
    /// API keys (never printed).
    let adminKey: String
    let frontendKey: String
    let verifyKey: String
    /// User name prefix; nil until the run picks `load-<random>`.
    package let prefix: String?
    /// Whether a progress line goes to stderr every second.
    package let progress: Bool
    /// 503 answers to code operations are expected (a state-store outage under test): counted
    /// as errors of their own, not as refused valid codes.
    package let tolerateUnavailable: Bool
    /// Addresses the code checks' `client_ip` is drawn from (0: none).
    package let clientIPs: Int
    /// Wrong codes per challenge opened for `wrongcheck`.
    package let wrongPerChallenge: Int

    /// The `client_ip` of a code check for the user with `index`, if the run sends one.
    func clientIP(forUser index: Int) -> String? {
        guard clientIPs > 0 else { return nil }
        let n = index % clientIPs
        return "10.\(64 + n / 65536).\(n / 256 % 256).\(n % 256)"
    }
}

/// What drives the timed run's connections, one event loop per `--threads`.
package enum LoadEngine: String, CaseIterable, Sendable {
    /// A hand-written epoll(7) loop (``LoadEventLoop``).
    case epoll
    /// A SwiftNIO event loop and channels (``LoadNIOLoop``).
    case nio
}

/// Operation kinds.
package enum LoadOp: String, CaseIterable, Sendable, Comparable {
    /// A session check (`GET /v1/auth`).
    case auth
    /// login/start, then a valid code at login/finish.
    case valid
    /// login/start, then a wrong code.
    case wrong
    /// login/start, then a code the user already spent.
    case replay
    /// A valid code alone, on a challenge opened before the run.
    case check
    /// A wrong code alone, on a challenge opened before the run (each challenge takes
    /// `--wrong-per-challenge` of them): what an attacker guessing codes costs the service.
    case wrongcheck

    /// Declaration order.
    package static func < (a: LoadOp, b: LoadOp) -> Bool { a.index < b.index }
    var index: Int { Self.allCases.firstIndex(of: self)! }
}

/// The weighted mix, e.g. `auth=70,valid=10,wrong=15,replay=5`.
package struct LoadMix: Sendable {
    /// Every operation in ``LoadOp`` order with its weight (0 when not named).
    package let weights: [(LoadOp, Int)]
    /// The sum of the weights (more than 0).
    package let total: Int

    /// Parses `<op>=<weight>` pairs separated by commas. The error quotes the pair it could not
    /// read: `benchmarks/e2e.sh` looks for `check=100` in it to tell a binary without `check`.
    package init(parsing text: String) throws(LoadError) {
        var found: [LoadOp: Int] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let op = LoadOp(rawValue: pair[0]), let weight = Int(pair[1]), (0...1_000_000).contains(weight) else {
                throw LoadError(.invalidOption, "--mix: '\(part)' is not <auth|valid|wrong|replay|check|wrongcheck>=<weight>")
            }
            found[op] = weight
        }
        weights = LoadOp.allCases.map { ($0, found[$0] ?? 0) }
        total = weights.reduce(0) { $0 + $1.1 }
        guard total > 0 else { throw LoadError(.invalidOption, "--mix: the weights add up to 0") }
    }

    /// The operation a roll in `0..<total` lands on.
    package func pick(_ roll: Int) -> LoadOp {
        var left = roll
        for (op, weight) in weights {
            if left < weight { return op }
            left -= weight
        }
        return .auth
    }
}
