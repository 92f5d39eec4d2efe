import Foundation
import GatehouseTesting
import Testing

/// The pages in a real browser: headless Chromium driven by Selenium (`Tests/browser/flows.py`),
/// against in-process nodes with the stand-in webmail on, a real redis-server and a real SMTP
/// sink the flows read mailed codes from, all on loopback. The passkey flows use Chromium's
/// virtual authenticator on pages loaded from `localhost` (the relying party ID a node has by
/// default), one of them through both nodes. Each flow is its own `python3` process
/// with its own browser (two for signing out everywhere) and a fresh address, so the flows share
/// the node and nothing else. Chromium, chromedriver, Selenium and zbarimg must be installed
/// (`scripts/bootstrap.sh --tests`); without them these tests fail, naming the package.
@Suite("Pages in a real browser (headless Chromium)", .serialized, BrowserStage.Scope())
struct BrowserTests {
    /// flows.py's flows (its `--list`) but `screenshots`, which has a test of its own so that
    /// `scripts/screenshots.sh` can run it alone.
    static let flows = [
        "second_step_wrong_code_and_throttle",
        "authenticator_sign_in_and_remember",
        "email_code_sign_in",
        "backup_code_sign_in",
        "app_password_reveal_and_revoke",
        "forget_device",
        "sign_out_everywhere",
        "forgot_password",
        "csrf_refused",
        "passkey_register_and_sign_in",
        "passkey_second_node",
        "passkey_removed",
        "labels_and_phone_width",
    ]

    /// The screens the `screenshots` flow saves, as `NAME.png`.
    static let screens = ["second-step", "enroll-authenticator", "backup-codes", "settings", "forgot-password"]

    /// The domain of the flows' addresses; the suite turns on revealing app passwords and
    /// passkeys there.
    static let domain = "example.org"

    /// The repository (this file is `Tests/GatehouseServiceTests/BrowserTests.swift`).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var script: String { root.appendingPathComponent("Tests/browser/flows.py").path }

    @Test("a flow through the pages", .timeLimit(.minutes(2)), arguments: flows)
    func flow(_ name: String) async throws {
        try await Self.run(name)
    }

    /// `GATEHOUSE_SCREENSHOTS_DIR` (relative to the repository, e.g. `docs/screenshots`) keeps
    /// them; otherwise they go to a temporary directory and are only checked.
    @Test("screenshots of the main screens at 1280×900", .timeLimit(.minutes(2)))
    func screenshots() async throws {
        let kept = ProcessInfo.processInfo.environment["GATEHOUSE_SCREENSHOTS_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        let directory = kept.map { $0.hasPrefix("/") ? $0 : Self.root.appendingPathComponent($0).path }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-screenshots-\(UUID().uuidString)").path
        defer { if kept == nil { try? FileManager.default.removeItem(atPath: directory) } }
        guard try await Self.run("screenshots", screenshots: directory) else { return }
        for screen in Self.screens {
            let data = FileManager.default.contents(atPath: directory + "/" + screen + ".png") ?? Data()
            #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(screen).png is missing or not a PNG in \(directory)")
        }
    }

    @Test("the suite runs every flow flows.py has")
    func everyFlowRuns() async throws {
        let python = try ExternalProgram.python3.locate()
        let result = try await Program.run(python, [Self.script, "--list"], timeout: .seconds(30))
        #expect(result.status == 0, "\(result.stderr)")
        let listed = Set(result.stdout.split(separator: "\n").map(String.init))
        #expect(listed == Set(Self.flows + ["screenshots"]), "flows.py --list: \(listed.sorted())")
    }

    /// The interpreter itself (`sys.executable`) rather than a version manager's `python3` shim,
    /// which runs it as a child: the timeout's SIGTERM must reach flows.py, which then quits its
    /// browsers.
    static func interpreter(_ python: String) async throws -> String {
        let result = try await Program.run(python, ["-c", "import sys; print(sys.executable)"], timeout: .seconds(30))
        let path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return result.status == 0 && path.hasPrefix("/") ? path : python
    }

    /// A node's address, `http://127.0.0.1:PORT` or `http://localhost:PORT`.
    static func base(_ node: any TestNode, localhost: Bool) -> String {
        localhost ? "http://localhost:\(node.baseURL.port ?? 80)" : node.baseURL.absoluteString
    }

    /// Runs one flow of flows.py against the suite's nodes, at most 90 s, and expects exit 0;
    /// whether it passed.
    @discardableResult
    static func run(_ flow: String, screenshots: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bool {
        let stage = try #require(BrowserStage.current, "the browser tests' node did not start (see the suite's failure)")
        // Missing programs throw ExternalProgram.Missing, whose message names the package.
        let python = try await interpreter(try ExternalProgram.selenium.locate())
        let chromium = try ExternalProgram.chromium.locate()
        let chromedriver = try ExternalProgram.chromedriver.locate()
        let zbarimg = try ExternalProgram.zbarimg.locate()
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-browser-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        // WebAuthn checks the page's origin against the relying party ID, `localhost` here: the
        // passkey flows load the pages from `localhost`, which the nodes' 127.0.0.1 answers too.
        let passkeys = flow.hasPrefix("passkey_")
        var arguments = [
            script, "--base", base(stage.deployment.nodes[0], localhost: passkeys), "--mail-dir", stage.smtp.directory,
            "--domain", domain, "--temp", temporary,
            "--chromium", chromium, "--chromedriver", chromedriver, "--zbarimg", zbarimg,
        ]
        if passkeys { arguments += ["--base2", base(stage.deployment.nodes[1], localhost: true)] }
        if let screenshots { arguments += ["--screenshots", screenshots] }
        arguments.append(flow)
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONUNBUFFERED"] = "1"
        let result = try await Program.run(python, arguments, environment: environment, mergingErrors: true, timeout: .seconds(90))
        guard result.status != 0 || result.timedOut else { return true }
        let log = stage.deployment.node.log.split(separator: "\n").suffix(25).joined(separator: "\n")
        Issue.record(
            """
            flow \(flow) \(result.timedOut ? "ran past 90 s and was stopped" : "failed (exit \(result.status))"):
            \(result.stdout)
            the node's last log lines:
            \(log)
            """,
            sourceLocation: sourceLocation
        )
        return false
    }
}

/// What the browser tests run against, started once for the suite: the SMTP sink and a deployment
/// of two in-process nodes sharing one Redis and one keyring (the second for the flow that signs
/// in on the other node) with the stand-in webmail, mail going to the sink, and the
/// forgot-password flow ending at the demo's reset page.
struct BrowserStage: Sendable {
    let deployment: Deployment
    let smtp: SMTPServerProcess

    @TaskLocal static var current: BrowserStage?

    static func with(_ body: @Sendable () async throws -> Void) async throws {
        try await SMTPServerProcess.withServer { smtp in
            let environment = [
                "GATEHOUSE_WEB_DEMO": "on",
                "GATEHOUSE_SMTP_URL": smtp.url,
                "GATEHOUSE_MAIL_FROM": "gatehouse@mail.example",
                "GATEHOUSE_WEB_PASSWORD_RESET_URL": "/demo/reset-password",
            ]
            try await Deployment.with(nodes: 2, environment: environment) { d in
                // Revealing an app password works only for those created while the policy allows
                // it, so it is on before any flow enrols; passkeys are allowed beside the codes.
                let policy = try await d.call(
                    "PUT", "/v1/domains/\(BrowserTests.domain)/policy", key: "admin",
                    json: ["mode": "optional", "app_password_reveal": true, "methods": ["totp", "email", "passkey"]]
                )
                try #require(policy.status == 200, "setting \(BrowserTests.domain)'s policy: \(policy.json)")
                try await $current.withValue(BrowserStage(deployment: d, smtp: smtp)) {
                    try await body()
                }
            }
        }
    }

    /// The suite trait that runs the suite inside ``BrowserStage/with(_:)``.
    struct Scope: SuiteTrait, TestScoping {
        func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
            test.isSuite ? self : nil
        }

        func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
            try await BrowserStage.with(function)
        }
    }
}
