public import Foundation
public import GatehouseCore

/// Everything a node is configured with, loaded in one place (`load(environment:)`): defaults, then
/// the JSON file named by `GATEHOUSE_CONFIG` (or `--config`), then `GATEHOUSE_*` variables.
/// Secrets may come from files (`*_FILE` variables, or the keyring/data-key files).
public struct GatehouseConfiguration: Sendable {
    /// Where the HTTP server listens.
    public struct Listen: Sendable, Equatable {
        public var host: String
        public var port: Int
        /// Parses `host:port` or `[v6]:port`.
        public init?(_ text: String) {
            if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
                let host = String(text[text.index(after: text.startIndex)..<close])
                let rest = text[text.index(after: close)...]
                guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
                self.host = host
                self.port = port
            } else {
                let parts = text.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (0...65535).contains(port) else { return nil }
                self.host = String(parts[0])
                self.port = port
            }
        }
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Second-step throttle and lock (docs/api.md, Defaults and limits).
    public struct Throttle: Sendable {
        public var freeFailures = 5
        public var maximumBackoffSeconds = 900
        public var lockAfterFailures = 100
        public var ipFailureLimit = 100
        public var ipWindowSeconds = 900
        public init() {}
    }

    /// TOTP parameters (docs/api.md, Defaults and limits).
    public struct TOTPSettings: Sendable {
        public var digits = 6
        public var period = 30
        public var window = 1
        /// A node whose clock is further than this from Redis's reports not ready.
        public var maximumClockOffsetSeconds = 30
        public init() {}
    }

    /// Token lifetimes (docs/api.md, Defaults and limits).
    public struct Lifetimes: Sendable {
        public var challengeSeconds: Int64 = 300
        public var sessionAbsoluteSeconds: Int64 = 7 * 24 * 3600
        public var resetSeconds: Int64 = 900
        public var enrollmentPendingSeconds: Int64 = 600
        /// "Fresh sign-in" for factor changes.
        public var reauthenticationSeconds: Int64 = 600
        public init() {}
    }

    /// The mail servers behind a proxy that asks Gatehouse (`GET /v1/mail/auth-http`).
    public struct MailBackend: Sendable, Equatable {
        /// One backend server: nginx wants an IP address, not a name.
        public struct Server: Sendable, Equatable {
            public var address: String
            public var port: Int

            /// Parses `ip:port` or `[ipv6]:port`; nil for anything else (host names included).
            public init?(_ text: String) {
                let host: Substring, portText: Substring
                if text.hasPrefix("[") {
                    guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                    host = text[text.index(after: text.startIndex)..<close]
                    portText = text[text.index(close, offsetBy: 2)...]
                } else {
                    guard let colon = text.lastIndex(of: ":") else { return nil }
                    host = text[..<colon]
                    portText = text[text.index(after: colon)...]
                }
                guard let port = Int(portText), (1...65535).contains(port), ipBudgetKey(String(host)) != nil else { return nil }
                self.address = String(host)
                self.port = port
            }
        }

        /// Backend per protocol; a protocol without one is refused at the proxy.
        public var imap: Server?
        public var pop3: Server?
        public var smtp: Server?
        /// The master user the proxy logs in as for a two-step user (`<user><separator><master>`,
        /// Dovecot's master-user login), so the backend never sees an app password. nil: the
        /// proxy passes the client's own login on.
        public var masterUser: String?
        public var masterPassword: String?
        public var masterSeparator = "*"

        public init() {}

        /// The backend for `service`.
        public func server(for service: MailService) -> Server? {
            switch service {
            case .imap: imap
            case .pop3: pop3
            case .smtp: smtp
            }
        }
    }

    public var listen = Listen(host: "127.0.0.1", port: 8080)
    /// Folder for the embedded Redis, generated keys and the development API key.
    public var stateDirectory = ".gatehouse"
    /// External Redis; nil means start an embedded `redis-server` under the state folder.
    public var redisURL: String?
    public var keyringFile: String?
    public var dataKeyFile: String?
    /// API keys (already parsed).
    public var apiKeys: [APIKeyConfiguration] = []
    public var smtpURL: String?
    public var mailFrom = "gatehouse@localhost"
    /// `iss` of tokens and the issuer shown in authenticator apps.
    public var issuer = "Gatehouse"
    /// Redis key prefix.
    public var redisPrefix = "gh"
    /// Connections to Redis for commands (the revocation feed has its own). Each is pipelined
    /// and served by an I/O thread of its own; one batches best (on 2 cores it costs about 15%
    /// less node CPU per sign-in than two, benchmarks/RESULTS.md); more only help a node with
    /// cores to spare whose one I/O thread is saturated.
    public var redisConnections = 1
    /// Whether each HTTP event loop also keeps a Redis connection of its own for the sign-in and
    /// mail check it answers itself (`GATEHOUSE_REDIS_LOOP_CONNECTIONS`, `true` or `false`):
    /// the script is sent and its reply read on that loop, with no I/O thread between. Only for
    /// one fixed server (`redis://`, `unix://`); Sentinel and Cluster URLs always use the pool.
    public var redisLoopConnections = true
    /// With the revocation feed down, sessions keep verifying this long, then `/v1/auth` is 503.
    public var revocationGraceSeconds = 120
    /// Users whose decrypted TOTP secret a node keeps between login/start and the code check
    /// (`GATEHOUSE_TOTP_CACHE_ENTRIES`; 0 keeps none, and every check reads the user again).
    /// About 150 bytes each: 180,000 entries are at most about 30 MiB.
    public var totpCacheEntries = 180_000
    /// A keep-alive HTTP connection with no request for this long is closed (docs/api.md,
    /// Defaults and limits); 0 keeps idle connections open.
    public var httpIdleTimeoutSeconds = 60
    /// A request head must be complete this long after its first byte, and a new connection must
    /// send its first head within it; 0: no limit.
    public var httpHeadTimeoutSeconds = 10
    /// A declared body must be complete this long after its head; 0: no limit.
    public var httpBodyTimeoutSeconds = 10
    /// The most HTTP connections open at once (0: no limit; never more than the file descriptor
    /// limit leaves room for).
    public var httpMaxConnections = 10_000
    /// After SIGTERM, connections still open this long are closed, so the node exits in bounded
    /// time (docs/api.md, Defaults and limits); 0: wait for them.
    public var shutdownTimeoutSeconds = 8
    /// Where a mail proxy (nginx `auth_http`) sends IMAP, POP3 and SMTP logins that Gatehouse
    /// accepts, and how it logs in there (docs/mail-servers.md).
    public var mailBackend = MailBackend()
    /// The pages for people and the hand-off from the webmail (docs/web-pages.md).
    public var web = WebSettings()
    /// Passkeys: the WebAuthn relying party (docs/passkeys.md).
    public var passkeys = PasskeySettings()
    public var throttle = Throttle()
    public var totp = TOTPSettings()
    public var lifetimes = Lifetimes()
    /// Log level name (trace … critical).
    public var logLevel = "info"

    /// Defaults.
    public init() {}

    /// Loads defaults, then the config file, then the environment.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment, configFile: String? = nil) throws(ServiceError) -> GatehouseConfiguration {
        var config = GatehouseConfiguration()
        if let path = configFile ?? environment["GATEHOUSE_CONFIG"] {
            try config.apply(file: path)
        }
        try config.apply(environment: environment)
        return config
    }

    /// Applies a JSON config file whose keys are the variable names without `GATEHOUSE_`, lower
    /// case (`listen`, `redis_url`, `api_keys`, …). Unknown keys are an error.
    mutating func apply(file path: String) throws(ServiceError) {
        let data: Data
        do { data = try KeyFiles.read(path: path) } catch { throw ServiceError(.invalidRequest, "cannot read config file \(path)", underlying: error) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ServiceError(.invalidRequest, "config file \(path) is not a JSON object")
        }
        var env: [String: String] = [:]
        for (key, value) in object {
            let name = "GATEHOUSE_" + key.uppercased()
            guard Self.knownVariables.contains(name) else { throw ServiceError(.invalidRequest, "unknown config key \(key) in \(path)") }
            switch value {
            case let s as String: env[name] = s
            case let n as NSNumber: env[name] = n.stringValue
            case let a as [String]: env[name] = a.joined(separator: ",")
            default: throw ServiceError(.invalidRequest, "config key \(key) must be a string, number or list of strings")
            }
        }
        try apply(environment: env)
    }

    static let knownVariables = Set([
        "GATEHOUSE_LISTEN", "GATEHOUSE_STATE_DIR", "GATEHOUSE_REDIS_URL", "GATEHOUSE_KEYRING_FILE", "GATEHOUSE_DATA_KEY_FILE",
        "GATEHOUSE_API_KEYS", "GATEHOUSE_API_KEYS_FILE", "GATEHOUSE_SMTP_URL", "GATEHOUSE_MAIL_FROM", "GATEHOUSE_ISSUER",
        "GATEHOUSE_LOG_LEVEL", "GATEHOUSE_REDIS_PREFIX", "GATEHOUSE_REVOCATION_GRACE_SECONDS", "GATEHOUSE_CONFIG",
        "GATEHOUSE_REDIS_CONNECTIONS", "GATEHOUSE_REDIS_LOOP_CONNECTIONS", "GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS", "GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS",
        "GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS", "GATEHOUSE_HTTP_MAX_CONNECTIONS", "GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS",
        "GATEHOUSE_TOTP_CACHE_ENTRIES",
        "GATEHOUSE_MAIL_BACKEND_IMAP", "GATEHOUSE_MAIL_BACKEND_POP3", "GATEHOUSE_MAIL_BACKEND_SMTP",
        "GATEHOUSE_MAIL_BACKEND_MASTER_USER", "GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE", "GATEHOUSE_MAIL_BACKEND_MASTER_SEPARATOR",
    ] + WebSettings.names + PasskeySettings.names)

    mutating func apply(environment env: [String: String]) throws(ServiceError) {
        if let v = env["GATEHOUSE_LISTEN"] {
            guard let listen = Listen(v) else { throw ServiceError(.invalidRequest, "GATEHOUSE_LISTEN must be host:port") }
            self.listen = listen
        }
        if let v = env["GATEHOUSE_STATE_DIR"], !v.isEmpty { stateDirectory = v }
        if let v = env["GATEHOUSE_REDIS_URL"], !v.isEmpty { redisURL = v }
        if let v = env["GATEHOUSE_KEYRING_FILE"], !v.isEmpty { keyringFile = v }
        if let v = env["GATEHOUSE_DATA_KEY_FILE"], !v.isEmpty { dataKeyFile = v }
        if let v = env["GATEHOUSE_SMTP_URL"], !v.isEmpty { smtpURL = v }
        if let v = env["GATEHOUSE_MAIL_FROM"], !v.isEmpty { mailFrom = v }
        if let v = env["GATEHOUSE_ISSUER"], !v.isEmpty { issuer = v }
        if let v = env["GATEHOUSE_LOG_LEVEL"], !v.isEmpty { logLevel = v }
        if let v = env["GATEHOUSE_REDIS_PREFIX"], !v.isEmpty {
            guard !v.contains("{"), !v.contains("}") else { throw ServiceError(.invalidRequest, "GATEHOUSE_REDIS_PREFIX must not contain braces") }
            redisPrefix = v
        }
        if let v = env["GATEHOUSE_REDIS_CONNECTIONS"] {
            guard let n = Int(v), (1...16).contains(n) else { throw ServiceError(.invalidRequest, "GATEHOUSE_REDIS_CONNECTIONS must be 1 to 16") }
            redisConnections = n
        }
        if let v = env["GATEHOUSE_REDIS_LOOP_CONNECTIONS"] {
            switch v {
            case "true": redisLoopConnections = true
            case "false": redisLoopConnections = false
            default: throw ServiceError(.invalidRequest, "GATEHOUSE_REDIS_LOOP_CONNECTIONS must be true or false")
            }
        }
        if let v = env["GATEHOUSE_REVOCATION_GRACE_SECONDS"] {
            guard let n = Int(v), n >= 0 else { throw ServiceError(.invalidRequest, "GATEHOUSE_REVOCATION_GRACE_SECONDS must be a non-negative integer") }
            revocationGraceSeconds = n
        }
        func count(_ name: String, _ target: inout Int) throws(ServiceError) {
            guard let v = env[name] else { return }
            guard let n = Int(v), n >= 0 else { throw ServiceError(.invalidRequest, "\(name) must be a non-negative integer") }
            target = n
        }
        try count("GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS", &httpIdleTimeoutSeconds)
        try count("GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS", &httpHeadTimeoutSeconds)
        try count("GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS", &httpBodyTimeoutSeconds)
        try count("GATEHOUSE_HTTP_MAX_CONNECTIONS", &httpMaxConnections)
        try count("GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS", &shutdownTimeoutSeconds)
        try count("GATEHOUSE_TOTP_CACHE_ENTRIES", &totpCacheEntries)
        for service in MailService.allCases {
            let name = "GATEHOUSE_MAIL_BACKEND_" + service.rawValue.uppercased()
            guard let v = env[name], !v.isEmpty else { continue }
            guard let server = MailBackend.Server(v) else { throw ServiceError(.invalidRequest, "\(name) must be ip:port (an IP address: nginx takes no host name here)") }
            switch service {
            case .imap: mailBackend.imap = server
            case .pop3: mailBackend.pop3 = server
            case .smtp: mailBackend.smtp = server
            }
        }
        if let v = env["GATEHOUSE_MAIL_BACKEND_MASTER_SEPARATOR"], !v.isEmpty {
            guard v.utf8.count == 1, !v.contains(" ") else { throw ServiceError(.invalidRequest, "GATEHOUSE_MAIL_BACKEND_MASTER_SEPARATOR must be one character") }
            mailBackend.masterSeparator = v
        }
        if let v = env["GATEHOUSE_MAIL_BACKEND_MASTER_USER"], !v.isEmpty {
            guard v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), !v.contains(mailBackend.masterSeparator) else {
                throw ServiceError(.invalidRequest, "GATEHOUSE_MAIL_BACKEND_MASTER_USER must be printable ASCII without spaces or the separator")
            }
            mailBackend.masterUser = v
        }
        if let path = env["GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE"], !path.isEmpty {
            let text: String
            do { text = String(decoding: try KeyFiles.read(path: path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                throw ServiceError(.invalidRequest, "cannot read GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE", underlying: error)
            }
            guard text.utf8.count >= 16, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ServiceError(.invalidRequest, "the mail backend master password must be at least 16 printable ASCII characters without spaces")
            }
            mailBackend.masterPassword = text
        }
        guard (mailBackend.masterUser == nil) == (mailBackend.masterPassword == nil) else {
            throw ServiceError(.invalidRequest, "GATEHOUSE_MAIL_BACKEND_MASTER_USER and GATEHOUSE_MAIL_BACKEND_MASTER_PASSWORD_FILE go together")
        }
        try web.apply(environment: env)
        try passkeys.apply(environment: env)
        var keysText: String?
        if let path = env["GATEHOUSE_API_KEYS_FILE"] {
            do { keysText = String(decoding: try KeyFiles.read(path: path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                throw ServiceError(.invalidRequest, "cannot read GATEHOUSE_API_KEYS_FILE", underlying: error)
            }
        }
        if let v = env["GATEHOUSE_API_KEYS"] { keysText = v }
        if let keysText {
            apiKeys = try APIKeyConfiguration.parseList(keysText)
        }
    }
}

/// One API key: `name:scope+scope:secret`.
public struct APIKeyConfiguration: Sendable, Equatable {
    /// Scopes (docs/api.md, Callers and headers).
    public enum Scope: String, Sendable, CaseIterable {
        case verify, frontend, mail, admin
    }
    public var name: String
    public var scopes: Set<Scope>
    public var secret: String

    /// Creates a key.
    public init(name: String, scopes: Set<Scope>, secret: String) {
        self.name = name
        self.scopes = scopes
        self.secret = secret
    }

    /// Parses the comma-separated list; the secret may itself contain `:`.
    public static func parseList(_ text: String) throws(ServiceError) -> [APIKeyConfiguration] {
        var keys: [APIKeyConfiguration] = []
        for item in text.split(separator: ",") {
            let parts = item.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, !parts[0].isEmpty, parts[2].utf8.count >= 16 else {
                throw ServiceError(.invalidRequest, "API keys are name:scope+scope:secret with a secret of at least 16 characters")
            }
            var scopes = Set<Scope>()
            for s in parts[1].split(separator: "+") {
                guard let scope = Scope(rawValue: String(s)) else { throw ServiceError(.invalidRequest, "unknown API key scope '\(s)'") }
                scopes.insert(scope)
            }
            guard !scopes.isEmpty else { throw ServiceError(.invalidRequest, "API key \(parts[0]) has no scopes") }
            keys.append(APIKeyConfiguration(name: String(parts[0]), scopes: scopes, secret: String(parts[2])))
        }
        return keys
    }
}
