import GatehouseLoad
import Testing

/// `gatehouse load`'s options are checked in one place (`LoadOptions.validated`): the defaults,
/// the environment fallbacks, and one error per bad option naming its flag.
@Suite("gatehouse load: options")
struct LoadOptionsTests {
    static let keys = ["GATEHOUSE_ADMIN_KEY": "a", "GATEHOUSE_FRONTEND_KEY": "f", "GATEHOUSE_VERIFY_KEY": "v"]

    /// Options with one change, and the message they must be refused with (shown as the case's name).
    struct Refused: Sendable, CustomTestStringConvertible {
        var options = LoadOptions()
        var message: String
        var testDescription: String { message }

        init(_ message: String, _ change: (inout LoadOptions) -> Void) {
            self.message = message
            change(&options)
        }
    }

    @Test("the defaults, with the URL and keys from the environment")
    func defaults() throws {
        let config = try LoadOptions().validated(environment: Self.keys.merging(["GATEHOUSE_URL": "http://127.0.0.1:9000/base/"]) { $1 })
        #expect(config.endpoints.map(\.url) == ["http://127.0.0.1:9000/base/"])
        #expect((config.users, config.concurrency, config.threads, config.duration) == (200, 50, 1, 10))
        #expect(config.rate == nil && config.prefix == nil && !config.tolerateUnavailable)
        #expect(config.engine == .epoll)
        #expect(config.mix.weights.map(\.0) == LoadOp.allCases)
        #expect(config.mix.weights.map(\.1) == [70, 10, 15, 5, 0, 0])
        #expect(config.wrongPerChallenge == 4)

        var options = LoadOptions()
        options.urls = ["http://[::1]:8080", "http://localhost:8081"]
        let several = try options.validated(environment: Self.keys)
        #expect(several.endpoints.map(\.url) == ["http://[::1]:8080", "http://localhost:8081"])
    }

    @Test("each bad option is one invalidOption error naming its flag", arguments: [
        Refused("--users must be 2...100000") { $0.users = 1 },
        Refused("--concurrency must be 1...1024") { $0.concurrency = 1025 },
        Refused("--threads must be 1...16 and at most --concurrency") { $0.concurrency = 2; $0.threads = 3 },
        Refused("--duration must be in (0, 3600] seconds") { $0.duration = 0 },
        Refused("--rate must be in (0, 1000000]") { $0.rate = 0 },
        Refused("--engine must be epoll or nio") { $0.engine = "kqueue" },
        Refused("--wrong-per-challenge must be 1...1000") { $0.wrongPerChallenge = 0 },
        Refused("--mix: 'bogus=1' is not <auth|valid|wrong|replay|check|wrongcheck>=<weight>") { $0.mix = "auth=70,bogus=1" },
        Refused("--mix: the weights add up to 0") { $0.mix = "auth=0,check=0" },
        Refused("--url 'ftp://127.0.0.1/' is not an http:// URL") { $0.urls = ["ftp://127.0.0.1/"] },
        Refused("--url 'http://10.1.2.3:8080': the load generator only targets loopback addresses") { $0.urls = ["http://10.1.2.3:8080"] },
        Refused("at most 64 --url") { $0.urls = Array(repeating: "http://127.0.0.1:8080", count: 65) },
        Refused("no --admin-key: pass it or set GATEHOUSE_ADMIN_KEY") { $0.adminKey = "" },
        Refused("no --frontend-key: pass it or set GATEHOUSE_FRONTEND_KEY") { $0.adminKey = "a" },
    ])
    func invalid(_ refused: Refused) {
        let error = #expect(throws: LoadError.self) { try refused.options.validated(environment: [:]) }
        #expect(error?.code == .invalidOption)
        #expect(error?.message == refused.message)
    }

    @Test("--engine names what drives the timed run", arguments: LoadEngine.allCases)
    func engine(_ engine: LoadEngine) throws {
        var options = LoadOptions()
        options.engine = engine.rawValue
        #expect(try options.validated(environment: Self.keys).engine == engine)
    }

    @Test("a mix: spaces trimmed, the last weight of a kind wins, rolls land in operation order")
    func mix() throws {
        let mix = try LoadMix(parsing: "auth=1, check = 30,auth=70")
        #expect(mix.total == 100)
        #expect(mix.weights.map(\.1) == [70, 0, 0, 0, 30, 0])
        #expect([0, 69, 70, 99].map(mix.pick) == [.auth, .auth, .check, .check])
        // benchmarks/e2e.sh tells a generator without `check` by finding the pair in the error.
        let error = #expect(throws: LoadError.self) { try LoadMix(parsing: "check=100x") }
        #expect(error?.message.contains("'check=100x'") == true)
    }
}
