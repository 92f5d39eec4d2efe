import Foundation
import GatehouseTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The pages as a browser sees them, without a browser: a cookie jar, redirects not followed (so
/// tests see each 303 and its cookies), forms posted URL-encoded. The real-browser flows are in
/// ``BrowserTests``; this is for the HTTP-level rules (CSRF, headers, redirects) checked fast.
final class PageClient: @unchecked Sendable {
    // @unchecked: one test drives one client, sequentially.
    let base: URL
    /// Cookie values by name, as the pages set them (Max-Age=0 removes).
    private(set) var cookies: [String: String] = [:]

    struct Page {
        var status: Int
        var headers: [String: String]
        var body: String
        var location: String? { headers["location"] }
        /// The hidden `csrf` field of the page's first form.
        var csrf: String? { PageClient.field("csrf", in: body) }
        /// The `data-code` of the page's error message.
        var errorCode: String? {
            guard let range = body.range(of: #"id="error"[^>]*data-code="([a-z_]+)""#, options: .regularExpression) else { return nil }
            let match = body[range]
            guard let start = match.range(of: "data-code=\"") else { return nil }
            return String(match[start.upperBound...].dropLast())
        }
    }

    init(base: URL) {
        self.base = base
    }

    func get(_ path: String, headers: [String: String] = [:]) async throws -> Page {
        try await send("GET", path, headers: headers, body: nil)
    }

    /// Posts `fields` as a form.
    func post(_ path: String, _ fields: [(String, String)], headers: [String: String] = [:]) async throws -> Page {
        var all = headers
        all["Content-Type"] = "application/x-www-form-urlencoded"
        let body = fields.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        return try await send("POST", path, headers: all, body: Data(body.utf8))
    }

    /// Sets a cookie as if a page had set it.
    func setCookie(_ name: String, _ value: String) { cookies[name] = value }

    private func send(_ method: String, _ path: String, headers: [String: String], body: Data?) async throws -> Page {
        var request = URLRequest(url: URL(string: path, relativeTo: base)!.absoluteURL)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        if !cookies.isEmpty { request.setValue(cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), forHTTPHeaderField: "Cookie") }
        request.httpBody = body
        let (data, response) = try await Self.session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        var raw: [String: String] = [:]
        for (k, v) in http.allHeaderFields {
            fields[String(describing: k).lowercased()] = String(describing: v)
            raw[String(describing: k)] = String(describing: v)
        }
        for cookie in HTTPCookie.cookies(withResponseHeaderFields: raw, for: request.url!) {
            if cookie.value.isEmpty || (cookie.expiresDate.map { $0 < Date() } ?? false) {
                cookies.removeValue(forKey: cookie.name)
            } else {
                cookies[cookie.name] = cookie.value
            }
        }
        return Page(status: http.statusCode, headers: fields, body: String(decoding: data, as: UTF8.self))
    }

    /// The value of the first `<input name="NAME" value="…">` in `html`.
    static func field(_ name: String, in html: String) -> String? {
        guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        let rest = html[range.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// Never follows a redirect: the test looks at each one.
    private final class NoRedirects: NSObject, URLSessionTaskDelegate {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) {
            completionHandler(nil)
        }
    }

    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.timeoutIntervalForRequest = 30
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }()
}
