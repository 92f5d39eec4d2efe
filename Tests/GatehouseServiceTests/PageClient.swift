import Foundation
import Testing

/// The pages as a browser sees them, without a browser: a cookie jar, redirects followed only
/// when asked (so tests see each 303 and the cookies it sets), forms posted URL-encoded. One
/// request a connection over a loopback socket (``RawHTTP``), so every `Set-Cookie` arrives as
/// its own line. The real-browser flows are in ``BrowserTests``; this is for the HTTP-level
/// rules (CSRF, cookies, headers, redirects) checked fast.
final class PageClient: @unchecked Sendable {
    // @unchecked: one test drives one client, one request at a time.
    let host: String
    let port: Int
    /// Whether every answer, redirects included, is checked for the headers every page carries
    /// (``expectPageHeaders(_:sourceLocation:)``).
    let checksPageHeaders: Bool
    /// Cookie values by name, as the pages set them (an empty value or `Max-Age=0` removes). Names
    /// only: each of these cookies is set at one path.
    private(set) var cookies: [String: String] = [:]
    /// The `csrf` field of the last page that showed a form: what ``submit(_:_:sourceLocation:)`` sends.
    private(set) var csrf: String?

    init(base: URL, checksPageHeaders: Bool = false) {
        host = base.host ?? "127.0.0.1"
        port = base.port ?? 80
        self.checksPageHeaders = checksPageHeaders
    }

    /// Another browser window with this one's cookies and form token, changed apart from it.
    func copy() -> PageClient {
        let other = PageClient(base: URL(string: "http://\(host):\(port)")!, checksPageHeaders: checksPageHeaders)
        other.cookies = cookies
        other.csrf = csrf
        return other
    }

    /// Sets a cookie as if a page had set it.
    func setCookie(_ name: String, _ value: String) { cookies[name] = value }

    // MARK: Requests

    func get(_ path: String, headers: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Page {
        try await send("GET", path, headers: headers, body: nil, sourceLocation: sourceLocation)
    }

    /// Posts exactly `fields` as a form (no CSRF field unless `fields` has one); `headers` may
    /// replace the form's `Content-Type`.
    func post(
        _ path: String, _ fields: KeyValuePairs<String, String> = [:], headers: [String: String] = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Page {
        try await post(path, fields.map { ($0.key, $0.value) }, headers: headers, sourceLocation: sourceLocation)
    }

    /// Submits a form the way its page does: `fields` plus the CSRF field of the last page shown,
    /// then follows the redirect that answers a change.
    func submit(_ path: String, _ fields: KeyValuePairs<String, String> = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Page {
        let token = try #require(csrf, "no page with a form was shown before submitting \(path)", sourceLocation: sourceLocation)
        let posted = try await post(path, fields.map { ($0.key, $0.value) } + [("csrf", token)], headers: [:], sourceLocation: sourceLocation)
        return try await follow(posted, sourceLocation: sourceLocation)
    }

    /// Follows redirects within the pages (GET, as a browser does after a 303) until a page
    /// answers, at most 5; a redirect elsewhere (another origin) is returned as it is.
    func follow(_ page: Page, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Page {
        var page = page
        for _ in 0..<5 {
            guard [301, 302, 303, 307, 308].contains(page.status), let location = page.location,
                  location.hasPrefix("/"), !location.hasPrefix("//")
            else { return page }
            page = try await get(location, sourceLocation: sourceLocation)
        }
        return page
    }

    private func post(
        _ path: String, _ fields: [(String, String)], headers: [String: String], sourceLocation: SourceLocation
    ) async throws -> Page {
        let body = fields.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        var all = ["content-type": "application/x-www-form-urlencoded"]
        for (name, value) in headers { all[name.lowercased()] = value }
        return try await send("POST", path, headers: all, body: body, sourceLocation: sourceLocation)
    }

    private func send(_ method: String, _ path: String, headers: [String: String], body: String?, sourceLocation: SourceLocation) async throws -> Page {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nUser-Agent: GatehouseServiceTests\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        if !cookies.isEmpty { head += "Cookie: " + cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ") + "\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        let answer = try await RawHTTP.exchange(port: port, head + "\r\n" + (body ?? ""))
        guard let split = answer.range(of: "\r\n\r\n") else { throw RawHTTP.Failure(description: "no HTTP answer to \(method) \(path): \(answer)") }
        let lines = answer[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let page = Page(path: String(path.split(separator: "?", omittingEmptySubsequences: false)[0]), status: status, fields: fields, body: String(answer[split.upperBound...]))
        if page.header("transfer-encoding") != nil { throw RawHTTP.Failure(description: "a chunked answer to \(method) \(path); pages send a length") }
        for line in page.setCookies { remember(line) }
        if let token = page.csrf { csrf = token }
        if checksPageHeaders { Self.expectPageHeaders(page, sourceLocation: sourceLocation) }
        return page
    }

    /// Keeps or (empty value, `Max-Age=0`) drops a `Set-Cookie`.
    private func remember(_ setCookie: String) {
        let parts = setCookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let pair = parts.first, let equals = pair.firstIndex(of: "=") else { return }
        let name = String(pair[..<equals]), value = String(pair[pair.index(after: equals)...])
        if value.isEmpty || parts.contains(where: { $0.lowercased() == "max-age=0" }) { cookies[name] = nil } else { cookies[name] = value }
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    // MARK: Answers

    struct Page {
        /// The path asked for, without its query.
        var path: String
        var status: Int
        /// The header lines in order, names in lower case.
        var fields: [(name: String, value: String)]
        var body: String

        /// The headers by lower-case name; a repeated header's values joined with ", ".
        var headers: [String: String] {
            fields.reduce(into: [:]) { all, field in all[field.name] = all[field.name].map { $0 + ", " + field.value } ?? field.value }
        }

        func header(_ name: String) -> String? { headers[name.lowercased()] }
        var location: String? { header("location") }
        /// Every `Set-Cookie` line.
        var setCookies: [String] { fields.filter { $0.name == "set-cookie" }.map(\.value) }
        /// The `Set-Cookie` line for cookie `name`.
        func setCookie(_ name: String) -> String? { setCookies.first { $0.hasPrefix(name + "=") } }

        /// The first capture of `pattern` in the body.
        func first(_ pattern: String) -> String? { PageClient.first(pattern, in: body) }
        /// Every first capture of `pattern` in the body.
        func all(_ pattern: String) -> [String] { PageClient.all(pattern, in: body) }

        /// The hidden `csrf` field of the page's first form.
        var csrf: String? { first(#"name="csrf" value="([^"]+)""#) }
        /// The `data-code` of the page's error message.
        var errorCode: String? { tag(id: "error").flatMap { PageClient.first(#"\sdata-code="([^"]*)""#, in: $0) } }
        func has(id: String) -> Bool { body.contains(#"id="\#(id)""#) }
        /// The text of the element with `id` (up to its first child tag).
        func text(id: String) -> String? { first(#"id="\#(id)"[^>]*>([^<]*)<"#) }
        /// Attribute `name` of the element with `id`.
        func attribute(_ name: String, id: String) -> String? {
            tag(id: id).flatMap { PageClient.first(#"\s\#(name)="([^"]*)""#, in: $0) }
        }

        /// The opening tag of the element with `id`.
        private func tag(id: String) -> String? { PageClient.first(#"(<[^>]*\sid="\#(id)"[^>]*>)"#, in: body) }
    }

    /// The first capture of `pattern` in `text`.
    static func first(_ pattern: String, in text: String) -> String? {
        guard let regex = try? Regex(pattern), let match = text.firstMatch(of: regex), match.output.count > 1 else { return nil }
        return match.output[1].substring.map(String.init)
    }

    /// Every first capture of `pattern` in `text`.
    static func all(_ pattern: String, in text: String) -> [String] {
        guard let regex = try? Regex(pattern) else { return [] }
        return text.matches(of: regex).compactMap { $0.output.count > 1 ? $0.output[1].substring.map(String.init) : nil }
    }

    /// The headers every page carries: no caching (pages show secrets and codes), HTML, a CSP
    /// with no inline script and no framing, and no framing for browsers without CSP.
    static func expectPageHeaders(_ page: Page, sourceLocation: SourceLocation = #_sourceLocation) {
        let about = "\(page.status) for \(page.path)"
        #expect(page.header("cache-control") == "no-store", "Cache-Control: \(page.header("cache-control") ?? "none"), \(about)", sourceLocation: sourceLocation)
        let csp = page.header("content-security-policy") ?? ""
        #expect(csp.contains("frame-ancestors 'none'"), "CSP: \(csp), \(about)", sourceLocation: sourceLocation)
        #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "CSP: \(csp), \(about)", sourceLocation: sourceLocation)
        #expect(page.header("x-frame-options") == "DENY", "\(about)", sourceLocation: sourceLocation)
        #expect(page.header("content-type") == "text/html; charset=utf-8", "\(about)", sourceLocation: sourceLocation)
    }
}
