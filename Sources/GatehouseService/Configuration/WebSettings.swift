import Foundation

/// The pages a person uses (second step, enrolment, settings, forgot password) and the hand-off
/// from the provider's webmail to them (docs/web-pages.md).
public struct WebSettings: Sendable, Equatable {
    /// Serve the pages under `/account/` (`GATEHOUSE_WEB_PAGES`, default on).
    public var pages = true
    /// Serve the stand-in webmail under `/demo/` (`GATEHOUSE_WEB_DEMO`). nil: on exactly when the
    /// node runs its embedded Redis (the development default), off otherwise.
    public var demo: Bool?
    /// Where a hand-off may send the browser back to (`GATEHOUSE_WEB_RETURN_URLS`,
    /// comma-separated): absolute `http(s)://host[:port]/path/` prefixes, or `/path/` prefixes on
    /// the node's own origin.
    public var returnURLs: [ReturnURL] = []
    /// The provider's page that sets a new password; the forgot-password flow ends by posting
    /// the reset token there (`GATEHOUSE_WEB_PASSWORD_RESET_URL`, a return URL in form).
    public var passwordResetURL: String?
    /// `https://…` when browsers reach the pages over HTTPS (`GATEHOUSE_WEB_PUBLIC_URL`): cookies
    /// are then `Secure` and hand-off links absolute.
    public var publicURL: String?

    public init() {}

    /// Whether the stand-in webmail is served, for a node with (`embeddedRedis`) or without its
    /// own Redis.
    public func demoEnabled(embeddedRedis: Bool) -> Bool { demo ?? embeddedRedis }

    /// Whether cookies carry `Secure`.
    public var secureCookies: Bool { publicURL?.hasPrefix("https://") ?? false }

    /// The allowed return addresses, with the demo's own when it is served.
    public func effectiveReturnURLs(demo: Bool) -> [ReturnURL] {
        demo ? returnURLs + [ReturnURL.demo] : returnURLs
    }

    /// Whether `address` may be a hand-off's return address.
    public func allowsReturn(to address: String, demo: Bool) -> Bool {
        guard let candidate = ReturnURL(address, prefix: false) else { return false }
        return effectiveReturnURLs(demo: demo).contains { $0.admits(candidate) }
    }

    /// Reads the `GATEHOUSE_WEB_*` variables.
    mutating func apply(environment env: [String: String]) throws(ServiceError) {
        func flag(_ name: String) throws(ServiceError) -> Bool? {
            guard let v = env[name], !v.isEmpty else { return nil }
            switch v.lowercased() {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw ServiceError(.invalidRequest, "\(name) must be on or off")
            }
        }
        if let v = try flag("GATEHOUSE_WEB_PAGES") { pages = v }
        if let v = try flag("GATEHOUSE_WEB_DEMO") { demo = v }
        if let v = env["GATEHOUSE_WEB_RETURN_URLS"], !v.isEmpty {
            var list: [ReturnURL] = []
            for item in v.split(separator: ",") {
                let text = item.trimmingCharacters(in: .whitespaces)
                guard let url = ReturnURL(text, prefix: true) else {
                    throw ServiceError(.invalidRequest, "GATEHOUSE_WEB_RETURN_URLS: '\(text)' is not an http(s)://host/path/ or /path/ prefix")
                }
                list.append(url)
            }
            returnURLs = list
        }
        if let v = env["GATEHOUSE_WEB_PASSWORD_RESET_URL"], !v.isEmpty {
            guard ReturnURL(v, prefix: false) != nil else {
                throw ServiceError(.invalidRequest, "GATEHOUSE_WEB_PASSWORD_RESET_URL must be an http(s) URL or a /path")
            }
            passwordResetURL = v
        }
        if let v = env["GATEHOUSE_WEB_PUBLIC_URL"], !v.isEmpty {
            guard let url = ReturnURL(v, prefix: true), url.origin != nil else {
                throw ServiceError(.invalidRequest, "GATEHOUSE_WEB_PUBLIC_URL must be an http(s)://host[:port] URL")
            }
            publicURL = url.origin
        }
    }

    static let names = [
        "GATEHOUSE_WEB_PAGES", "GATEHOUSE_WEB_DEMO", "GATEHOUSE_WEB_RETURN_URLS", "GATEHOUSE_WEB_PASSWORD_RESET_URL",
        "GATEHOUSE_WEB_PUBLIC_URL",
    ]
}

/// An address a browser may be sent back to, or an allow-list entry (a prefix).
///
/// Only plain forms are accepted, so that what is compared is what a browser will open: printable
/// ASCII, no backslash, no user info, no `.`/`..` segment (also not percent-encoded), no
/// scheme-relative `//host`. An absolute address must match an entry's scheme, host and port
/// exactly and start with its path; a `/path` address is on the node's own origin and must start
/// with a `/path/` entry.
public struct ReturnURL: Sendable, Equatable {
    /// `scheme://host[:port]`, lower-cased; nil for an address on the node's own origin.
    public let origin: String?
    /// The path, query and fragment (starts with `/`).
    public let rest: String

    /// The stand-in webmail's pages.
    static let demo = ReturnURL(origin: nil, rest: "/demo/")

    private init(origin: String?, rest: String) {
        self.origin = origin
        self.rest = rest
    }

    /// Parses `text`; an allow-list entry (`prefix`) has no query or fragment.
    public init?(_ text: String, prefix: Bool) {
        guard !text.isEmpty, text.utf8.count <= 2048, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else {
            return nil
        }
        var origin: String?
        var rest: Substring
        let lower = text.lowercased()
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            let afterScheme = text[text.range(of: "://")!.upperBound...]
            let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
            let authority = afterScheme[..<authorityEnd]
            guard !authority.isEmpty, !authority.contains("@") else { return nil }
            let scheme = lower.hasPrefix("https://") ? "https" : "http"
            origin = scheme + "://" + authority.lowercased()
            rest = afterScheme[authorityEnd...]
            if rest.isEmpty { rest = "/" }
            guard rest.hasPrefix("/") else { return nil }
        } else {
            guard text.hasPrefix("/"), !text.hasPrefix("//") else { return nil }
            rest = Substring(text)
        }
        let pathEnd = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let path = rest[..<pathEnd]
        if prefix, pathEnd != rest.endIndex { return nil }
        let lowerPath = path.lowercased()
        guard !lowerPath.contains("%2e"), !lowerPath.contains("%2f"), !lowerPath.contains("%5c") else { return nil }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            if segment == "." || segment == ".." { return nil }
        }
        if path.contains("//") { return nil }
        self.origin = origin
        self.rest = String(rest)
    }

    /// Whether `candidate` is within this entry.
    func admits(_ candidate: ReturnURL) -> Bool {
        guard candidate.origin == origin else { return false }
        if rest.hasSuffix("/") { return candidate.rest.hasPrefix(rest) }
        // An entry without a trailing slash names one page (and its query).
        guard candidate.rest.hasPrefix(rest) else { return false }
        let next = candidate.rest.dropFirst(rest.count).first
        return next == nil || next == "?" || next == "#"
    }
}
