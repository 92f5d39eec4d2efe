import Foundation
import GatehouseSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Real mail clients for tests: Python's `imaplib`, `poplib` and `smtplib`, run by a small script
/// written into a temporary directory, logging in to an IMAP, POP3 or submission
/// server the way a mail program does (optionally after STARTTLS/STLS, from a chosen loopback
/// source address, with AUTH PLAIN or LOGIN). One ``run(_:timeout:)`` starts one `python3` that
/// makes all the given logins at once, each on its own connection, and reports the server's
/// answer to each.
public enum MailClient {
    /// The protocol a login speaks.
    public enum Service: String, Sendable, Codable {
        case imap
        case pop3
        /// Submission (SMTP AUTH).
        case smtp
    }

    /// One login to make.
    public struct Login: Sendable, Encodable {
        public var service: Service
        public var host: String
        public var port: Int
        public var user: String
        public var password: String
        /// The local address to connect from (any 127.0.0.0/8 address works on loopback).
        public var source: String
        /// Upgrade the connection with STARTTLS (IMAP, SMTP) or STLS (POP3) before logging in.
        public var tls: Bool
        /// A PEM file of the certificate authority the server's certificate must chain to (and
        /// name `host`); nil accepts any certificate.
        public var caFile: String?
        /// `PLAIN` or `LOGIN`: the SASL mechanism for IMAP (`LOGIN` is the IMAP LOGIN command) and
        /// SMTP (AUTH PLAIN, AUTH LOGIN); POP3 always uses USER/PASS.
        public var mechanism: String
        /// Seconds for each network operation.
        public var timeout: Double

        public init(
            _ service: Service, host: String = "127.0.0.1", port: Int, user: String, password: String,
            source: String = "127.0.0.1", tls: Bool = false, caFile: String? = nil, mechanism: String? = nil, timeout: Double = 20
        ) {
            self.service = service
            self.host = host
            self.port = port
            self.user = user
            self.password = password
            self.source = source
            self.tls = tls
            self.caFile = caFile
            self.mechanism = mechanism ?? (service == .smtp ? "PLAIN" : "LOGIN")
            self.timeout = timeout
        }
    }

    /// How a login ended.
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        /// Logged in (and, for IMAP, INBOX selected; for POP3, STAT answered; for SMTP, NOOP sent).
        case loggedIn
        /// The server refused the credentials: IMAP `NO [AUTHENTICATIONFAILED]` or
        /// `[AUTHORIZATIONFAILED]`, POP3 `-ERR [AUTH]`, SMTP `535`.
        case refused
        /// The server answered with a temporary failure: IMAP `NO [UNAVAILABLE]`, POP3
        /// `-ERR [SYS/TEMP]`, SMTP `454`.
        case temporaryFailure
        /// Anything else (no connection, a protocol error, TLS refused…).
        case failed

        public var description: String {
            switch self {
            case .loggedIn: "logged in"
            case .refused: "refused"
            case .temporaryFailure: "temporary failure"
            case .failed: "failed"
            }
        }
    }

    /// What happened to one login.
    public struct Result: Sendable, CustomStringConvertible {
        public let login: Login
        public let outcome: Outcome
        /// The server's answer to the login (or the client's error).
        public let reply: String
        /// For a login that got in: what the session answered afterwards (the INBOX's message
        /// count, POP3 STAT, SMTP NOOP).
        public let after: String
        /// Wall-clock seconds from connecting to the answer.
        public let seconds: Double

        public var description: String {
            "\(self.login.service.rawValue) \(self.login.user) from \(self.login.source): \(self.outcome) (\(self.reply)) in \(String(format: "%.2f", self.seconds)) s"
        }
    }

    /// Makes every login in `logins` at once and returns their results in the same order. The
    /// whole run is bounded by `timeout` (the client is killed after it).
    ///
    /// - Throws: ``RedisServerError/Code/notInstalled`` naming the package if `python3` is missing;
    ///   ``RedisServerError/Code/startFailed`` if the client did not report (its output attached).
    public static func run(_ logins: [Login], timeout: Duration = .seconds(60)) async throws -> [Result] {
        guard !logins.isEmpty else { return [] }
        let python: String
        do {
            python = try ExternalProgram.python3.locate()
        } catch {
            throw RedisServerError(.notInstalled, error.description)
        }
        var template = Array("/tmp/gatehouse-mail-client-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw RedisServerError(.startFailed, "cannot create a temporary directory for the mail client: errno \(errno)")
        }
        let directory = String(cString: created)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = directory + "/mail_client.py", input = directory + "/logins.json", output = directory + "/results.json"
        let log = directory + "/client.log"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        try JSONEncoder().encode(logins).write(to: URL(fileURLWithPath: input))
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"]
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(python, [script, input, output], environment: environment, output: .file(log))
        } catch {
            throw RedisServerError(.startFailed, error.description)
        }
        let status = await ChildProcess.wait(pid, limit: timeout)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard let data = FileManager.default.contents(atPath: output),
              let reports = try? JSONDecoder().decode([Report].self, from: data), reports.count == logins.count
        else {
            throw RedisServerError(.startFailed, "the mail client reported nothing (wait status \(status), limit \(timeout)): \(text.suffix(2000))")
        }
        return zip(logins, reports).map { login, report in
            Result(login: login, outcome: Self.outcome(login.service, report), reply: report.reply, after: report.after, seconds: report.seconds)
        }
    }

    /// One login through ``run(_:timeout:)``.
    public static func login(_ login: Login, timeout: Duration = .seconds(60)) async throws -> Result {
        try await self.run([login], timeout: timeout)[0]
    }

    private struct Report: Decodable {
        let ok: Bool
        let reply: String
        let after: String
        let seconds: Double
    }

    private static func outcome(_ service: Service, _ report: Report) -> Outcome {
        if report.ok { return .loggedIn }
        let reply = report.reply
        switch service {
        case .imap:
            if reply.contains("[UNAVAILABLE]") { return .temporaryFailure }
            if reply.contains("[AUTHENTICATIONFAILED]") || reply.contains("[AUTHORIZATIONFAILED]") { return .refused }
        case .pop3:
            if reply.contains("[SYS/TEMP]") { return .temporaryFailure }
            if reply.contains("-ERR [AUTH]") { return .refused }
        case .smtp:
            if reply.hasPrefix("454 ") { return .temporaryFailure }
            if reply.hasPrefix("535 ") { return .refused }
        }
        return .failed
    }

    /// The client script. Kept here rather than in a file beside the tests so it works
    /// from any working directory and any build layout.
    private static let script = #"""
        # Mail clients for Gatehouse tests: see MailClient.swift.
        import concurrent.futures, imaplib, json, poplib, smtplib, socket, ssl, sys, time

        logins = json.load(open(sys.argv[1], encoding="utf-8"))

        def text(value):
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
            if isinstance(value, (list, tuple)):
                return " ".join(text(v) for v in value)
            return str(value)

        def context(login):
            if login.get("caFile"):
                return ssl.create_default_context(cafile=login["caFile"])
            return ssl._create_unverified_context()

        def connect(login):
            return socket.create_connection((login["host"], login["port"]), login["timeout"],
                                            source_address=(login["source"], 0))

        class IMAP(imaplib.IMAP4):
            def __init__(self, login):
                self.login_spec = login
                super().__init__(login["host"], login["port"], timeout=login["timeout"])

            def _create_socket(self, timeout):
                return connect(self.login_spec)

        class POP3(poplib.POP3):
            def __init__(self, login):
                self.login_spec = login
                super().__init__(login["host"], login["port"], timeout=login["timeout"])

            def _create_socket(self, timeout):
                return connect(self.login_spec)

        def imap(login):
            client = IMAP(login)
            try:
                if login["tls"]:
                    client.starttls(ssl_context=context(login))
                try:
                    if login["mechanism"] == "PLAIN":
                        response = client.authenticate(
                            "PLAIN", lambda _: ("\0%s\0%s" % (login["user"], login["password"])).encode())
                    else:
                        response = client.login(login["user"], login["password"])
                except imaplib.IMAP4.error as error:
                    return False, text(error.args[0] if error.args else error), ""
                status, data = client.select("INBOX")
                return True, text(response), "%s %s" % (status, text(data))
            finally:
                try:
                    client.logout()
                except Exception:
                    pass

        def pop3(login):
            client = POP3(login)
            try:
                if login["tls"]:
                    client.stls(context=context(login))
                try:
                    client.user(login["user"])
                    response = client.pass_(login["password"])
                except poplib.error_proto as error:
                    return False, text(error.args[0] if error.args else error), ""
                return True, text(response), "%d %d" % client.stat()
            finally:
                try:
                    client.quit()
                except Exception:
                    pass

        def smtp(login):
            client = smtplib.SMTP(login["host"], login["port"], timeout=login["timeout"],
                                  source_address=(login["source"], 0))
            try:
                client.ehlo("gatehouse-test")
                if login["tls"]:
                    client.starttls(context=context(login))
                    client.ehlo("gatehouse-test")
                client.user, client.password = login["user"], login["password"]
                try:
                    if login["mechanism"] == "LOGIN":
                        code, message = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
                    else:
                        code, message = client.auth("PLAIN", client.auth_plain)
                except smtplib.SMTPAuthenticationError as error:
                    return False, "%d %s" % (error.smtp_code, text(error.smtp_error)), ""
                except smtplib.SMTPNotSupportedError as error:
                    return False, "AUTH not offered: %s" % text(error), ""
                noop = client.noop()
                return True, "%d %s" % (code, text(message)), "%d %s" % (noop[0], text(noop[1]))
            finally:
                try:
                    client.quit()
                except Exception:
                    pass

        def attempt(login):
            started = time.monotonic()
            try:
                ok, reply, after = {"imap": imap, "pop3": pop3, "smtp": smtp}[login["service"]](login)
            except Exception as error:
                ok, reply, after = False, "client error: %s: %s" % (type(error).__name__, error), ""
            return {"ok": ok, "reply": reply, "after": after, "seconds": time.monotonic() - started}

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(logins)) as pool:
            results = list(pool.map(attempt, logins))
        with open(sys.argv[2] + ".tmp", "w", encoding="utf-8") as f:
            json.dump(results, f)
        import os
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
        """#
}
