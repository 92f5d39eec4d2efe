/// Where a Redis server is and how to log in to it.
///
/// Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]` — TCP; `host` may be `[ipv6]`; port 6379 and
///   database 0 by default.
/// - `unix:///path/to/redis.sock[?db=N][&password=P][&user=U]`, or with the credentials as
///   userinfo: `unix://user:password@/path/to/redis.sock`.
/// - `redis-sentinel://[[user]:password@]host1[:port1][,host2[:port2],…]/MASTERNAME[/db]
///   [?sentinel_user=U][&sentinel_password=P]` — the master of the group `MASTERNAME` as Redis
///   Sentinel names it, asked of the listed sentinels (port 26379 by default) on every connect.
///   The userinfo is the login of the data nodes (master and replicas); the query holds the
///   sentinels' own login, for sentinels that require `AUTH`.
/// - `redis-cluster://[[user]:password@]host1[:port1][,host2[:port2],…]` — a Redis Cluster; the
///   listed nodes (port 6379 by default; any of them, masters or replicas) are the seeds the slot
///   map is first asked of. A cluster has only database 0, so there is no path.
///
/// Userinfo and query values are percent-decoded. A user without a password is rejected (Redis
/// has no such login). `description` never shows the password.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    /// The transport to the server.
    public enum Endpoint: Sendable, Hashable {
        /// TCP to a host name or address and port.
        case tcp(host: String, port: Int)
        /// A Unix domain socket.
        case unix(path: String)
        /// Whichever server Redis Sentinel names as the master of a group, resolved again on
        /// every (re)connect.
        case sentinel(Sentinel)
        /// A Redis Cluster, found from these seed nodes; commands go to the master that owns
        /// their key's slot.
        case cluster(seeds: [Address])
    }

    /// A host and port (the type sentinels and cluster seeds share).
    public typealias Address = Sentinel.Address

    /// How to find a master through Redis Sentinel.
    ///
    /// `description` never shows the password.
    public struct Sentinel: Sendable, Hashable, CustomStringConvertible {
        /// One sentinel's address.
        public struct Address: Sendable, Hashable, CustomStringConvertible {
            /// A host name or address (IPv6 without brackets).
            public var host: String
            /// The TCP port.
            public var port: Int

            /// Creates an address.
            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }

            /// `host:port`, IPv6 in brackets.
            public var description: String {
                host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }

        /// The sentinels, asked in this order at first (one that answers moves to the front).
        public var addresses: [Address]
        /// The group's name in the sentinels' `sentinel monitor` line.
        public var masterName: String
        /// The ACL user for `AUTH` on the sentinels; `nil` uses the `default` user.
        public var user: String?
        /// The sentinels' password; `nil` sends no `AUTH` to them.
        public var password: String?

        /// Creates a sentinel endpoint.
        public init(addresses: [Address], masterName: String, user: String? = nil, password: String? = nil) {
            self.addresses = addresses
            self.masterName = masterName
            self.user = user
            self.password = password
        }

        /// The sentinels and the master name, password replaced by `***`.
        public var description: String {
            var text = "sentinels \(self.addresses.map(\.description).joined(separator: ",")) master '\(self.masterName)'"
            if self.password != nil { text += " (with \(self.user.map { "user \($0) and " } ?? "")password ***)" }
            return text
        }
    }

    /// The default port of a sentinel.
    public static let defaultSentinelPort = 26379

    /// The transport to the server.
    public var endpoint: Endpoint
    /// The ACL user for `AUTH user password`; `nil` logs in with `AUTH password` (the `default`
    /// user).
    public var user: String?
    /// The password; `nil` sends no `AUTH`.
    public var password: String?
    /// The database `SELECT`ed on every (re)connect; 0 sends no `SELECT`.
    public var database: Int

    /// Creates a URL from its parts.
    public init(endpoint: Endpoint, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a `redis://`, `unix://` or `redis-sentinel://` URL.
    public init(_ string: String) throws(RedisError) {
        if string.hasPrefix("redis-sentinel://") {
            try self.init(sentinel: string.dropFirst("redis-sentinel://".count), original: string)
        } else if string.hasPrefix("redis-cluster://") {
            try self.init(cluster: string.dropFirst("redis-cluster://".count), original: string)
        } else if string.hasPrefix("redis://") {
            try self.init(tcp: string.dropFirst("redis://".count), original: string)
        } else if string.hasPrefix("unix://") {
            try self.init(unix: string.dropFirst("unix://".count), original: string)
        } else {
            throw RedisError(.invalidURL, "unsupported Redis URL scheme in \(Self.redacted(string)); use redis://, unix://, redis-sentinel:// or redis-cluster://")
        }
        if self.user != nil && self.password == nil {
            throw RedisError(.invalidURL, "a Redis user needs a password: \(Self.redacted(string))")
        }
        guard self.database >= 0 else {
            throw RedisError(.invalidURL, "negative database number in \(Self.redacted(string))")
        }
    }

    private init(tcp rest: Substring, original: String) throws(RedisError) {
        var rest = rest
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }
        let (user, password, hostPort) = try Self.splitUserinfo(authority, original: original)
        var (host, port) = try Self.splitHostPort(hostPort, defaultPort: 6379, original: original)
        if host.isEmpty { host = "127.0.0.1" }
        var database = 0
        if !path.isEmpty {
            guard let parsed = Int(path) else {
                throw RedisError(.invalidURL, "the path of a redis:// URL must be a database number: \(Self.redacted(original))")
            }
            database = parsed
        }
        self.init(endpoint: .tcp(host: host, port: port), user: user, password: password, database: database)
        try self.applyQuery(query, original: original, allowDatabase: path.isEmpty)
    }

    /// `host[:port]` or `[ipv6][:port]`; the host may come back empty.
    private static func splitHostPort(
        _ hostPort: Substring,
        defaultPort: Int,
        original: String
    ) throws(RedisError) -> (host: String, port: Int) {
        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw RedisError(.invalidURL, "unterminated IPv6 address in \(Self.redacted(original))")
            }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw RedisError(.invalidURL, "junk after IPv6 address in \(Self.redacted(original))")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        var port = defaultPort
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else {
                throw RedisError(.invalidURL, "bad port in \(Self.redacted(original))")
            }
            port = parsed
        }
        return (String(host), port)
    }

    /// `[userinfo@]host1[:port1][,host2[:port2]…]/MASTERNAME[/db][?sentinel_user=U&sentinel_password=P]`.
    private init(sentinel rest: Substring, original: String) throws(RedisError) {
        var rest = rest
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw RedisError(.invalidURL, "a redis-sentinel:// URL needs the master name as its path (…/MASTERNAME): \(Self.redacted(original))")
        }
        let (user, password, hosts) = try Self.splitUserinfo(rest[..<slash], original: original)
        var addresses: [Sentinel.Address] = []
        for item in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            let (host, port) = try Self.splitHostPort(item, defaultPort: Self.defaultSentinelPort, original: original)
            guard !host.isEmpty else {
                throw RedisError(.invalidURL, "a sentinel address without a host in \(Self.redacted(original))")
            }
            addresses.append(Sentinel.Address(host: host, port: port))
        }
        // A path of `/NAME` or `/NAME/db`.
        let segments = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(segments.count), let name = Self.percentDecode(segments[0]), !name.isEmpty else {
            throw RedisError(.invalidURL, "the path of a redis-sentinel:// URL must be /MASTERNAME or /MASTERNAME/db: \(Self.redacted(original))")
        }
        guard !name.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) else {
            throw RedisError(.invalidURL, "a master name cannot contain spaces or control characters: \(Self.redacted(original))")
        }
        var database = 0
        if segments.count == 2 {
            guard let parsed = Int(segments[1]) else {
                throw RedisError(.invalidURL, "the database of a redis-sentinel:// URL must be a number: \(Self.redacted(original))")
            }
            database = parsed
        }
        var sentinel = Sentinel(addresses: addresses, masterName: name)
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let parameter = parts[0]
            guard parts.count == 2, let value = Self.percentDecode(parts[1]) else {
                throw RedisError(.invalidURL, "bad query parameter '\(parameter)' in \(Self.redacted(original))")
            }
            switch parameter {
            case "sentinel_password": sentinel.password = value
            case "sentinel_user": sentinel.user = value
            default:
                throw RedisError(
                    .invalidURL,
                    "unknown query parameter '\(parameter)' in \(Self.redacted(original)); a redis-sentinel:// URL takes sentinel_user and sentinel_password"
                )
            }
        }
        if sentinel.user != nil && sentinel.password == nil {
            throw RedisError(.invalidURL, "a sentinel user needs a sentinel_password: \(Self.redacted(original))")
        }
        self.init(endpoint: .sentinel(sentinel), user: user, password: password, database: database)
    }

    private init(cluster rest: Substring, original: String) throws(RedisError) {
        var authority = rest
        if let slash = rest.firstIndex(of: "/") {
            guard rest[rest.index(after: slash)...].isEmpty || rest[rest.index(after: slash)...] == "0" else {
                throw RedisError(.invalidURL, "a Redis Cluster has only database 0; a redis-cluster:// URL takes no other path: \(Self.redacted(original))")
            }
            authority = rest[..<slash]
        }
        guard !authority.contains("?") else {
            throw RedisError(.invalidURL, "a redis-cluster:// URL takes no query parameters: \(Self.redacted(original))")
        }
        let (user, password, hosts) = try Self.splitUserinfo(authority, original: original)
        var seeds: [Address] = []
        for item in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            let (host, port) = try Self.splitHostPort(item, defaultPort: 6379, original: original)
            guard !host.isEmpty else {
                throw RedisError(.invalidURL, "a cluster seed without a host in \(Self.redacted(original))")
            }
            if !seeds.contains(Address(host: host, port: port)) { seeds.append(Address(host: host, port: port)) }
        }
        self.init(endpoint: .cluster(seeds: seeds), user: user, password: password, database: 0)
    }

    private init(unix rest: Substring, original: String) throws(RedisError) {
        var rest = rest
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var user: String?
        var password: String?
        var path = rest
        if !rest.hasPrefix("/") {
            // unix://user:password@/path
            guard let at = rest.lastIndex(of: "@") else {
                throw RedisError(.invalidURL, "a unix:// URL needs an absolute path: \(Self.redacted(original))")
            }
            (user, password, _) = try Self.splitUserinfo(rest[...at], original: original)
            path = rest[rest.index(after: at)...]
        }
        guard path.hasPrefix("/"), path.count > 1 else {
            throw RedisError(.invalidURL, "a unix:// URL needs an absolute path: \(Self.redacted(original))")
        }
        guard let decodedPath = Self.percentDecode(path) else {
            throw RedisError(.invalidURL, "bad percent-encoding in \(Self.redacted(original))")
        }
        self.init(endpoint: .unix(path: decodedPath), user: user, password: password, database: 0)
        try self.applyQuery(query, original: original, allowDatabase: true)
    }

    private mutating func applyQuery(_ query: Substring, original: String, allowDatabase: Bool) throws(RedisError) {
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0]
            guard parts.count == 2, let value = Self.percentDecode(parts[1]) else {
                throw RedisError(.invalidURL, "bad query parameter '\(name)' in \(Self.redacted(original))")
            }
            switch name {
            case "db" where allowDatabase:
                guard let database = Int(value) else {
                    throw RedisError(.invalidURL, "bad db in \(Self.redacted(original))")
                }
                self.database = database
            case "password": self.password = value
            case "user": self.user = value
            default:
                throw RedisError(.invalidURL, "unknown query parameter '\(name)' in \(Self.redacted(original))")
            }
        }
    }

    /// Splits `user:password@rest` (the userinfo is optional; `:password@` means no user).
    private static func splitUserinfo(
        _ authority: Substring,
        original: String
    ) throws(RedisError) -> (user: String?, password: String?, rest: Substring) {
        guard let at = authority.lastIndex(of: "@") else { return (nil, nil, authority) }
        let userinfo = authority[..<at]
        let rest = authority[authority.index(after: at)...]
        let user: Substring
        let password: Substring?
        if let colon = userinfo.firstIndex(of: ":") {
            user = userinfo[..<colon]
            password = userinfo[userinfo.index(after: colon)...]
        } else {
            // `redis://secret@host` is the common shorthand for a password alone.
            user = ""
            password = userinfo
        }
        guard let decodedUser = percentDecode(user), let decodedPassword = password.map(percentDecode) ?? nil else {
            throw RedisError(.invalidURL, "bad percent-encoding in the userinfo of \(redacted(original))")
        }
        return (decodedUser.isEmpty ? nil : decodedUser, decodedPassword, rest)
    }

    private static func percentDecode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The URL with any password replaced, for error messages.
    private static func redacted(_ string: String) -> String {
        guard let schemeEnd = string.firstRange(of: "://") else { return "<invalid URL>" }
        let afterScheme = string[schemeEnd.upperBound...]
        var result = string
        if let at = afterScheme.lastIndex(of: "@") {
            result = String(string[..<schemeEnd.upperBound]) + "***@" + afterScheme[afterScheme.index(after: at)...]
        }
        // Every `password=` value (`sentinel_password=` included), not just the first.
        var redactedText = ""
        var remaining = Substring(result)
        while let password = remaining.firstRange(of: "password=") {
            let end = remaining[password.upperBound...].firstIndex(of: "&") ?? remaining.endIndex
            redactedText += remaining[..<password.upperBound] + "***"
            remaining = remaining[end...]
        }
        return redactedText + remaining
    }

    /// The URL in canonical form, password replaced by `***`.
    public var description: String {
        let credentials: String =
            switch (self.user, self.password) {
            case (let user?, _?): "\(user):***@"
            case (nil, _?): ":***@"
            default: ""
            }
        switch self.endpoint {
        case .tcp(let host, let port):
            let hostText = host.contains(":") ? "[\(host)]" : host
            return "redis://\(credentials)\(hostText):\(port)/\(self.database)"
        case .unix(let path):
            return "unix://\(credentials)\(path)?db=\(self.database)"
        case .sentinel(let sentinel):
            let hosts = sentinel.addresses.map(\.description).joined(separator: ",")
            var query: [String] = []
            if let user = sentinel.user { query.append("sentinel_user=\(user)") }
            if sentinel.password != nil { query.append("sentinel_password=***") }
            let queryText = query.isEmpty ? "" : "?" + query.joined(separator: "&")
            return "redis-sentinel://\(credentials)\(hosts)/\(sentinel.masterName)/\(self.database)\(queryText)"
        case .cluster(let seeds):
            return "redis-cluster://\(credentials)\(seeds.map(\.description).joined(separator: ","))"
        }
    }
}
