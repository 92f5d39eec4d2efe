import Foundation

/// Where an SMTP server is, how to log in to it, and how to treat STARTTLS.
///
/// Form: `smtp://[user:password@]host[:port][?starttls=require|optional|never][&tls_verify=false]`.
/// `host` may be `[ipv6]`; the port is 25 by default. User and password are percent-decoded
/// (write `@` in a password as `%40`). `description` never shows the password.
///
/// - `starttls=optional` (default): upgrade with STARTTLS when the server offers it, else go on in
///   clear text — but never send credentials in clear text.
/// - `starttls=require`: fail with ``MailError/Code/tlsFailed`` unless the server offers it.
/// - `starttls=never`: stay in clear text, credentials included (a trusted local relay).
/// - `tls_verify=false`: accept any certificate (self-signed test servers only).
public struct SMTPURL: Sendable, Hashable, CustomStringConvertible {
    /// How the client treats STARTTLS.
    public enum StartTLS: String, Sendable, Hashable {
        /// Upgrade only if the server offers it; fail otherwise.
        case require
        /// Upgrade if the server offers it; go on in clear text otherwise (without credentials).
        case optional
        /// Never upgrade; credentials may travel in clear text.
        case never
    }

    /// Host name or IP address (without brackets).
    public var host: String
    /// TCP port.
    public var port: Int
    /// The user for `AUTH`; `nil` sends no `AUTH`.
    public var user: String?
    /// The password for `AUTH`.
    public var password: String?
    /// How to treat STARTTLS.
    public var startTLS: StartTLS
    /// Whether the server's certificate is checked (chain and host name) after STARTTLS.
    public var verifyCertificate: Bool

    /// Creates a URL from its parts.
    public init(
        host: String,
        port: Int = 25,
        user: String? = nil,
        password: String? = nil,
        startTLS: StartTLS = .optional,
        verifyCertificate: Bool = true
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.startTLS = startTLS
        self.verifyCertificate = verifyCertificate
    }

    /// Parses an `smtp://` URL.
    public init(_ string: String) throws(MailError) {
        let redacted = Self.redacted(string)
        guard string.lowercased().hasPrefix("smtp://") else {
            throw MailError(.invalidURL, "unsupported SMTP URL \(redacted); use smtp://[user:password@]host:port")
        }
        var rest = Substring(string).dropFirst("smtp://".count)
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else {
            throw MailError(.invalidURL, "an SMTP URL has no path: \(redacted)")
        }
        var user: String?
        var password: String?
        var hostPort = rest
        // The last `@` separates userinfo: a password may contain an unencoded `@` in practice.
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            guard let colon = userinfo.firstIndex(of: ":") else {
                throw MailError(.invalidURL, "an SMTP user needs a password (user:password@): \(redacted)")
            }
            guard let decodedUser = String(userinfo[..<colon]).removingPercentEncoding,
                  let decodedPassword = String(userinfo[userinfo.index(after: colon)...]).removingPercentEncoding
            else {
                throw MailError(.invalidURL, "bad percent-encoding in the userinfo of \(redacted)")
            }
            guard !decodedUser.isEmpty, !decodedPassword.isEmpty else {
                throw MailError(.invalidURL, "empty SMTP user or password in \(redacted)")
            }
            user = decodedUser
            password = decodedPassword
        }
        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw MailError(.invalidURL, "unterminated IPv6 address in \(redacted)")
            }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw MailError(.invalidURL, "junk after the IPv6 address in \(redacted)")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "%" }) else {
            throw MailError(.invalidURL, "missing or bad host in \(redacted)")
        }
        var port = 25
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else {
                throw MailError(.invalidURL, "bad port in \(redacted)")
            }
            port = parsed
        }
        self.init(host: String(host), port: port, user: user, password: password)
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0].lowercased()
            let value = parts.count == 2 ? String(parts[1]).removingPercentEncoding?.lowercased() : nil
            switch (name, value) {
            case ("starttls", let value?):
                guard let mode = StartTLS(rawValue: value) else {
                    throw MailError(.invalidURL, "starttls must be require, optional or never in \(redacted)")
                }
                self.startTLS = mode
            case ("tls_verify", "true"), ("tls_verify", "1"):
                self.verifyCertificate = true
            case ("tls_verify", "false"), ("tls_verify", "0"):
                self.verifyCertificate = false
            default:
                // Unknown options fail loudly: a typo in `starttls=require` must not silently
                // downgrade to clear text.
                throw MailError(.invalidURL, "unknown or bad query parameter '\(name)' in \(redacted)")
            }
        }
    }

    /// Whether `AUTH` will be attempted.
    public var hasCredentials: Bool { self.user != nil && self.password != nil }

    /// The URL with the password replaced by `***`.
    public var description: String {
        var text = "smtp://"
        if let user {
            text += (user.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? user) + ":***@"
        }
        text += self.host.contains(":") ? "[\(self.host)]" : self.host
        text += ":\(self.port)"
        var options: [String] = []
        if self.startTLS != .optional { options.append("starttls=\(self.startTLS.rawValue)") }
        if !self.verifyCertificate { options.append("tls_verify=false") }
        if !options.isEmpty { text += "?" + options.joined(separator: "&") }
        return text
    }

    /// `string` with anything between `://` and the last `@` before the host replaced, for error
    /// messages about a URL that could not be parsed.
    static func redacted(_ string: String) -> String {
        guard let scheme = string.range(of: "://") else { return string }
        let afterScheme = string[scheme.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        guard let at = afterScheme[..<authorityEnd].lastIndex(of: "@") else { return string }
        let userinfo = afterScheme[..<at]
        let user = userinfo.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        return String(string[..<scheme.upperBound]) + user + ":***" + String(string[at...])
    }
}
