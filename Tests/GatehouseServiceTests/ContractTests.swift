import Foundation
import GatehouseTesting
import Testing

/// The contract test: schemathesis (PyPI) generates requests from `docs/openapi.yaml` — valid
/// ones and, for every parameter and body member, invalid ones — sends them to a live node
/// (in-process, a real redis-server, a real SMTP sink; loopback only) and checks every answer:
///
/// - `not_a_server_error`: no 5xx. With Redis and the SMTP server up, nothing the document allows
///   a caller to send may make the node fail, whatever the input.
/// - `response_schema_conformance`: the body matches the schema the document gives for that status
///   and media type.
/// - `status_code_conformance`: the status is one the document lists for the operation (the
///   document lists each operation's statuses precisely; `OpenAPIConformanceTests` holds it to
///   that for a plain call, this test for generated ones).
/// - `content_type_conformance`: the media type is the documented one (`application/json`,
///   `application/problem+json`, …).
/// - `response_headers_conformance`: the headers the document marks required are there and
///   well-formed (`Retry-After` on 429 and 503, `Gatehouse-User` on 204 from `/v1/auth`).
/// - `ignored_auth`: a call the document secures, sent again without the API key, is refused.
/// - `use_after_free` and `ensure_resource_availability` (stateful sequences): what a call
///   deleted (an app password, a device, a passkey) is gone for the calls after it, and what one
///   created is there.
///
/// Not checked: schemathesis's `unsupported_method` (Gatehouse answers an unsupported method
/// with the documented 404 `not_found`, not 405) and `positive_data_acceptance` /
/// `negative_data_rejection`, which would need the document to spell out every rule the node
/// applies (an address's canonical form, a code's shape) as JSON Schema.
///
/// Each API-key scope the document's `security` requirements name gets its own schemathesis run,
/// with that key and the session of a seeded user who has two-step on, so the self-service calls
/// get past the session check: no key for the operations endpoints, then `verify`, `mail`,
/// `frontend`, `frontend` again as a user who is still enrolling (the enrolment challenge of an
/// `enforced` domain instead of a session, two-step off), and `admin` last (its resets and
/// sign-outs would end the user's session). The generation is derandomized
/// (`--generation-deterministic`: no seed, no example database, no crash cache) and bounded
/// (`--max-examples`); what varies from run to run is only what schemathesis learns from the
/// node's answers (ids, tokens), which it reuses in later requests.
/// The test fails with schemathesis's report on any failure or error, when an operation was
/// not tested, and when one that a valid key and session open never succeeded.
@Suite("Contract: docs/openapi.yaml against a live node (schemathesis)", .serialized, .timeLimit(.minutes(8)))
struct ContractTests {
    /// Test cases per operation in the fuzzing phase (the coverage and stateful phases add their
    /// own, a set fixed by the document). 50 gives about 6,700 test cases in all, about a minute
    /// and a half on 2 cores (measured with other builds running beside it).
    static let maxExamples = 50

    /// The checks schemathesis runs on every answer (see the type's documentation).
    static let checks = [
        "not_a_server_error", "response_schema_conformance", "status_code_conformance", "content_type_conformance",
        "response_headers_conformance", "ignored_auth", "use_after_free", "ensure_resource_availability",
    ]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var hooks: String { root.appendingPathComponent("Tests/contract/hooks.py").path }
    static var configuration: String { root.appendingPathComponent("Tests/contract/schemathesis.toml").path }
    static let domain = "example.org"
    static let enforcedDomain = "enforced.example"

    /// The schemathesis version the bootstrap table pins (`schemathesis==X`): derandomized
    /// generation is repeatable for one version.
    static var pinnedVersion: String? {
        let parts = ExternalProgram.schemathesis.package.components(separatedBy: "==")
        return parts.count == 2 ? parts[1] : nil
    }

    /// One schemathesis run: the operations whose `security` requirement names `scope` (nil: the
    /// operations endpoints, which need no key), called as `user`.
    struct Run: CustomStringConvertible {
        var scope: String?
        var user: User = .enrolled
        var description: String { (scope.map { "scope '\($0)'" } ?? "no key") + (scope == nil ? "" : ", \(user)") }
        /// schemathesis's `--include-by` expression selecting the operations.
        var filter: String { scope.map { "/security == [{\"apiKey\": [\"\($0)\"]}]" } ?? "/security == []" }
        var name: String { (scope ?? "none") + "-" + user.rawValue }
    }

    /// Whose token a run sends on every call (`Gatehouse-Session` or `Gatehouse-Challenge`).
    enum User: String, CustomStringConvertible {
        /// A fresh session of a user with an authenticator, a verified recovery address, an app
        /// password and a remembered device, in a domain that allows passkeys and revealing.
        case enrolled
        /// The enrolment challenge of a user in a domain that enforces two-step, who has a
        /// verified recovery address and nothing else yet: two-step off, and no session.
        case enrolling
        var description: String { self == .enrolled ? "a two-step user's session" : "an enrolment challenge" }
    }

    /// In this order: `admin` last, as its resets and sign-outs may end the users' sessions.
    static let runs = [
        Run(scope: nil), Run(scope: "verify"), Run(scope: "mail"), Run(scope: "frontend"), Run(scope: "frontend", user: .enrolling),
        Run(scope: "admin"),
    ]

    @Test("schemathesis finds no server error and no answer outside the document")
    func schemathesis() async throws {
        let python = try await BrowserTests.interpreter(try ExternalProgram.schemathesis.locate())
        let version = try await Program.run(python, ["-c", "import schemathesis; print(schemathesis.__version__)"], timeout: .seconds(60))
        let installed = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let pinned = try #require(Self.pinnedVersion, "ExternalProgram.schemathesis should pin a version (schemathesis==X)")
        try #require(
            installed == pinned,
            "schemathesis \(installed.isEmpty ? "(unknown version: \(version.stderr))" : installed) is installed, the test runs \(pinned): `python3 -m pip install \(ExternalProgram.schemathesis.package)`"
        )

        let document = try OpenAPIConformanceTests.document()
        let documented = Set(document.operations.map { "\($0.method) \($0.path)" })
        // Every operation has a scope (or none) that some run selects.
        for op in document.operations {
            #expect(Self.runs.contains { ($0.scope ?? "") == (op.scope ?? "-") }, "\(op): its security requirement is not one the contract test runs")
        }
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-contract-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: temporary) }

        try await SMTPServerProcess.withServer { smtp in
            let environment = ["GATEHOUSE_SMTP_URL": smtp.url, "GATEHOUSE_MAIL_FROM": "gatehouse@mail.example"]
            try await Deployment.with(environment: environment) { d in
                // Passkeys and revealing app passwords allowed, so those calls get past the
                // policy; a user with an authenticator, a verified recovery address and a fresh
                // session (and a remembered device and an app password).
                let policy = try await d.call(
                    "PUT", "/v1/domains/\(Self.domain)/policy", key: "admin",
                    json: ["mode": "optional", "app_password_reveal": true, "methods": ["totp", "email", "passkey"]]
                )
                try #require(policy.status == 200, "setting \(Self.domain)'s policy: \(policy.json)")
                let (user, secret) = try await d.enrolledUser("contract@\(Self.domain)")
                try await d.freshStep()
                let challenge = try await d.challenge(for: user)
                let login = try await d.call(
                    "POST", "/v1/login/finish",
                    json: ["challenge": challenge, "method": "totp", "code": try await d.code(secret: secret), "remember": true]
                )
                let session = try #require((login["session"] as? [String: Any])?["token"] as? String, "login/finish: \(login.json)")
                let created = try await d.call(
                    "POST", "/v1/me/app-passwords", json: ["label": "contract"], headers: ["Gatehouse-Session": session]
                )
                try #require(created.status == 201, "creating an app password: \(created.json)")
                // A user of a domain that enforces two-step, not enrolled yet: login/start gives
                // the enrolment challenge, which stands in for a session while enrolling.
                let enforced = try await d.call(
                    "PUT", "/v1/domains/\(Self.enforcedDomain)/policy", key: "admin", json: ["mode": "enforced", "methods": ["totp", "email", "passkey"]]
                )
                try #require(enforced.status == 200, "setting \(Self.enforcedDomain)'s policy: \(enforced.json)")
                let imported = try await d.importUsers([["user": "enrolling@\(Self.enforcedDomain)", "recovery_email": "backup@example.net", "verified": true]])
                try #require(imported["imported"] as? Int == 1, "importing the enrolling user: \(imported.json)")
                let start = try await d.call("POST", "/v1/login/start", json: ["user": "enrolling@\(Self.enforcedDomain)"])
                try #require(start["status"] as? String == "enrollment_required", "login/start for the enrolling user: \(start.json)")
                let enrolment = try #require((start["challenge"] as? [String: Any])?["token"] as? String)
                let headers: [User: [String]] = [
                    .enrolled: ["Gatehouse-Session: \(session)"], .enrolling: ["Gatehouse-Challenge: \(enrolment)"],
                ]

                var exercised: [String: Exercised] = [:]
                for run in Self.runs {
                    let operations = try await Self.schemathesis(
                        python: python, run: run, base: d.node.baseURL.absoluteString, headers: run.scope == nil ? [] : headers[run.user] ?? [],
                        directory: temporary, deployment: d
                    )
                    for (operation, seen) in operations {
                        let op = document.operations.first { "\($0.method) \($0.path)" == operation }
                        #expect(op != nil, "schemathesis tested \(operation), which the document parser does not list")
                        #expect((op?.scope ?? "") == (run.scope ?? ""), "\(operation) ran with \(run) but needs \(op?.scope ?? "no key")")
                        exercised[operation, default: Exercised()].add(seen)
                    }
                }
                // Not vacuous: every documented operation was sent test cases, …
                #expect(Set(exercised.keys) == documented, "untested: \(documented.subtracting(exercised.keys).sorted())")
                for (operation, seen) in exercised.sorted(by: { $0.key < $1.key }) {
                    #expect(seen.cases >= Self.minimumCases, "\(operation): only \(seen.cases) test cases")
                }
                // … and the calls that need only the key, the session and a well-formed body got
                // past them: each answered at least once with success.
                for operation in Self.reachable {
                    let statuses = exercised[operation]?.statuses ?? [:]
                    #expect(statuses.keys.contains { (200..<300).contains($0) }, "\(operation) never succeeded (answers: \(statuses.sorted { $0.key < $1.key })): the key, the session or the seeded data did not work")
                }
                let cases = exercised.values.reduce(0) { $0 + $1.cases }
                print("schemathesis: \(exercised.count) operations, \(cases) test cases (coverage and fuzzing phases)")
            }
        }
    }

    /// At least this many test cases per operation (the coverage phase alone gives each a few).
    static let minimumCases = 10

    /// Operations that must answer with success at least once: with the key, the seeded user's
    /// session and a body of the documented shape they have nothing left to refuse.
    static let reachable = [
        "GET /healthz", "GET /.well-known/jwks.json", "GET /v1/auth", "GET /v1/me", "GET /v1/me/app-passwords", "GET /v1/me/devices",
        "GET /v1/me/sessions", "GET /v1/me/events", "GET /v1/me/passkeys", "POST /v1/login/start", "POST /v1/mail/authenticate",
        "GET /v1/domains/{domain}/policy", "PUT /v1/domains/{domain}/policy", "GET /v1/users/{user}", "POST /v1/users/import",
    ]

    /// What one operation was sent: test cases of the example, coverage and fuzzing phases, and
    /// the statuses they got (the stateful phase's sequences are checked but not counted here).
    struct Exercised {
        var cases = 0
        var statuses: [Int: Int] = [:]

        mutating func add(_ other: Exercised) {
            cases += other.cases
            statuses.merge(other.statuses, uniquingKeysWith: +)
        }
    }

    /// Runs schemathesis for `run` against `base`; what it sent to each operation, read from its
    /// NDJSON event stream. Records a failure, with schemathesis's own report, when it found
    /// anything or failed to run.
    static func schemathesis(
        python: String, run: Run, base: String, headers: [String], directory: String, deployment: Deployment
    ) async throws -> [String: Exercised] {
        let events = directory + "/events-\(run.name).ndjson"
        var arguments = [
            "-m", "schemathesis.cli", "--config-file", configuration, "run", root.appendingPathComponent("docs/openapi.yaml").path,
            "--url", base,
            "--include-by", run.filter,
            "--max-examples", String(maxExamples),
            "--generation-deterministic",
            "--checks", checks.joined(separator: ","),
            "--workers", "1",
            "--request-timeout", "10",
            "--no-color",
            "--report", "ndjson", "--report-ndjson-path", events, "--report-dir", directory,
        ]
        if let scope = run.scope, let key = Deployment.keys[scope] {
            arguments += ["--header", "Authorization: Bearer \(key)"]
        }
        arguments += headers.flatMap { ["--header", $0] }
        var environment = ProcessInfo.processInfo.environment
        environment["SCHEMATHESIS_HOOKS"] = hooks
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONUNBUFFERED"] = "1"
        environment["NO_COLOR"] = "1"
        environment["COLUMNS"] = "120"
        let started = ContinuousClock.now
        let result = try await Program.run(python, arguments, environment: environment, mergingErrors: true, timeout: .seconds(240))
        let elapsed = ContinuousClock.now - started

        var operations: [String: Exercised] = [:]
        let text = FileManager.default.contents(atPath: events).map { String(decoding: $0, as: UTF8.self) } ?? ""
        for line in text.split(separator: "\n") {
            guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let finished = event["ScenarioFinished"] as? [String: Any],
                ["examples", "coverage", "fuzzing"].contains(finished["phase"] as? String),
                let recorder = finished["recorder"] as? [String: Any], let label = recorder["label"] as? String
            else { continue }
            var seen = operations[label] ?? Exercised()
            seen.cases += (recorder["cases"] as? [String: Any])?.count ?? 0
            for case let interaction as [String: Any] in (recorder["interactions"] as? [String: Any])?.values.map({ $0 }) ?? [] {
                if let status = (interaction["response"] as? [String: Any])?["status_code"] as? Int { seen.statuses[status, default: 0] += 1 }
            }
            operations[label] = seen
        }
        let cases = operations.values.reduce(0) { $0 + $1.cases }
        let summary = "schemathesis, \(run): \(operations.count) operations, \(cases) test cases in \(elapsed.components.seconds) s, exit \(result.status)"
        print(summary)
        if result.status != 0 || result.timedOut || operations.isEmpty {
            let log = deployment.node.log.split(separator: "\n").suffix(30).joined(separator: "\n")
            Issue.record(
                "\(summary)\(result.timedOut ? ", stopped after 240 s" : ""):\n\(result.stdout.suffix(30_000))\nthe node's last log lines:\n\(log)"
            )
        }
        return operations
    }
}
