import Foundation
import GatehouseSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A message the test SMTP server accepted.
public struct ReceivedMail: Sendable, Decodable {
    /// The envelope sender (`MAIL FROM`).
    public let from: String
    /// The envelope recipients (`RCPT TO`).
    public let to: [String]
    /// The message exactly as received after `DATA` (dot-unstuffed), decoded as UTF-8.
    public let raw: String
    /// The `Subject` header, with RFC 2047 encoded-words decoded.
    public let subject: String
    /// The text/plain body with its transfer encoding (quoted-printable, base64) undone and
    /// `\n` line ends.
    public let body: String
    /// Whether the message came over a STARTTLS-upgraded connection.
    public let tls: Bool
    /// The user the client authenticated as, if it did.
    public let user: String?
}

/// A real SMTP server for tests: aiosmtpd (Python, from PyPI) run by a small script this helper
/// writes into the server's own temporary directory, listening on a free loopback port it picks
/// itself (port 0, so no probing race). Every accepted message is stored there as a JSON file;
/// ``messages()`` and ``waitForMessages(count:timeout:)`` read them back.
///
/// It can require AUTH (PLAIN and/or LOGIN), offer STARTTLS with a self-signed certificate made at
/// start (for `localhost` and `127.0.0.1`), refuse EHLO so clients fall back to HELO, answer the
/// first N messages with an error (451 by default, to test retries), and be stopped, killed or
/// paused (to test failures). If `python3`, aiosmtpd or `cryptography` is missing, ``start(_:)``
/// throws with the install command: tests that need it fail, they never skip.
///
/// Prefer ``withServer(_:_:)``, which always cleans up; as a backstop `deinit` and an `atexit`
/// hook SIGKILL any server still running.
public final class SMTPServerProcess: Sendable {
    /// How to configure the server.
    public struct Options: Sendable {
        /// Require AUTH with this user and password before MAIL FROM.
        public var credentials: (user: String, password: String)?
        /// The AUTH mechanisms offered (of `PLAIN`, `LOGIN`).
        public var authMechanisms: [String]
        /// Offer STARTTLS with a fresh self-signed certificate.
        public var startTLS: Bool
        /// With ``startTLS``: offer AUTH only after STARTTLS (as real servers do). Without it the
        /// server offers AUTH in clear text.
        public var authRequiresTLS: Bool
        /// Refuse EHLO with 502, so the client has to fall back to HELO.
        public var refuseEHLO: Bool
        /// Answer this many messages (counted at the end of DATA) with ``rejectReply``.
        public var rejectFirst: Int
        /// The reply for rejected messages.
        public var rejectReply: String

        /// Creates options; by default an open relay without TLS that accepts everything.
        public init(
            credentials: (user: String, password: String)? = nil,
            authMechanisms: [String] = ["PLAIN", "LOGIN"],
            startTLS: Bool = false,
            authRequiresTLS: Bool? = nil,
            refuseEHLO: Bool = false,
            rejectFirst: Int = 0,
            rejectReply: String = "451 4.3.0 Temporary failure, try again (test)"
        ) {
            self.credentials = credentials
            self.authMechanisms = authMechanisms
            self.startTLS = startTLS
            self.authRequiresTLS = authRequiresTLS ?? startTLS
            self.refuseEHLO = refuseEHLO
            self.rejectFirst = rejectFirst
            self.rejectReply = rejectReply
        }
    }

    /// The loopback port the server listens on.
    public let port: Int
    /// The server's own temporary directory (messages, certificate, log).
    public let directory: String
    /// The options it was started with.
    public let options: Options
    /// The child, until it has been reaped.
    private let child: OwnedChild

    private init(port: Int, directory: String, options: Options, child: OwnedChild) {
        self.port = port
        self.directory = directory
        self.options = options
        self.child = child
    }

    deinit {
        self.child.killBlocking()
        LiveSMTPServers.remove(self.directory)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// `smtp://127.0.0.1:<port>`, with the configured credentials (percent-encoded) if any, and
    /// `query` (e.g. `"tls_verify=false"`) appended.
    public func url(withCredentials: Bool = true, query: String? = nil) -> String {
        var text = "smtp://"
        if withCredentials, let credentials = self.options.credentials {
            let allowed = CharacterSet.alphanumerics
            let user = credentials.user.addingPercentEncoding(withAllowedCharacters: allowed) ?? credentials.user
            let password = credentials.password.addingPercentEncoding(withAllowedCharacters: allowed) ?? credentials.password
            text += "\(user):\(password)@"
        }
        text += "127.0.0.1:\(self.port)"
        if let query, !query.isEmpty { text += "?" + query }
        return text
    }

    /// `smtp://127.0.0.1:<port>` with the configured credentials.
    public var url: String { self.url() }

    /// The server's process id while it runs.
    public var pid: Int32? {
        self.child.pid
    }

    /// The messages accepted so far, in the order received.
    public func messages() -> [ReceivedMail] {
        self.records(prefix: "message-")
    }

    /// How many messages were answered with ``Options/rejectReply``.
    public var rejectedCount: Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        return names.filter { $0.hasPrefix("rejected-") && $0.hasSuffix(".json") }.count
    }

    /// Waits until at least `count` messages have been accepted (checking every 20 ms) and
    /// returns them all; throws if that takes longer than `timeout`.
    public func waitForMessages(count: Int, timeout: Duration = .seconds(10)) async throws -> [ReceivedMail] {
        // A poll of the message files (the server signals nothing): bounded by `timeout` and by
        // one check per 20 ms of it.
        let deadline = ContinuousClock.now + timeout
        for _ in 0..<Int(timeout / .milliseconds(20)) where ContinuousClock.now < deadline {
            let messages = self.messages()
            if messages.count >= count { return messages }
            try await Task.sleep(for: .milliseconds(20))
        }
        let messages = self.messages()
        if messages.count >= count { return messages }
        throw RedisServerError(
            .startFailed,
            "the SMTP server received \(messages.count) of \(count) messages within \(timeout): \(self.logTail())"
        )
    }

    /// The server's captured output (aiosmtpd's warnings, Python errors).
    public var log: String {
        (try? String(contentsOfFile: self.directory + "/server.log", encoding: .utf8)) ?? ""
    }

    /// Starts a server in a new temporary directory and waits until it listens (at most 15 s).
    ///
    /// - Throws: ``RedisServerError/Code/notInstalled`` (the one error type of GatehouseTesting)
    ///   with the install command if `python3`, aiosmtpd or `cryptography` is missing;
    ///   ``RedisServerError/Code/startFailed`` with the server's output otherwise.
    public static func start(_ options: Options = .init()) async throws -> SMTPServerProcess {
        let python = try findPython()
        var template = Array("/tmp/gatehouse-smtp-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw RedisServerError(.startFailed, "cannot create a temporary directory for the SMTP server: errno \(errno)")
        }
        let directory = String(cString: created)
        do {
            let script = directory + "/smtp_sink.py"
            try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
            var settings: [String: Any] = [
                "directory": directory,
                "startTLS": options.startTLS,
                "authRequiresTLS": options.authRequiresTLS,
                "refuseEHLO": options.refuseEHLO,
                "rejectFirst": options.rejectFirst,
                "rejectReply": options.rejectReply,
                "authMechanisms": options.authMechanisms,
            ]
            if let credentials = options.credentials {
                settings["user"] = credentials.user
                settings["password"] = credentials.password
            }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
            var environment = ProcessInfo.processInfo.environment
            environment["PYTHONUNBUFFERED"] = "1"
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            let pid: pid_t
            do throws(ChildProcess.SpawnFailure) {
                pid = try ChildProcess.spawn(python, [script, json], environment: environment, output: .file(directory + "/server.log"))
            } catch {
                throw RedisServerError(.startFailed, "cannot start the SMTP test server: \(error)")
            }
            let child = OwnedChild(pid)
            LiveSMTPServers.add(directory, pid: pid)

            // Readiness poll for the file the script writes once it listens (no event to wait
            // on): at most 750 checks 20 ms apart and 15 s. An exit at start ends it early.
            let deadline = ContinuousClock.now + .seconds(15)
            for _ in 0..<750 where ContinuousClock.now < deadline {
                if let data = FileManager.default.contents(atPath: directory + "/ready.json"),
                   let ready = try? JSONDecoder().decode(Ready.self, from: data) {
                    return SMTPServerProcess(port: ready.port, directory: directory, options: options, child: child)
                }
                if child.pid == nil {
                    LiveSMTPServers.remove(directory)
                    let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
                    if let line = log.split(separator: "\n").first(where: { $0.contains("smtp_sink: MISSING") }) {
                        throw RedisServerError(.notInstalled, String(line))
                    }
                    let status = child.exitStatus.map { "\($0)" } ?? "unknown"
                    throw RedisServerError(.startFailed, "the SMTP test server exited at start (status \(status)): \(log.suffix(2000))")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            await child.kill(timeout: .seconds(10))
            LiveSMTPServers.remove(directory)
            throw RedisServerError(.startFailed, "the SMTP test server did not listen within 15 s")
        } catch {
            LiveSMTPServers.remove(directory)
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Starts a server, runs `body` with it, and kills the server and removes its directory
    /// whatever `body` does.
    public static func withServer<T: Sendable>(
        _ options: Options = .init(),
        _ body: (SMTPServerProcess) async throws -> T
    ) async throws -> T {
        try await scoped(try await start(options), cleanup: { await $0.cleanup() }, body)
    }

    /// SIGTERM (after SIGCONT, in case it is paused), SIGKILL if it has not exited within 5 s,
    /// then waits up to 5 s more. The port then refuses connections. The exit is waited for on a
    /// thread of its own (``ChildProcess``), not by polling.
    public func stop() async {
        await self.child.stop(grace: .seconds(5), killTimeout: .seconds(5))
    }

    /// SIGKILL: the server dies at once, as in a crash. Returns once it has exited (at most
    /// 10 s).
    public func kill() async {
        await self.child.kill(timeout: .seconds(10))
    }

    /// SIGSTOP: the kernel still accepts connections but the server never answers (a hung
    /// server).
    public func pause() throws {
        try self.signal(SIGSTOP)
    }

    /// SIGCONT: undoes ``pause()``.
    public func resume() throws {
        try self.signal(SIGCONT)
    }

    /// Kills the server and removes its directory.
    public func cleanup() async {
        await self.kill()
        LiveSMTPServers.remove(self.directory)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    // MARK: Internals

    private struct Ready: Decodable {
        let port: Int
    }

    private func records(prefix: String) -> [ReceivedMail] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }
            .sorted()
        // The script writes each file under a temporary name and renames it, so a file that is
        // listed is complete.
        return names.compactMap { name in
            FileManager.default.contents(atPath: self.directory + "/" + name)
                .flatMap { try? JSONDecoder().decode(ReceivedMail.self, from: $0) }
        }
    }

    private func signal(_ signal: Int32) throws {
        guard self.child.signal(signal) else {
            throw RedisServerError(.signalFailed, "the SMTP test server on port \(self.port) is not running (signal \(signal) not sent)")
        }
    }

    private func logTail() -> String {
        let lines = self.log.split(separator: "\n").suffix(5)
        return lines.isEmpty ? "(no server output)" : lines.joined(separator: " | ")
    }

    /// The python3 that imports aiosmtpd (and cryptography, for the STARTTLS certificate).
    private static func findPython() throws -> String {
        do {
            _ = try ExternalProgram.pythonCryptography.locate()
            return try ExternalProgram.aiosmtpd.locate()
        } catch {
            throw RedisServerError(.notInstalled, error.description)
        }
    }

    /// The server script. Kept here rather than in a file beside the tests so the helper works
    /// from any working directory and any build layout.
    private static let script = #"""
        # aiosmtpd sink for Gatehouse tests: see SMTPServerProcess.swift.
        import asyncio, datetime, email, email.policy, ipaddress, json, os, ssl, sys

        def missing(package):
            sys.stderr.write(
                "smtp_sink: MISSING the Python package %s is not installed for %s; "
                "install it with: python3 -m pip install %s (scripts/bootstrap.sh --tests does this)\n"
                % (package, sys.executable, package))
            sys.stderr.flush()
            sys.exit(3)

        try:
            from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
        except ImportError:
            missing("aiosmtpd")

        options = json.loads(sys.argv[1])
        directory = options["directory"]

        def write_json(name, value):
            # Write then rename, so a reader never sees half a file.
            temporary = os.path.join(directory, "." + name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(value, f)
            os.rename(temporary, os.path.join(directory, name))

        def tls_context():
            try:
                from cryptography import x509
                from cryptography.x509.oid import NameOID
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import ec
            except ImportError:
                missing("cryptography")
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
            now = datetime.datetime.now(datetime.timezone.utc)
            certificate = (
                x509.CertificateBuilder()
                .subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .sign(key, hashes.SHA256()))
            certificate_path = os.path.join(directory, "certificate.pem")
            key_path = os.path.join(directory, "key.pem")
            with open(certificate_path, "wb") as f:
                f.write(certificate.public_bytes(serialization.Encoding.PEM))
            with open(key_path, "wb") as f:
                f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate_path, key_path)
            return context

        class Sink:
            def __init__(self):
                self.reject_left = int(options.get("rejectFirst", 0))
                self.sequence = 0

            async def handle_DATA(self, server, session, envelope):
                self.sequence += 1
                raw = envelope.original_content or envelope.content or b""
                user = None
                if isinstance(session.auth_data, LoginPassword):
                    user = session.auth_data.login.decode("utf-8", "replace")
                record = {"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                          "raw": raw.decode("utf-8", "replace"), "tls": session.ssl is not None,
                          "user": user, "subject": "", "body": ""}
                if self.reject_left > 0:
                    self.reject_left -= 1
                    write_json("rejected-%05d.json" % self.sequence, record)
                    return options["rejectReply"]
                message = email.message_from_bytes(raw, policy=email.policy.default)
                part = message.get_body(preferencelist=("plain",))
                record["subject"] = str(message.get("Subject", ""))
                # The message came with CRLF line ends; hand the body back with \n, as documented.
                body = part.get_content() if part is not None else ""
                record["body"] = body.replace("\r\n", "\n")
                write_json("message-%05d.json" % self.sequence, record)
                return "250 2.0.0 OK: queued as %d" % self.sequence

        class SinkSMTP(SMTP):
            async def smtp_EHLO(self, hostname):
                if options.get("refuseEHLO"):
                    await self.push("502 5.5.1 EHLO not implemented (test)")
                    return
                await super().smtp_EHLO(hostname)

        def authenticator(server, session, envelope, mechanism, auth_data):
            good = (isinstance(auth_data, LoginPassword)
                    and auth_data.login == options["user"].encode()
                    and auth_data.password == options["password"].encode())
            return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

        settings = {"hostname": "gatehouse-test-smtp", "ident": "gatehouse-test-smtp", "decode_data": False}
        if options.get("startTLS"):
            settings["tls_context"] = tls_context()
        if options.get("user"):
            settings["authenticator"] = authenticator
            settings["auth_required"] = True
            settings["auth_require_tls"] = bool(options.get("authRequiresTLS"))
            settings["auth_exclude_mechanism"] = [
                m for m in ("PLAIN", "LOGIN") if m not in options.get("authMechanisms", [])]

        async def main():
            loop = asyncio.get_running_loop()
            handler = Sink()
            server = await loop.create_server(
                lambda: SinkSMTP(handler, loop=loop, **settings), host="127.0.0.1", port=0)
            write_json("ready.json", {"port": server.sockets[0].getsockname()[1], "pid": os.getpid()})
            await server.serve_forever()

        asyncio.run(main())
        """#
}

/// Servers still running, SIGKILLed at process exit: the backstop for a test process that ends
/// without tearing down (a crash in a test, a time limit), so no server outlives it.
private enum LiveSMTPServers {
    private static let servers = Mutex<[String: Int32]>([:])
    private static let hook: Void = {
        atexit {
            LiveSMTPServers.servers.withLock { servers in
                for pid in servers.values { kill(pid, SIGKILL) }
            }
        }
    }()

    static func add(_ directory: String, pid: Int32) {
        _ = hook
        self.servers.withLock { $0[directory] = pid }
    }

    static func remove(_ directory: String) {
        self.servers.withLock { _ = $0.removeValue(forKey: directory) }
    }
}
