import Foundation
import GatehouseTesting
import Glibc
import Synchronization
import Testing

/// A real Dovecot (docker/dovecot/: the Lua passdb that asks Gatehouse, the primary passwd-file,
/// the master user for a proxy) in front of a real Gatehouse node, driven by real IMAP, POP3 and
/// SMTP clients (Python's imaplib, poplib, smtplib). Dovecot must be installed
/// (`scripts/bootstrap.sh --tests`); these tests fail, never skip, without it.
@Suite("Dovecot asks Gatehouse: IMAP, POP3 and submission", .serialized, .timeLimit(.minutes(3)))
struct DovecotTests {
    /// Every user's primary password in Dovecot's passwd-file.
    static let primary = "Primary-Passw0rd-7"

    /// A loopback address no login used before. Dovecot slows down logins from an address with
    /// recent failures (auth penalty, up to 15 s); a fresh address per login keeps each test's
    /// answers independent of the others and the suite quick. Not the server's own address, so
    /// these clients use STARTTLS as a remote client must.
    static func source() -> String {
        let n = Self.sources.withLock { n in
            n += 1
            return n
        }
        return "127.0.\(10 + n / 250).\(1 + n % 250)"
    }

    private static let sources = Mutex(0)

    static func options(_ d: Deployment, users: [String], timeout: Duration = .seconds(3)) -> DovecotProcess.Options {
        DovecotProcess.Options(
            gatehouseURL: d.node.baseURL.absoluteString, mailKey: Deployment.keys["mail"]!,
            primaryPasswords: Dictionary(uniqueKeysWithValues: users.map { ($0, Self.primary) }), gatehouseTimeout: timeout
        )
    }

    /// Runs the logins at once and expects each outcome; returns the results.
    @discardableResult
    static func expect(
        _ expected: [(MailClient.Login, MailClient.Outcome)], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [MailClient.Result] {
        let results = try await MailClient.run(expected.map(\.0))
        for (result, (_, outcome)) in zip(results, expected) {
            #expect(result.outcome == outcome, "\(result)", sourceLocation: sourceLocation)
        }
        return results
    }

    /// No secret in Dovecot's log.
    static func expectClean(_ dovecot: DovecotProcess, of secrets: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let log = dovecot.log
        for secret in secrets where secret.count >= 6 {
            #expect(!log.contains(secret), "a password appeared in Dovecot's log (\(dovecot.logPath))", sourceLocation: sourceLocation)
        }
    }

    static func occurrences(of text: String, in log: String) -> Int {
        log.components(separatedBy: text).count - 1
    }

    @Test("a two-step user logs in with the app password over IMAP, POP3 and submission; the primary password is refused on each")
    func appPasswordOpensEveryService() async throws {
        try await Deployment.with { d in
            let user = "dove-two@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            // Submission connects to its relay at login: a real SMTP server, so the session is whole.
            try await SMTPServerProcess.withServer { relay in
                var options = Self.options(d, users: [user])
                options.submissionRelayPort = relay.port
                try await DovecotProcess.with(options) { dovecot in
                    let compact = e.appPassword.replacingOccurrences(of: " ", with: "")
                    let appSources = (0..<5).map { _ in Self.source() }
                    let results = try await Self.expect([
                        (dovecot.login(.imap, user: user, password: e.appPassword, from: appSources[0]), .loggedIn),
                        (dovecot.login(.imap, user: user.uppercased(), password: compact, from: appSources[1], mechanism: "PLAIN"), .loggedIn),
                        (dovecot.login(.pop3, user: user, password: e.appPassword, from: appSources[2]), .loggedIn),
                        (dovecot.login(.smtp, user: user, password: e.appPassword, from: appSources[3], mechanism: "PLAIN"), .loggedIn),
                        (dovecot.login(.smtp, user: user, password: compact, from: appSources[4], mechanism: "LOGIN"), .loggedIn),
                        (dovecot.login(.imap, user: user, password: Self.primary, from: Self.source()), .refused),
                        (dovecot.login(.pop3, user: user, password: Self.primary, from: Self.source()), .refused),
                        (dovecot.login(.smtp, user: user, password: Self.primary, from: Self.source()), .refused),
                    ])
                    // The sessions are real: IMAP selected an empty INBOX, POP3 counted no messages.
                    #expect(results[0].after.hasPrefix("OK 0"), "\(results[0].after)")
                    #expect(results[2].after == "0 0", "\(results[2].after)")
                    #expect(results[3].after.hasPrefix("250"), "\(results[3].after)")
                    // Gatehouse saw the uses: the app password's last use is one of these logins.
                    let list = try await d.call("GET", "/v1/me/app-passwords", headers: ["Gatehouse-Session": e.token])
                    let entry = (list["app_passwords"] as? [[String: Any]])?.first
                    #expect(appSources.contains(entry?["last_used_ip"] as? String ?? ""), "\(list.json)")
                    #expect(["imap", "pop3", "smtp"].contains(entry?["last_used_service"] as? String ?? ""), "\(list.json)")
                    // The refusals came from Gatehouse's answer, not from Dovecot's passwd-file.
                    let log = dovecot.log
                    #expect(Self.occurrences(of: "gatehouse: denied", in: log) == 3, "\(log.suffix(3000))")
                    Self.expectClean(dovecot, of: [e.appPassword, compact, Self.primary, dovecot.masterSecret])
                }
            }
            d.expectLogsClean(of: [e.appPassword, Self.primary])
        }
    }

    @Test("a user without two-step logs in with the primary password from Dovecot's passwd-file; a wrong one is refused")
    func primaryPasswordWithoutTwoStep() async throws {
        try await Deployment.with { d in
            let user = "dove-plain@example.org"
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                try await Self.expect([
                    (dovecot.login(.imap, user: user, password: Self.primary, from: Self.source()), .loggedIn),
                    (dovecot.login(.pop3, user: user, password: Self.primary, from: Self.source()), .loggedIn),
                    (dovecot.login(.smtp, user: user, password: Self.primary, from: Self.source(), mechanism: "LOGIN"), .loggedIn),
                    (dovecot.login(.imap, user: user, password: Self.primary + "x", from: Self.source()), .refused),
                    (dovecot.login(.smtp, user: user, password: "not-the-password", from: Self.source()), .refused),
                    // Not in the passwd-file: Gatehouse says use_primary, and there is none.
                    (dovecot.login(.imap, user: "dove-nobody@example.org", password: Self.primary, from: Self.source()), .refused),
                ])
                let log = dovecot.log
                #expect(Self.occurrences(of: "passwd-file(\(user),", in: log) == 2, "the wrong passwords were not checked by the passwd-file: \(log.suffix(3000))")
                #expect(!log.contains("gatehouse: denied"))
                Self.expectClean(dovecot, of: [Self.primary, "not-the-password"])
            }
        }
    }

    @Test("an app password scoped to IMAP opens IMAP only")
    func scopedAppPassword() async throws {
        try await Deployment.with { d in
            let user = "dove-scoped@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let created = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "Phone IMAP", "services": ["imap"]], headers: ["Gatehouse-Session": e.token])
            #expect(created.status == 201, "\(created.json)")
            let imapOnly = try #require(created["password"] as? String)
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                try await Self.expect([
                    (dovecot.login(.imap, user: user, password: imapOnly, from: Self.source()), .loggedIn),
                    (dovecot.login(.pop3, user: user, password: imapOnly, from: Self.source()), .refused),
                    (dovecot.login(.smtp, user: user, password: imapOnly, from: Self.source()), .refused),
                ])
                #expect(dovecot.log.contains("gatehouse: denied (not an app password of this user for pop3)"))
                #expect(dovecot.log.contains("gatehouse: denied (not an app password of this user for smtp)"))
                Self.expectClean(dovecot, of: [imapOnly, e.appPassword])
            }
        }
    }

    @Test("a revoked app password is refused at the next login; the user's other app password still works")
    func revokedAppPassword() async throws {
        try await Deployment.with { d in
            let user = "dove-revoked@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let created = try await d.call("POST", "/v1/me/app-passwords", json: ["label": "Old laptop"], headers: ["Gatehouse-Session": e.token])
            let id = try #require(created["id"] as? String), password = try #require(created["password"] as? String)
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                try await Self.expect([(dovecot.login(.imap, user: user, password: password, from: Self.source()), .loggedIn)])
                let revoke = try await d.call("DELETE", "/v1/me/app-passwords/\(id)", headers: ["Gatehouse-Session": e.token])
                #expect(revoke.status == 204)
                try await Self.expect([
                    (dovecot.login(.imap, user: user, password: password, from: Self.source()), .refused),
                    (dovecot.login(.pop3, user: user, password: password, from: Self.source()), .refused),
                    (dovecot.login(.imap, user: user, password: e.appPassword, from: Self.source()), .loggedIn),
                ])
                Self.expectClean(dovecot, of: [password, e.appPassword])
            }
        }
    }

    @Test("Gatehouse stopped: a temporary failure on every service, and the primary password does not get in")
    func gatehouseStopped() async throws {
        try await Deployment.with { d in
            let user = "dove-down@example.org", plain = "dove-down-plain@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            try await DovecotProcess.with(Self.options(d, users: [user, plain])) { dovecot in
                // A check while the node runs leaves the auth worker a kept-alive connection to it.
                try await Self.expect([(dovecot.login(.imap, user: user, password: e.appPassword, from: Self.source()), .loggedIn)])
                await d.node.shutdown()
                // Nothing listens on its port any more (Dovecot holds no copy of the listener).
                let probe = Loopback.connect(port: d.node.baseURL.port!, receiveTimeout: .seconds(1))
                #expect(probe == nil, "the stopped node's port still accepts connections")
                if let probe { close(probe) }
                let results = try await Self.expect([
                    (dovecot.login(.imap, user: user, password: e.appPassword, from: Self.source()), .temporaryFailure),
                    (dovecot.login(.imap, user: user, password: Self.primary, from: Self.source()), .temporaryFailure),
                    (dovecot.login(.imap, user: plain, password: Self.primary, from: Self.source()), .temporaryFailure),
                    (dovecot.login(.pop3, user: plain, password: Self.primary, from: Self.source()), .temporaryFailure),
                    (dovecot.login(.smtp, user: plain, password: Self.primary, from: Self.source()), .temporaryFailure),
                ])
                for result in results {
                    // Refused connections fail the check at once; the answer waits auth_failure_delay (2 s).
                    #expect(result.seconds < 6, "a temporary failure took \(result.seconds) s")
                }
                let log = dovecot.log
                #expect(log.contains("gatehouse: unreachable"), "\(log.suffix(3000))")
                Self.expectClean(dovecot, of: [e.appPassword, Self.primary])
            }
        }
    }

    @Test("Gatehouse not answering: the check gives up at its timeout with a temporary failure")
    func gatehouseHangs() async throws {
        // A listening socket that never accepts: connections complete in the kernel and then hear
        // nothing, like a hung node.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound && listen(fd, 16) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let user = "dove-hung@example.org"
        let options = DovecotProcess.Options(
            gatehouseURL: "http://127.0.0.1:\(port)", mailKey: Deployment.keys["mail"]!, primaryPasswords: [user: Self.primary],
            gatehouseTimeout: .seconds(1)
        )
        try await DovecotProcess.with(options) { dovecot in
            let results = try await Self.expect([
                (dovecot.login(.imap, user: user, password: Self.primary, from: Self.source()), .temporaryFailure),
                (dovecot.login(.smtp, user: user, password: Self.primary, from: Self.source()), .temporaryFailure),
            ])
            for result in results {
                // At least the 1 s limit; well below the clients' own 20 s.
                #expect(result.seconds >= 1 && result.seconds < 8, "\(result)")
            }
            #expect(dovecot.log.contains("gatehouse: unreachable"), "\(dovecot.log.suffix(3000))")
        }
    }

    @Test("rate limited by Gatehouse: a guess is refused, not passed on to the primary password; the app password still gets in")
    func rateLimited() async throws {
        try await Deployment.with { d in
            let user = "dove-limited@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let limited = Self.source()
            // 10 different wrong passwords from one address use up its budget (docs/api.md).
            for guess in 0..<10 {
                _ = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": "wrong-password-\(guess)", "service": "imap", "client_ip": limited])
            }
            let over = try await d.call("POST", "/v1/mail/authenticate", key: "mail", json: ["user": user, "password": Self.primary, "service": "imap", "client_ip": limited])
            #expect(over.status == 429, "\(over.json)")
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                try await Self.expect([
                    (dovecot.login(.imap, user: user, password: Self.primary, from: limited), .refused),
                    (dovecot.login(.imap, user: user, password: e.appPassword, from: limited), .loggedIn),
                ])
                let log = dovecot.log
                #expect(log.contains("gatehouse: rate limited, retry after"), "\(log.suffix(3000))")
            }
        }
    }

    @Test("the master user: a proxy logs in as user*gatehouse from its own address, with Gatehouse not asked; nowhere else")
    func masterUserForAProxy() async throws {
        try await Deployment.with { d in
            let user = "dove-proxied@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                let proxy = dovecot.options.proxyAddress
                let master = "\(user)*\(dovecot.masterUser)"
                let results = try await Self.expect([
                    // The proxy talks to Dovecot without TLS, as nginx's mail proxy does.
                    (dovecot.login(.imap, user: master, password: dovecot.masterSecret, from: proxy), .loggedIn),
                    (dovecot.login(.pop3, user: master, password: dovecot.masterSecret, from: proxy), .loggedIn),
                    (dovecot.login(.smtp, user: master, password: dovecot.masterSecret, from: proxy), .loggedIn),
                    // Anywhere else the master secret opens nothing.
                    (dovecot.login(.imap, user: master, password: dovecot.masterSecret, from: Self.source()), .refused),
                    (dovecot.login(.imap, user: master, password: dovecot.masterSecret, from: "127.0.0.1"), .refused),
                ])
                #expect(results[0].after.hasPrefix("OK 0"), "\(results[0].after)")
                #expect(Self.occurrences(of: "Master user logging in as \(user)", in: dovecot.log) == 3, "\(dovecot.log.suffix(3000))")
                #expect(Self.occurrences(of: "allow_real_nets check failed", in: dovecot.log) == 2)
                // The backend never asks Gatehouse about these logins: they work with the node stopped.
                await d.node.shutdown()
                try await Self.expect([
                    (dovecot.login(.imap, user: master, password: dovecot.masterSecret, from: proxy), .loggedIn),
                    // Only the master secret: not the user's app password or primary password; and
                    // only for users Dovecot has. (Refused, not a temporary failure: Gatehouse is
                    // not asked for these either.)
                    (dovecot.login(.imap, user: master, password: e.appPassword, from: proxy), .refused),
                    (dovecot.login(.imap, user: master, password: Self.primary, from: proxy), .refused),
                    (dovecot.login(.imap, user: "dove-ghost@example.org*gatehouse", password: dovecot.masterSecret, from: proxy), .refused),
                ])
                #expect(!dovecot.log.contains("lua(\(user)"), "a master login reached the Gatehouse passdb")
                Self.expectClean(dovecot, of: [dovecot.masterSecret, e.appPassword, Self.primary])
            }
        }
    }

    @Test("a client elsewhere must use TLS before it sends a password")
    func tlsRequired() async throws {
        try await Deployment.with { d in
            let user = "dove-tls@example.org"
            try await DovecotProcess.with(Self.options(d, users: [user])) { dovecot in
                var imap = dovecot.login(.imap, user: user, password: Self.primary, from: Self.source())
                var smtp = dovecot.login(.smtp, user: user, password: Self.primary, from: Self.source())
                imap.tls = false
                smtp.tls = false
                let results = try await Self.expect([
                    (imap, .failed), (smtp, .failed),
                    (dovecot.login(.imap, user: user, password: Self.primary, from: Self.source()), .loggedIn),
                ])
                #expect(results[0].reply.contains("PRIVACYREQUIRED"), "\(results[0])")
                #expect(results[1].reply.hasPrefix("530 ") && results[1].reply.contains("TLS required"), "\(results[1])")
                #expect(results[2].login.tls)
            }
        }
    }
}
