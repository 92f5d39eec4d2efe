/// Where a Redis server is and how to log in to it.
///
/// Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]` — TCP; `host` may be `[ipv6]`; port 6379 and
///   database 0 by default.
/// - `unix:///path/to/redis.sock[?db=N][&password=P][&user=U]`, or with the credentials as
///   userinfo: `unix://user:password@/path/to/redis.sock`.
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
    }

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

    /// Parses a `redis://` or `unix://` URL.
    public init(_ string: String) throws(RedisError) {
        if string.hasPrefix("redis://") {
            try self.init(tcp: string.dropFirst("redis://".count), original: string)
        } else if string.hasPrefix("unix://") {
            try self.init(unix: string.dropFirst("unix://".count), original: string)
        } else {
            throw RedisError(.invalidURL, "unsupported Redis URL scheme in \(Self.redacted(string)); use redis:// or unix://")
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
        if host.isEmpty { host = "127.0.0.1" }
        var port = 6379
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else {
                throw RedisError(.invalidURL, "bad port in \(Self.redacted(original))")
            }
            port = parsed
        }
        var database = 0
        if !path.isEmpty {
            guard let parsed = Int(path) else {
                throw RedisError(.invalidURL, "the path of a redis:// URL must be a database number: \(Self.redacted(original))")
            }
            database = parsed
        }
        self.init(endpoint: .tcp(host: String(host), port: port), user: user, password: password, database: database)
        try self.applyQuery(query, original: original, allowDatabase: path.isEmpty)
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
        if let password = result.firstRange(of: "password=") {
            let end = result[password.upperBound...].firstIndex(of: "&") ?? result.endIndex
            result.replaceSubrange(password.upperBound..<end, with: "***")
        }
        return result
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
        }
    }
}
