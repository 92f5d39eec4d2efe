import Foundation
import GatehouseCore
import GatehouseSystem
import GatehouseTesting
import Glibc
import Testing

/// A real nginx (Debian's package) in front of a real Gatehouse node with `auth_request`, the way
/// `GET /v1/auth` is meant to be used (docs/api.md): the protected page is served for a valid
/// session and refused without one. nginx must be installed; these tests fail (never skip) without it.
@Suite("nginx auth_request in front of Gatehouse", .timeLimit(.minutes(2)))
struct NginxTests {
    /// Two ways nginx hands the session to Gatehouse: `/protected/` copies the cookie into
    /// `Gatehouse-Session`; `/cookie-only/` forwards the browser's `Cookie` header untouched, so
    /// Gatehouse reads the `gatehouse_session` cookie itself.
    static let paths = ["/protected/inbox", "/cookie-only/inbox"]

    @Test("a signed-in user's page is served, with the user passed on")
    func servesSignedInUser() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            #expect(!token.isEmpty)
            try await NginxProcess.with(frontOf: d.node) { nginx in
                for path in Self.paths {
                    for cookie in ["gatehouse_session=\(token)", "theme=dark; gatehouse_session=\(token); lang=en"] {
                        let reply = try await nginx.get(path, cookie: cookie)
                        #expect(reply.status == 200, "\(path) with a valid session: \(reply.status) \(reply.body)")
                        #expect(reply.body == "protected page for \(user)\n", "\(path)")
                        #expect(reply.headers["x-gatehouse-user"] == user, "\(path)")
                    }
                }
                // A client cannot name itself: the user the page sees is the one Gatehouse vouched for.
                let spoof = ["X-Gatehouse-User": "mallory@example.org", "Gatehouse-User": "mallory@example.org"]
                for path in Self.paths {
                    let signedIn = try await nginx.get(path, cookie: "gatehouse_session=\(token)", headers: spoof)
                    #expect(signedIn.status == 200 && signedIn.body == "protected page for \(user)\n", "\(path) with spoofed user headers: \(signedIn.body)")
                    let anonymous = try await nginx.get(path, headers: spoof)
                    #expect(anonymous.status == 401, "\(path), spoofed user headers and no session: \(anonymous.status)")
                }
                nginx.expectErrorLogClean()
            }
            d.expectLogsClean(of: [token, secret])
        }
    }

    @Test("no session, an empty, garbage, tampered or wrong-kind token: 401")
    func refusesWithoutValidSession() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let challenge = try await d.challenge(for: user)
            try await NginxProcess.with(frontOf: d.node) { nginx in
                for path in Self.paths {
                    for cookie in [nil, "theme=dark", "gatehouse_session="] {
                        let reply = try await nginx.get(path, cookie: cookie)
                        #expect(reply.status == 401, "\(path), cookie \(cookie ?? "none"): \(reply.status)")
                        #expect(reply.headers["x-gatehouse-user"] == nil)
                        #expect(!reply.body.contains("protected page"))
                    }
                    for (label, bad) in Self.badTokens(from: token, challenge: challenge) {
                        let reply = try await nginx.get(path, cookie: "gatehouse_session=\(bad)")
                        #expect(reply.status == 401, "\(path), \(label): \(reply.status)")
                        #expect(reply.headers["x-gatehouse-user"] == nil, "\(path), \(label)")
                        #expect(!reply.body.contains("protected page"), "\(path), \(label)")
                    }
                }
                // The good token still opens the page: the refusals above were about the tokens.
                #expect(try await nginx.get("/protected/inbox", cookie: "gatehouse_session=\(token)").status == 200)
                nginx.expectErrorLogClean()
            }
        }
    }

    @Test("nginx configured with a key lacking the verify scope gets 403, an unknown key 401")
    func refusesWrongAPIKey() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            try await NginxProcess.with(frontOf: d.node) { nginx in
                let frontendKey = try await nginx.get("/frontend-key/inbox", cookie: "gatehouse_session=\(token)")
                #expect(frontendKey.status == 403, "a frontend-only key: \(frontendKey.status)")
                let unknownKey = try await nginx.get("/unknown-key/inbox", cookie: "gatehouse_session=\(token)")
                #expect(unknownKey.status == 401, "an unknown key: \(unknownKey.status)")
                #expect(unknownKey.headers["x-gatehouse-user"] == nil)
            }
        }
    }

    @Test("a revoked session is refused through nginx within 1 s; other sessions stay valid")
    func revokedSessionRefused() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let (other, otherSecret) = try await d.enrolledUser()
            let otherToken = try await d.signIn(other, secret: otherSecret)
            try await NginxProcess.with(frontOf: d.node) { nginx in
                for path in Self.paths {
                    #expect(try await nginx.get(path, cookie: "gatehouse_session=\(token)").status == 200, "\(path) before the revocation")
                }
                let revoke = try await d.call("POST", "/v1/sessions/revoke", json: ["token": token])
                #expect(revoke.status == 204, "revoke: \(revoke.status) \(revoke.json)")
                let took = try await d.within(.seconds(1)) {
                    try await nginx.get("/protected/inbox", cookie: "gatehouse_session=\(token)").status == 401
                }
                #expect(took != nil, "the revoked session still opened the page after 1 s")
                for path in Self.paths {
                    let reply = try await nginx.get(path, cookie: "gatehouse_session=\(token)")
                    #expect(reply.status == 401, "\(path) after the revocation: \(reply.status)")
                    let still = try await nginx.get(path, cookie: "gatehouse_session=\(otherToken)")
                    #expect(still.status == 200, "\(path), another user's session after the revocation: \(still.status)")
                    #expect(still.headers["x-gatehouse-user"] == other)
                }
                nginx.expectErrorLogClean()
            }
        }
    }

    /// Tokens that must not open the page, derived from a good session token.
    static func badTokens(from token: String, challenge: String) -> [(String, String)] {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else {
            Issue.record("a session token is not a compact JWS: \(parts.count) parts")
            return []
        }
        var signature = Array(parts[2])
        let middle = signature.count / 2
        signature[middle] = signature[middle] == "A" ? "B" : "A"
        var claims = (try? JSONSerialization.jsonObject(with: Data(Base64URL.decode(parts[1]) ?? []))) as? [String: Any] ?? [:]
        claims["sub"] = "mallory@example.org"
        let forgedClaims = Base64URL.encode(Array((try? JSONSerialization.data(withJSONObject: claims)) ?? Data()))
        let noneHeader = Base64URL.encode(Array(#"{"alg":"none","typ":"gh-session"}"#.utf8))
        return [
            ("garbage", "not-a-token"),
            ("a flipped signature character", parts[0] + "." + parts[1] + "." + String(signature)),
            ("claims rewritten to another user", parts[0] + "." + forgedClaims + "." + parts[2]),
            ("alg none without a signature", noneHeader + "." + parts[1] + "."),
            ("the signature cut off", parts[0] + "." + parts[1]),
            ("a challenge token (another kind)", challenge),
            ("longer than 4 KiB", token + String(repeating: "A", count: 4200)),
        ]
    }
}

// MARK: - nginx

/// A real nginx child process (`daemon off`, master plus one worker) whose configuration, pid
/// file, logs and temp paths all live in its own temporary directory, so it needs nothing from
/// the system's nginx configuration. It listens on a free loopback port and sends its
/// `auth_request` subrequests to one Gatehouse node.
final class NginxProcess: @unchecked Sendable {
    // @unchecked: pid and paths are set once in init; `stopped` is guarded by the lock, so the
    // process is stopped, waited for and reaped exactly once.
    let pid: pid_t
    let baseURL: URL
    let directory: String
    private let lock = NSLock()
    private var stopped = false

    struct NginxError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts nginx in front of `node`, runs `body`, and always stops it.
    static func with<T>(frontOf node: any TestNode, _ body: (NginxProcess) async throws -> T) async throws -> T {
        try await scoped(try await start(frontOf: node), cleanup: { await $0.stop() }, body)
    }

    /// The nginx binary, found through GatehouseTesting's table of external programs.
    static func binary() throws -> String {
        do { return try ExternalProgram.nginx.locate() } catch { throw NginxError(description: error.description) }
    }

    /// Starts nginx in front of `node` (``configuration(directory:port:upstream:)``).
    static func start(frontOf node: any TestNode, timeout: Duration = .seconds(15)) async throws -> NginxProcess {
        guard let host = node.baseURL.host, let nodePort = node.baseURL.port else {
            throw NginxError(description: "cannot read host and port from \(node.baseURL)")
        }
        return try await start(timeout: timeout) { directory, port in
            configuration(directory: directory, port: port, upstream: "\(host):\(nodePort)")
        }
    }

    /// Starts nginx with the configuration `render` writes for a directory and a free port,
    /// whose `/nginx-health` location on that port answers 204, and waits (bounded) until it
    /// does. A port taken between choosing it and nginx binding it is retried on new ports, at
    /// most three times.
    static func start(timeout: Duration = .seconds(15), render: (_ directory: String, _ port: Int) throws -> String) async throws -> NginxProcess {
        let binary = try binary()
        var lastFailure = ""
        // The backend listens on a Unix socket in the directory; sun_path holds 107 bytes.
        guard FileManager.default.temporaryDirectory.path.utf8.count < 60 else {
            throw NginxError(description: "the temporary directory path is too long for a Unix socket: \(FileManager.default.temporaryDirectory.path)")
        }
        for _ in 0..<3 {
            // A fresh directory per attempt: a failed attempt's process object removes its own.
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-nginx-\(UUID().uuidString.prefix(8))").path
            // 0755: when the tests run as root, nginx's workers run as `nobody` and must reach
            // the temp folders nginx creates in here.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let port = try freeLoopbackPort()
            let conf = directory + "/nginx.conf"
            try render(directory, port).write(toFile: conf, atomically: true, encoding: .utf8)
            let pid = try ChildProcess.spawn(
                binary, ["-c", conf, "-p", directory + "/", "-e", directory + "/error.log"],
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], output: .file(directory + "/output.log")
            )
            let nginx = NginxProcess(pid: pid, baseURL: URL(string: "http://127.0.0.1:\(port)")!, directory: directory)
            let deadline = ContinuousClock.now + timeout
            var exited = false
            // Readiness poll of the health location (no event to wait on): at most one check per
            // 50 ms of `timeout`, and `timeout`. An exit at start ends it early.
            for _ in 0..<Int(timeout / .milliseconds(50)) where ContinuousClock.now < deadline {
                if let status = nginx.reapIfExited() {
                    exited = true
                    lastFailure = "nginx exited at once (status \(status)):\n\(nginx.logs)"
                    break
                }
                if let (status, _, _) = try? await TestHTTP.request(nginx.baseURL.appendingPathComponent("nginx-health")), status == 204 {
                    return nginx
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            if !exited {
                await nginx.stop(removeDirectory: false)
                lastFailure = "nginx did not answer on \(nginx.baseURL) within \(timeout):\n\(nginx.logs)"
                break
            }
            if !lastFailure.contains("Address already in use") { break }
        }
        throw NginxError(description: lastFailure)
    }

    /// The configuration: every path under `directory`, no access log, loopback only. Each
    /// protected location asks Gatehouse through its own internal auth location, all with
    /// request bodies off and HTTP/1.1 keep-alive to the node.
    static func configuration(directory: String, port: Int, upstream: String) -> String {
        let keys = GatehouseNodeProcess.apiKeys
        // Not `return 200 …` in the protected location: `return` runs in nginx's rewrite phase,
        // before `auth_request` (access phase) would ever run, so the page would be served to
        // anyone. The page comes from a backend server block (the "webmail") instead, which is
        // also how a real deployment passes the checked user on.
        func protected(_ prefix: String, auth: String) -> String {
            """
                location \(prefix) {
                    auth_request \(auth);
                    auth_request_set $gh_user $upstream_http_gatehouse_user;
                    add_header X-Gatehouse-User $gh_user always;
                    proxy_set_header X-Gatehouse-User $gh_user;
                    proxy_pass http://unix:\(directory)/backend.sock;
                }

            """
        }
        func auth(_ location: String, key: String, session: String) -> String {
            """
                location = \(location) {
                    internal;
                    proxy_pass http://gatehouse/v1/auth;
                    proxy_pass_request_body off;
                    proxy_set_header Content-Length "";
                    proxy_set_header Authorization "Bearer \(key)";
                    proxy_set_header Gatehouse-Session \(session);
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                }

            """
        }
        return """
            daemon off;
            master_process on;
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log notice;
            events { worker_connections 256; }
            http {
                access_log off;
                default_type text/plain;
                client_body_temp_path \(directory)/client_body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                upstream gatehouse {
                    server \(upstream);
                    keepalive 8;
                }
                # The protected application: it trusts X-Gatehouse-User because only the front
                # server below can reach it.
                server {
                    listen unix:\(directory)/backend.sock;
                    location / { return 200 "protected page for $http_x_gatehouse_user\\n"; }
                }
                server {
                    listen 127.0.0.1:\(port);
                    location = /nginx-health { return 204; }

            \(protected("/protected/", auth: "/_gatehouse_auth"))\
            \(auth("/_gatehouse_auth", key: keys["verify"]!, session: "$cookie_gatehouse_session"))\
            \(protected("/cookie-only/", auth: "/_gatehouse_auth_cookie"))\
            \(auth("/_gatehouse_auth_cookie", key: keys["verify"]!, session: "\"\""))\
            \(protected("/frontend-key/", auth: "/_gatehouse_auth_frontend_key"))\
            \(auth("/_gatehouse_auth_frontend_key", key: keys["frontend"]!, session: "$cookie_gatehouse_session"))\
            \(protected("/unknown-key/", auth: "/_gatehouse_auth_unknown_key"))\
            \(auth("/_gatehouse_auth_unknown_key", key: "not-a-configured-key-0123456789", session: "$cookie_gatehouse_session"))\
                }
            }

            """
    }

    /// A loopback port the kernel chose a moment ago.
    static func freeLoopbackPort() throws -> Int {
        do { return try Loopback.freePort() } catch { throw NginxError(description: error.description) }
    }

    private init(pid: pid_t, baseURL: URL, directory: String) {
        self.pid = pid
        self.baseURL = baseURL
        self.directory = directory
    }

    /// The backstop for a test that never called ``stop(removeDirectory:)``: the same sequence,
    /// blocking this thread.
    deinit {
        if claimStop() {
            var exited = false
            for (signal, grace) in Self.stopSignals where !exited {
                kill(pid, signal)
                exited = ChildProcess.waitForExitBlocking(pid, timeout: grace) != nil
            }
            if !exited { ChildProcess.killBlocking(pid) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// nginx's error log and its stdout/stderr, for failure messages.
    var logs: String {
        let error = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
        let output = (try? String(contentsOfFile: directory + "/output.log", encoding: .utf8)) ?? ""
        return String((error + output).suffix(4000))
    }

    /// A GET through nginx with an optional `Cookie` header.
    func get(_ path: String, cookie: String? = nil, headers extra: [String: String] = [:]) async throws -> (status: Int, headers: [String: String], body: String) {
        let url = URL(string: baseURL.absoluteString + path)!
        var fields = extra
        if let cookie { fields["Cookie"] = cookie }
        let (status, headers, data) = try await TestHTTP.request(url, headers: fields)
        return (status, headers, String(decoding: data, as: UTF8.self))
    }

    /// No error-level lines: a 502 or a broken keep-alive connection to Gatehouse would show here.
    func expectErrorLogClean(sourceLocation: SourceLocation = #_sourceLocation) {
        let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
        let bad = log.split(separator: "\n").filter { line in ["[error]", "[crit]", "[alert]", "[emerg]"].contains { line.contains($0) } }
        #expect(bad.isEmpty, "nginx logged errors:\n\(bad.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Whether this call is the one that stops and reaps the process.
    private func claimStop() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if stopped { return false }
        stopped = true
        return true
    }

    /// While nginx has not been stopped: if it has exited, reaps it and returns its wait status
    /// (and it counts as stopped); nil while it runs.
    private func reapIfExited() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped, let status = ChildProcess.reapIfExited(pid) else { return nil }
        stopped = true
        return status
    }

    /// SIGQUIT (graceful: finish requests, then exit), then SIGTERM if it still runs 5 s later,
    /// then SIGKILL 2 s after that.
    private static let stopSignals: [(Int32, Duration)] = [(SIGQUIT, .seconds(5)), (SIGTERM, .seconds(2))]

    /// Stops nginx (SIGQUIT, SIGTERM after 5 s, SIGKILL after 2 more), waiting for each step on a
    /// thread of its own (``ChildProcess``); then removes the directory.
    func stop(removeDirectory: Bool = true) async {
        if claimStop() {
            var exited = false
            for (signal, grace) in Self.stopSignals where !exited {
                kill(pid, signal)
                exited = await ChildProcess.waitForExit(pid, timeout: grace) != nil
            }
            if !exited { _ = await ChildProcess.kill(pid) }
        }
        if removeDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
