import ArgumentParser
import GatehouseLoad

/// `gatehouse load`: the command line of the load generator (``LoadGenerator`` in GatehouseLoad),
/// which checks every answer it gets; exit 1 on a correctness failure or too many transport errors.
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load-test the verification path (session checks, valid/wrong/replayed codes) of running nodes.",
        discussion: """
            Loopback only. Users '<prefix>-<i>@load.example' are imported with fresh secrets, 10% of them \
            (at least one) take the wrong codes so the others are never throttled. Exits 1 on any \
            correctness failure (accepted replay or wrong code, refused valid code or session) or when \
            more than 1% of operations hit transport errors. \
            A `check` is one POST /v1/login/finish with a valid code on a challenge opened before the run \
            (one per valid-pool user, so --users bounds the number of checks); it measures the code \
            check alone. A `wrongcheck` is the same with a wrong code: each wrong-pool user's challenge, \
            opened before the run, takes --wrong-per-challenge of them (all users are in the wrong pool \
            when the mix has nothing but wrong codes). When the mix is only `check` and `wrongcheck`, the \
            seeding sign-in is skipped. With several \
            URLs, each user's login/start and login/finish go to one of them (as behind a balancer that \
            hashes on the user); session checks go round-robin.
            """
    )

    /// The defaults live in `LoadOptions.init`, not here.
    private static let defaults = LoadOptions()

    @Option(name: .customLong("url"), help: "Base URL of a node (repeatable; requests round-robin). Default: GATEHOUSE_URL or http://127.0.0.1:8080.")
    var urls: [String] = []
    @Option(help: "Users to seed.") var users: Int = LoadCommand.defaults.users
    @Option(help: "Requests in flight: each runs operations back to back on its own keep-alive connection per URL.") var concurrency: Int = LoadCommand.defaults.concurrency
    @Option(help: "Event-loop threads the in-flight requests are spread over (1 is enough for most runs).") var threads: Int = LoadCommand.defaults.threads
    @Option(help: "What drives the timed run's connections: epoll (a hand-written epoll loop) or nio (SwiftNIO).") var engine: String = LoadCommand.defaults.engine
    @Option(help: "Seconds to run (at most 3600).") var duration: Double = LoadCommand.defaults.duration
    @Option(help: "Cap on operations per second across all workers.") var rate: Double?
    @Option(help: "Weights of the operations: auth, valid, wrong, replay, check (a lone valid-code check on a challenge opened before the run), wrongcheck (the same with a wrong code).") var mix: String = LoadCommand.defaults.mix
    @Option(name: .customLong("admin-key"), help: "Admin API key (default: GATEHOUSE_ADMIN_KEY).") var adminKey: String?
    @Option(name: .customLong("frontend-key"), help: "Frontend API key (default: GATEHOUSE_FRONTEND_KEY).") var frontendKey: String?
    @Option(name: .customLong("verify-key"), help: "Verify API key (default: GATEHOUSE_VERIFY_KEY).") var verifyKey: String?
    @Flag(help: "Print one JSON object instead of the text report.") var json = false
    @Flag(name: .customLong("tolerate-unavailable"), help: "Count 503 answers to code operations (a Redis outage under test) as 'unavailable' errors, not as refused valid codes.")
    var tolerateUnavailable = false
    @Option(name: .customLong("client-ips"), help: "Send a client_ip with every code check, one of this many addresses (10.64.0.0 upwards, by user); 0 sends none.")
    var clientIPs: Int = LoadCommand.defaults.clientIPs
    @Option(name: .customLong("wrong-per-challenge"), help: "Wrong codes submitted on each challenge opened for 'wrongcheck' (1...1000); above 5 the user is throttled and 429 is expected too.")
    var wrongPerChallenge: Int = LoadCommand.defaults.wrongPerChallenge
    @Option(help: "User name prefix (default: load-<random>).") var prefix: String?
    @Flag(inversion: .prefixedNo, help: "Progress line on stderr every second (default: when stderr is a terminal).")
    var progress: Bool?

    /// The options as parsed, checked in one place (`LoadOptions.validated`); its errors become
    /// validation errors (usage on stderr, exit 64), as they always were.
    private func config() throws -> LoadConfig {
        var options = LoadOptions()
        options.urls = urls
        options.users = users
        options.concurrency = concurrency
        options.threads = threads
        options.engine = engine
        options.duration = duration
        options.rate = rate
        options.mix = mix
        options.adminKey = adminKey
        options.frontendKey = frontendKey
        options.verifyKey = verifyKey
        options.prefix = prefix
        options.progress = progress
        options.tolerateUnavailable = tolerateUnavailable
        options.clientIPs = clientIPs
        options.wrongPerChallenge = wrongPerChallenge
        do { return try options.validated() } catch { throw ValidationError(error.message) }
    }

    func validate() throws {
        _ = try config()
    }

    func run() async throws {
        // A failed seeding or run throws LoadError: `Error: <message>`, exit 1.
        let report = try await LoadGenerator.run(try config())
        print(json ? report.json() : report.text())
        if !report.passed { throw ExitCode(1) }
    }
}
