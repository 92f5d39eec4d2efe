import Foundation
import GatehouseRedis
import GatehouseService
import GatehouseTesting
import Testing

/// The whole mail path with real servers: IMAP, POP3 and SMTP clients (Python's imaplib, poplib,
/// smtplib) → nginx's mail proxy (libnginx-mod-mail) → `auth_http` to a Gatehouse node → Dovecot
/// (docker/dovecot/) for IMAP and POP3, a real SMTP server for SMTP. nginx logs in to Dovecot
/// as the master user for a two-step user, so Dovecot never sees an app password.
@Suite("nginx mail proxy → Gatehouse → Dovecot", .serialized, .timeLimit(.minutes(4)))
struct MailProxyTests {
    /// Every user's primary password in Dovecot's passwd-file.
    static let primary = DovecotTests.primary

    /// The mail path around one deployment: Dovecot asks node 0 (users without two-step, through
    /// its Lua passdb), a second node configured with the backends answers nginx.
    struct MailPath {
        let d: Deployment
        let dovecot: DovecotProcess
        let relay: SMTPServerProcess
        let proxy: NginxMailProxy

        /// A login through nginx from `source` (nginx passes it on as `Client-IP`).
        func login(_ service: MailClient.Service, user: String, password: String, from source: String, mechanism: String? = nil) -> MailClient.Login {
            // A refusal is held up to 30 s (Auth-Wait): a timeout above that.
            MailClient.Login(service, port: proxy.port(service), user: user, password: password, source: source, mechanism: mechanism, timeout: 60)
        }
    }

    static func with(users: [String], _ body: (MailPath) async throws -> Void) async throws {
        try await Deployment.with { d in
            try await SMTPServerProcess.withServer { relay in
                var options = DovecotTests.options(d, users: users)
                options.submissionRelayPort = relay.port
                // nginx connects to Dovecot from 127.0.0.1: the proxy address Dovecot trusts.
                options.proxyAddress = "127.0.0.1"
                try await DovecotProcess.with(options) { dovecot in
                    let masterFile = d.directory + "/mail-master-password"
                    try dovecot.masterSecret.write(toFile: masterFile, atomically: true, encoding: .utf8)
                    let node = try await InProcessNode.start(
                        redisURL: d.redis.url().description, directory: d.directory,
                        environment: [
                            "GATEHOUSE_MAIL_BACKEND_IMAP": "\(dovecot.address):\(dovecot.imapPort)",
                            "GATEHOUSE_MAIL_BACKEND_POP3": "\(dovecot.address):\(dovecot.pop3Port)",
                            "GATEHOUSE_MAIL_BACKEND_SMTP": "127.0.0.1:\(relay.port)",
                            "GATEHOUSE_MAIL_BACKEND_MASTER_USER": dovecot.masterUser,
                            "GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE": masterFile,
                        ],
                        clockOffset: d.clockOffset!
                    )
                    try await scoped(node, cleanup: { await $0.shutdown() }) { node in
                        try await NginxMailProxy.with(asking: node, key: Deployment.keys["mail"]!) { proxy in
                            try await body(MailPath(d: d, dovecot: dovecot, relay: relay, proxy: proxy))
                            proxy.nginx.expectErrorLogClean()
                        }
                        d.expectLogsClean(of: [dovecot.masterSecret])
                        #expect(!node.log.contains(dovecot.masterSecret))
                    }
                }
            }
        }
    }

    /// Runs the logins at once and expects each outcome.
    @discardableResult
    static func expect(_ expected: [(MailClient.Login, MailClient.Outcome)], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [MailClient.Result] {
        try await DovecotTests.expect(expected, sourceLocation: sourceLocation)
    }

    @Test("app passwords open IMAP, POP3 and SMTP through nginx; the primary password is refused with words that say what to do, and works again once two-step is off")
    func appPasswordsAndPrimary() async throws {
        let user = "proxy-two@example.org"
        try await Self.with(users: [user]) { m in
            let e = try await AccountFeatureTests.enrolThroughAPI(m.d, user)
            let source = DovecotTests.source()
            try await Self.expect([
                (m.login(.imap, user: user, password: e.appPassword, from: source), .loggedIn),
                (m.login(.imap, user: user, password: e.appPassword, from: source, mechanism: "PLAIN"), .loggedIn),
                (m.login(.pop3, user: user, password: e.appPassword, from: source), .loggedIn),
                (m.login(.smtp, user: user, password: e.appPassword, from: source, mechanism: "PLAIN"), .loggedIn),
                (m.login(.smtp, user: user, password: e.appPassword, from: source, mechanism: "LOGIN"), .loggedIn),
            ])
            let refused = try await Self.expect([
                (m.login(.imap, user: user, password: Self.primary, from: DovecotTests.source()), .refused),
                (m.login(.pop3, user: user, password: Self.primary, from: DovecotTests.source()), .refused),
                (m.login(.smtp, user: user, password: Self.primary, from: DovecotTests.source()), .refused),
            ])
            for result in refused {
                #expect(result.reply.contains("Two-step verification is on for this account: sign in with an app password"), "\(result)")
            }
            #expect(refused[2].reply.contains("535"), "\(refused[2])")
            // Dovecot never saw the app password: nginx logged in as the master user (Dovecot then
            // skips the passdb that asks Gatehouse). Had Dovecot asked, the last use would name
            // nginx's address (127.0.0.1), Dovecot's client, instead of the mail client's.
            DovecotTests.expectClean(m.dovecot, of: [e.appPassword, e.appPassword.replacingOccurrences(of: " ", with: "")])
            let list = try await m.d.call("GET", "/v1/me/app-passwords", headers: ["Gatehouse-Session": e.token])
            let used = (list["app_passwords"] as? [[String: Any]])?.first
            #expect(used?["last_used_ip"] as? String == source, "\(list.json)")
            #expect(["imap", "pop3", "smtp"].contains(used?["last_used_service"] as? String ?? ""), "\(list.json)")
            // Two-step off: the primary password opens everything again (Dovecot checks it).
            let session = try await m.d.signIn(user, secret: e.secret, offset: 1)
            #expect(try await m.d.call("DELETE", "/v1/me/two-step", json: ["code": e.codes[0]], headers: ["Gatehouse-Session": session]).status == 204)
            try await Self.expect([
                (m.login(.imap, user: user, password: Self.primary, from: DovecotTests.source()), .loggedIn),
                (m.login(.pop3, user: user, password: Self.primary, from: DovecotTests.source()), .loggedIn),
                (m.login(.imap, user: user, password: "not the primary password", from: DovecotTests.source()), .refused),
            ])
            m.d.expectLogsClean(of: [e.appPassword, Self.primary])
        }
    }

    @Test("a revoked app password is refused through the other node at once; one scoped to IMAP does not open POP3 or SMTP")
    func revokedAndScoped() async throws {
        let user = "proxy-scope@example.org"
        try await Self.with(users: [user]) { m in
            let e = try await AccountFeatureTests.enrolThroughAPI(m.d, user)
            let created = try await m.d.call("POST", "/v1/me/app-passwords", json: ["label": "Tablet mail", "services": ["imap"]], headers: ["Gatehouse-Session": e.token])
            let imapOnly = created["password"] as? String ?? ""
            let id = created["id"] as? String ?? ""
            let scoped = try await Self.expect([
                (m.login(.imap, user: user, password: imapOnly, from: DovecotTests.source()), .loggedIn),
                (m.login(.pop3, user: user, password: imapOnly, from: DovecotTests.source()), .refused),
                (m.login(.smtp, user: user, password: imapOnly, from: DovecotTests.source()), .refused),
            ])
            #expect(scoped[1].reply.contains("not allowed for POP3"), "\(scoped[1])")
            // Revoked through node 0; nginx asks the other node.
            #expect(try await m.d.call("DELETE", "/v1/me/app-passwords/\(id)", headers: ["Gatehouse-Session": e.token]).status == 204)
            // The very next login, started at once: nodes keep no copy of app passwords, so
            // there is nothing to wait for.
            let after = try await Self.expect([(m.login(.imap, user: user, password: imapOnly, from: DovecotTests.source()), .refused)])
            #expect(after[0].reply.contains("Two-step verification is on"))
            try await Self.expect([(m.login(.imap, user: user, password: e.appPassword, from: DovecotTests.source()), .loggedIn)])
        }
    }

    @Test("a phone repeating the old password 200 times is held, never throttled, reported once; the user still reads mail and signs in to webmail")
    func staleClient() async throws {
        let user = "proxy-stale@example.org"
        try await Self.with(users: [user]) { m in
            let e = try await AccountFeatureTests.enrolThroughAPI(m.d, user)
            let phone = DovecotTests.source()
            for _ in 0..<4 {
                let round = try await MailClient.run((0..<50).map { _ in m.login(.imap, user: user, password: Self.primary, from: phone) }, timeout: .seconds(90))
                for result in round {
                    #expect(result.outcome == .refused && result.reply.contains("Two-step verification is on"), "\(result)")
                }
            }
            // The same address, with the app password: in at once.
            try await Self.expect([(m.login(.imap, user: user, password: e.appPassword, from: phone), .loggedIn)])
            let session = try await m.d.signIn(user, secret: e.secret, offset: 1)
            #expect(try await m.d.auth(session).status == 204)
            let events = try await m.d.call("GET", "/v1/me/events", headers: ["Gatehouse-Session": session])
            let stale = (events["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "mail_stale_password" }
            #expect(stale.count == 1 && stale.first?["client_ip"] as? String == phone, "\(events.json)")
        }
    }

    @Test("a guesser trying different passwords through nginx is throttled after 10 and told when to come back; the real app password still opens IMAP from that address")
    func guesser() async throws {
        let user = "proxy-guessed@example.org"
        try await Self.with(users: [user]) { m in
            let e = try await AccountFeatureTests.enrolThroughAPI(m.d, user)
            let attacker = DovecotTests.source()
            let guesses = try await MailClient.run((0..<12).map { m.login(.imap, user: user, password: "guess-\($0)-Winter!", from: attacker) }, timeout: .seconds(90))
            // Ten are wrong passwords; the last two are a temporary refusal (IMAP's UNAVAILABLE).
            #expect(guesses.filter { $0.outcome == .refused && $0.reply.contains("Two-step verification is on") }.count == 10, "\(guesses.map(\.reply))")
            let throttled = guesses.filter { $0.outcome == .temporaryFailure && $0.reply.contains("Too many failed logins from your address: try again in") }
            #expect(throttled.count == 2, "\(guesses.map(\.reply))")
            try await Self.expect([(m.login(.imap, user: user, password: e.appPassword, from: attacker), .loggedIn)])
        }
    }
}

/// nginx's mail proxy (IMAP, POP3 and SMTP on loopback ports of their own) whose `auth_http`
/// asks one Gatehouse node with a `mail` key, started through ``NginxProcess``.
struct NginxMailProxy {
    let nginx: NginxProcess
    let imapPort: Int
    let pop3Port: Int
    let smtpPort: Int

    func port(_ service: MailClient.Service) -> Int {
        switch service {
        case .imap: imapPort
        case .pop3: pop3Port
        case .smtp: smtpPort
        }
    }

    static func with<T>(asking node: any TestNode, key: String, _ body: (NginxMailProxy) async throws -> T) async throws -> T {
        try await scoped(try await start(asking: node, key: key), cleanup: { await $0.nginx.stop() }, body)
    }

    static func start(asking node: any TestNode, key: String) async throws -> NginxMailProxy {
        let module: String
        do { module = try ExternalProgram.nginxMail.locate() } catch { throw NginxProcess.NginxError(description: error.description) }
        guard let nodePort = node.baseURL.port else { throw NginxProcess.NginxError(description: "no port in \(node.baseURL)") }
        let ports = Ports()
        let nginx = try await NginxProcess.start { directory, port in
            let (imap, pop3, smtp) = (try NginxProcess.freeLoopbackPort(), try NginxProcess.freeLoopbackPort(), try NginxProcess.freeLoopbackPort())
            ports.set(imap, pop3, smtp)
            return configuration(module: module, directory: directory, port: port, authHTTP: "127.0.0.1:\(nodePort)", key: key, imap: imap, pop3: pop3, smtp: smtp)
        }
        let (imap, pop3, smtp) = ports.get()
        return NginxMailProxy(nginx: nginx, imapPort: imap, pop3Port: pop3, smtpPort: smtp)
    }

    /// The ports the last rendered configuration chose.
    private final class Ports: @unchecked Sendable {
        private let lock = NSLock()
        private var value = (0, 0, 0)
        func set(_ imap: Int, _ pop3: Int, _ smtp: Int) { lock.withLock { value = (imap, pop3, smtp) } }
        func get() -> (Int, Int, Int) { lock.withLock { value } }
    }

    /// The mail proxy of docs/mail-servers.md on loopback, plus the health location
    /// ``NginxProcess`` waits for. SMTP's backend is a plain SMTP server that relays for
    /// nginx's address (`xclient off`); Postfix would take `XCLIENT` instead.
    static func configuration(module: String, directory: String, port: Int, authHTTP: String, key: String, imap: Int, pop3: Int, smtp: Int) -> String {
        """
        load_module \(module);
        daemon off;
        master_process on;
        worker_processes 1;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log notice;
        events { worker_connections 1024; }
        http {
            access_log off;
            client_body_temp_path \(directory)/client_body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            server {
                listen 127.0.0.1:\(port);
                location = /nginx-health { return 204; }
            }
        }
        mail {
            server_name mail.gatehouse.test;
            auth_http \(authHTTP)/v1/mail/auth-http;
            auth_http_header Authorization "Bearer \(key)";
            proxy_pass_error_message on;
            server { listen 127.0.0.1:\(imap); protocol imap; imap_auth plain login; }
            server { listen 127.0.0.1:\(pop3); protocol pop3; pop3_auth plain; }
            server { listen 127.0.0.1:\(smtp); protocol smtp; smtp_auth plain login; xclient off; }
        }

        """
    }
}
