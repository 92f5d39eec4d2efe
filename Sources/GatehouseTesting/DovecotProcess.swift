import Foundation
import GatehouseCrypto
import GatehouseSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A real Dovecot for tests (Debian's dovecot-core, -imapd, -pop3d, -submissiond and -auth-lua),
/// configured from the files Gatehouse ships in `docker/dovecot/`: `dovecot.conf` rendered with
/// loopback ports and paths under the server's own temporary directory, and the Gatehouse Lua
/// passdb copied beside it. IMAP, POP3 and submission ask the Gatehouse at
/// ``Options/gatehouseURL`` about every password; primary passwords live in a passwd-file written
/// from ``Options/primaryPasswords``; the master user `gatehouse` (``masterSecret``) may log in
/// as any user only from ``Options/proxyAddress``.
///
/// `dovecot -F` runs as a child of the test process (as root: Dovecot switches to its own
/// `dovecot` and `dovenull` users, and runs mail sessions as Debian's `mail` user). Its base,
/// state, mail and log paths all live in the temporary directory, so it needs nothing of the
/// system's Dovecot configuration. ``start(_:)`` waits (bounded) until the three ports accept,
/// choosing new ports if another process took one first; ``stop()`` ends it with SIGTERM and
/// waits for the exit on a thread of its own.
///
/// Prefer ``with(_:_:)``, which always stops it and removes the directory. A missing Dovecot
/// package is an error naming the package, never a skip.
public final class DovecotProcess: Sendable {
    /// How to configure the server.
    public struct Options: Sendable {
        /// The Gatehouse node Dovecot asks, e.g. `http://127.0.0.1:8080`.
        public var gatehouseURL: String
        /// The secret of an API key with the `mail` scope.
        public var mailKey: String
        /// Users and their primary passwords (Dovecot's own passwd-file). User names are
        /// lower-cased, as Dovecot looks them up.
        public var primaryPasswords: [String: String]
        /// The address a proxy in front connects from: trusted (plaintext logins without TLS)
        /// and the only address the master user may log in from.
        public var proxyAddress: String
        /// The limit of one Gatehouse check, connection included.
        public var gatehouseTimeout: Duration
        /// Where submission relays mail; nil: a loopback port nothing listens on (logins work,
        /// mail is not sent).
        public var submissionRelayPort: Int?
        /// The directory holding `dovecot.conf` and `gatehouse-passdb.lua`.
        public var configurationDirectory: String

        public init(
            gatehouseURL: String, mailKey: String, primaryPasswords: [String: String] = [:], proxyAddress: String = "127.0.0.2",
            gatehouseTimeout: Duration = .seconds(3), submissionRelayPort: Int? = nil,
            configurationDirectory: String = DovecotProcess.shippedConfiguration
        ) {
            self.gatehouseURL = gatehouseURL
            self.mailKey = mailKey
            self.primaryPasswords = primaryPasswords
            self.proxyAddress = proxyAddress
            self.gatehouseTimeout = gatehouseTimeout
            self.submissionRelayPort = submissionRelayPort
            self.configurationDirectory = configurationDirectory
        }
    }

    /// `docker/dovecot/` of this checkout.
    public static let shippedConfiguration: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docker/dovecot").path

    /// The address Dovecot listens on.
    public let address = "127.0.0.1"
    public let imapPort: Int
    public let pop3Port: Int
    public let submissionPort: Int
    /// The server's temporary directory (configuration, passwd-files, mail, logs).
    public let directory: String
    /// Dovecot's `log_path`.
    public let logPath: String
    /// The server's self-signed certificate (also the CA file that verifies it).
    public let certificatePath: String
    /// The master user's name: a proxy logs in as `user*gatehouse`.
    public let masterUser = "gatehouse"
    /// The master user's password.
    public let masterSecret: String
    /// The options it was started with.
    public let options: Options
    private let child: Mutex<pid_t?>

    private init(ports: [Int], directory: String, masterSecret: String, options: Options, pid: pid_t) {
        self.imapPort = ports[0]
        self.pop3Port = ports[1]
        self.submissionPort = ports[2]
        self.directory = directory
        self.logPath = directory + "/dovecot.log"
        self.certificatePath = directory + "/tls/certificate.pem"
        self.masterSecret = masterSecret
        self.options = options
        self.child = Mutex(pid)
    }

    deinit {
        self.child.withLock { child in
            if let pid = child {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
                child = nil
            }
        }
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// Dovecot's log (`log_path`) and what it printed itself (start-up errors).
    public var log: String {
        let log = (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
        let output = (try? String(contentsOfFile: self.directory + "/output.log", encoding: .utf8)) ?? ""
        return log + output
    }

    /// The port of `service`.
    public func port(_ service: MailClient.Service) -> Int {
        switch service {
        case .imap: self.imapPort
        case .pop3: self.pop3Port
        case .smtp: self.submissionPort
        }
    }

    /// A login to this server from `source`. A client on the proxy's address or on the server's
    /// own address may log in without TLS; any other uses STARTTLS/STLS (verifying the server's
    /// certificate), as Dovecot requires.
    public func login(
        _ service: MailClient.Service, user: String, password: String, from source: String = "127.0.0.1", mechanism: String? = nil
    ) -> MailClient.Login {
        let tls = source != self.address && source != self.options.proxyAddress
        return MailClient.Login(
            service, host: self.address, port: self.port(service), user: user, password: password, source: source, tls: tls,
            caFile: self.certificatePath, mechanism: mechanism
        )
    }

    /// Starts Dovecot in a new temporary directory and waits until IMAP, POP3 and submission
    /// accept connections (at most `timeout` per attempt; a port taken by another process
    /// between choosing and binding it is retried on new ports, at most three times).
    public static func start(_ options: Options, timeout: Duration = .seconds(20)) async throws -> DovecotProcess {
        let binary = try Self.requireInstalled()
        guard geteuid() == 0 else {
            throw RedisServerError(.startFailed, "DovecotProcess runs Dovecot as root (it switches to the dovecot, dovenull and mail users); run the tests as root")
        }
        guard let dovecotGroup = getgrnam("dovecot")?.pointee.gr_gid else {
            throw RedisServerError(.notInstalled, "the dovecot group is missing: it comes with the Debian package 'dovecot-core' (apt-get install -y dovecot-core)")
        }
        guard let mailUser = getpwnam("mail")?.pointee else {
            throw RedisServerError(.startFailed, "Debian's mail user (uid 8) is missing; mail sessions run as it")
        }
        var lastFailure = ""
        for _ in 0..<3 {
            let directory = try Self.makeDirectory()
            do {
                let masterSecret = try Self.randomHex(24)
                let ports = try (0..<3).map { _ in try Self.freePort() }
                try await Self.prepare(
                    directory: directory, options: options, ports: ports, masterSecret: masterSecret,
                    dovecotGroup: dovecotGroup, mailUID: mailUser.pw_uid, mailGID: mailUser.pw_gid
                )
                let pid = try Self.spawn(binary, ["-F", "-c", directory + "/dovecot.conf"], output: directory + "/output.log")
                let dovecot = DovecotProcess(ports: ports, directory: directory, masterSecret: masterSecret, options: options, pid: pid)
                switch await dovecot.waitUntilListening(timeout: timeout) {
                case .listening:
                    return dovecot
                case .exited(let status):
                    lastFailure = "Dovecot exited at start (status \(status)):\n\(dovecot.log.suffix(3000))"
                    if !lastFailure.contains("Address already in use") {
                        throw RedisServerError(.startFailed, lastFailure)
                    }
                case .timedOut:
                    let log = dovecot.log
                    await dovecot.cleanup()
                    throw RedisServerError(.startFailed, "Dovecot did not accept connections on \(ports) within \(timeout):\n\(log.suffix(3000))")
                }
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
        throw RedisServerError(.startFailed, lastFailure)
    }

    /// Starts Dovecot, runs `body` with it, and stops it and removes its directory whatever
    /// `body` does.
    public static func with<T>(_ options: Options, _ body: (DovecotProcess) async throws -> T) async throws -> T {
        try await scoped(try await start(options), cleanup: { await $0.cleanup() }, body)
    }

    /// SIGTERM (Dovecot stops its services and exits), SIGKILL if it has not exited within 10 s;
    /// the exit is waited for on a thread of its own. The ports then refuse connections.
    public func stop() async {
        guard let pid = self.child.withLock({ child -> pid_t? in
            defer { child = nil }
            return child
        }) else { return }
        _ = await ChildProcess.terminate(pid, grace: .seconds(10))
    }

    /// Stops the server and removes its directory.
    public func cleanup() async {
        await self.stop()
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    // MARK: Start-up

    /// Checks every Dovecot file the tests use; returns the master binary.
    private static func requireInstalled() throws -> String {
        do {
            let binary = try ExternalProgram.dovecot.locate()
            for program in [ExternalProgram.dovecotIMAP, .dovecotPOP3, .dovecotSubmission, .dovecotLua] {
                _ = try program.locate()
            }
            return binary
        } catch {
            throw RedisServerError(.notInstalled, error.description)
        }
    }

    private enum Start {
        case listening
        case exited(Int32)
        case timedOut
    }

    /// Polls the three ports (a connection attempt every 25 ms) until all accept, the process
    /// exits, or `timeout` passes.
    private func waitUntilListening(timeout: Duration) async -> Start {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let exited: Int32? = self.child.withLock { child in
                guard let pid = child else { return -1 }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    child = nil
                    return status
                }
                return nil
            }
            if let exited { return .exited(exited) }
            let accepting = [self.imapPort, self.pop3Port, self.submissionPort].allSatisfy { port in
                guard let fd = Loopback.connect(port: port, receiveTimeout: .milliseconds(200)) else { return false }
                close(fd)
                return true
            }
            if accepting { return .listening }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return .timedOut
    }

    /// Writes the rendered configuration, the Lua passdb, the key and passwd-files, a TLS
    /// certificate and the mail directory.
    private static func prepare(
        directory: String, options: Options, ports: [Int], masterSecret: String, dovecotGroup: gid_t, mailUID: uid_t, mailGID: gid_t
    ) async throws {
        let files = FileManager.default
        for sub in ["state", "tls"] {
            try files.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        }
        try files.createDirectory(atPath: directory + "/mail", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        guard chown(directory + "/mail", mailUID, mailGID) == 0 else {
            throw RedisServerError(.startFailed, "chown of the mail directory to the mail user failed: errno \(errno)")
        }

        let lua = directory + "/gatehouse-passdb.lua"
        try files.copyItem(atPath: options.configurationDirectory + "/gatehouse-passdb.lua", toPath: lua)
        try files.setAttributes([.posixPermissions: 0o644], ofItemAtPath: lua)

        // Read by the auth processes, which run as the dovecot user.
        func secret(_ name: String, _ text: String) throws {
            let path = directory + "/" + name
            guard files.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o640]),
                  chown(path, 0, dovecotGroup) == 0
            else {
                throw RedisServerError(.startFailed, "cannot write \(path) for the dovecot group: errno \(errno)")
            }
        }
        try secret("mail-key", options.mailKey + "\n")
        try secret("users", try options.primaryPasswords.sorted { $0.key < $1.key }.map { user, password in
            "\(user.lowercased()):\(try Self.ssha256(password))\n"
        }.joined())
        try secret("master-users", "gatehouse:\(try Self.ssha256(masterSecret))::::::allow_real_nets=\(options.proxyAddress)/32\n")

        try await Self.makeCertificate(directory: directory + "/tls")

        let relayPort = try options.submissionRelayPort ?? Self.freePort()
        let (seconds, attoseconds) = options.gatehouseTimeout.components
        let values: [String: String] = [
            "LISTEN_ADDRESSES": "127.0.0.1",
            "DOVECOT_BASE_DIR": directory + "/run",
            "DOVECOT_STATE_DIR": directory + "/state",
            "DOVECOT_LOG_PATH": directory + "/dovecot.log",
            "GATEHOUSE_URL": options.gatehouseURL,
            "GATEHOUSE_MAIL_KEY_FILE": directory + "/mail-key",
            "GATEHOUSE_TIMEOUT_MSECS": String(max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)),
            "GATEHOUSE_PASSDB_LUA": lua,
            "TLS_CERT_FILE": directory + "/tls/certificate.pem",
            "TLS_KEY_FILE": directory + "/tls/key.pem",
            "PROXY_NETWORKS": options.proxyAddress + "/32",
            "MASTER_PASSWD_FILE": directory + "/master-users",
            "PRIMARY_PASSWD_FILE": directory + "/users",
            "MAIL_UID": String(mailUID),
            "MAIL_GID": String(mailGID),
            "MAIL_HOME": directory + "/mail",
            "IMAP_PORT": String(ports[0]),
            "POP3_PORT": String(ports[1]),
            "SUBMISSION_PORT": String(ports[2]),
            "MAIL_HOSTNAME": "mail.gatehouse.test",
            "SUBMISSION_RELAY_HOST": "127.0.0.1",
            "SUBMISSION_RELAY_PORT": String(relayPort),
        ]
        let template = try String(contentsOfFile: options.configurationDirectory + "/dovecot.conf", encoding: .utf8)
        let rendered = try Self.render(template, values)
        try rendered.write(toFile: directory + "/dovecot.conf", atomically: true, encoding: .utf8)
    }

    /// Replaces every `${NAME}` of `template`; a name without a value is an error (the shipped
    /// file and ``DovecotProcess`` must agree).
    static func render(_ template: String, _ values: [String: String]) throws -> String {
        var result = ""
        var rest = Substring(template)
        var unknown: [String] = []
        while let open = rest.range(of: "${") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw RedisServerError(.startFailed, "dovecot.conf: an unclosed ${")
            }
            let name = String(rest[open.upperBound..<close])
            if let value = values[name] { result += value } else { unknown.append(name) }
            rest = rest[rest.index(after: close)...]
        }
        result += rest
        guard unknown.isEmpty else {
            throw RedisServerError(.startFailed, "dovecot.conf names values DovecotProcess does not fill in: \(unknown.joined(separator: ", "))")
        }
        return result
    }

    /// `{SSHA256}`: base64(SHA-256(password ‖ salt) ‖ salt), a scheme Dovecot verifies.
    static func ssha256(_ password: String) throws -> String {
        let salt = try SystemRandom().bytes(8)
        let digest = Digest.hash(.sha256, Array(password.utf8) + salt)
        return "{SSHA256}" + Data(digest + salt).base64EncodedString()
    }

    private static func randomHex(_ count: Int) throws -> String {
        try SystemRandom().bytes(count).map { String(format: "%02x", $0) }.joined()
    }

    private static func freePort() throws -> Int {
        do { return try Loopback.freePort() } catch { throw RedisServerError(.startFailed, error.description) }
    }

    private static func makeDirectory() throws -> String {
        // Under /tmp, not $TMPDIR: Dovecot's Unix sockets live in here and sun_path is short.
        var template = Array("/tmp/gatehouse-dovecot-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw RedisServerError(.startFailed, "cannot create a temporary directory for Dovecot: errno \(errno)")
        }
        let directory = String(cString: created)
        // Dovecot's unprivileged processes (dovecot, dovenull, mail) reach their files in here.
        chmod(directory, 0o755)
        return directory
    }

    private static func spawn(_ executable: String, _ arguments: [String], output: String) throws -> pid_t {
        do {
            return try ChildProcess.spawn(executable, arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], output: .file(output))
        } catch {
            throw RedisServerError(.startFailed, error.description)
        }
    }

    /// A self-signed P-256 certificate for 127.0.0.1 and localhost, made by python3 with the
    /// `cryptography` package (both already test peers).
    private static func makeCertificate(directory: String) async throws {
        let python: String
        do {
            python = try ExternalProgram.pythonCryptography.locate()
        } catch {
            throw RedisServerError(.notInstalled, error.description)
        }
        let log = directory + "/make-certificate.log"
        let pid = try Self.spawn(python, ["-c", Self.certificateScript, directory], output: log)
        let status = await ChildProcess.wait(pid, limit: .seconds(30))
        guard status == 0, FileManager.default.fileExists(atPath: directory + "/key.pem") else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw RedisServerError(.startFailed, "making Dovecot's test certificate failed (status \(status)): \(output.suffix(2000))")
        }
    }

    private static let certificateScript = #"""
        import datetime, ipaddress, os, sys
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        directory = sys.argv[1]
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
        with open(os.path.join(directory, "certificate.pem"), "wb") as f:
            f.write(certificate.public_bytes(serialization.Encoding.PEM))
        descriptor = os.open(os.path.join(directory, "key.pem"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        """#
}
