import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseService
import HTTPTypes
import Hummingbird
import NIOCore

/// The cookies the pages use. `gatehouse_session` is the one `GET /v1/auth` reads (nginx passes
/// the browser's cookies to the `auth_request`); the others never leave `/account`.
enum CookieName {
    /// The session token (Path=/, SameSite=Lax so a link from a mail opens the webmail signed in).
    static let session = "gatehouse_session"
    /// The remember-this-device token (Path=/account, SameSite=Strict).
    static let remember = "gatehouse_remember"
    /// The sign-in or enrolment challenge between the hand-off and the second step.
    static let challenge = "gatehouse_challenge"
    /// Where the browser goes after the second step (checked against the allow-list on use).
    static let returnTo = "gatehouse_return"
    /// The random value the forms' CSRF tokens are bound to.
    static let csrf = "gatehouse_csrf"
}

/// Cookie, CSRF, form and response plumbing shared by every page.
struct PageKit: Sendable {
    let gatehouse: Gatehouse
    let templates: PageTemplates

    var secureCookies: Bool { gatehouse.configuration.web.secureCookies }

    // MARK: Cookies

    func cookie(_ name: String, _ value: String, maxAge: Int?, path: String = "/account", sameSite: Cookie.SameSite = .strict) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: secureCookies, httpOnly: true, sameSite: sameSite)
    }

    /// A cookie that deletes `name` at `path`.
    func expired(_ name: String, path: String = "/account") -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: path, secure: secureCookies, httpOnly: true, sameSite: .strict)
    }

    /// The session cookie for `session` (lives as long as the session).
    func sessionCookie(_ session: IssuedSession) -> Cookie {
        cookie(CookieName.session, session.token, maxAge: max(0, Int(session.expiresAt - gatehouse.now)), path: "/", sameSite: .lax)
    }

    func rememberCookie(_ remember: IssuedRemember) -> Cookie {
        cookie(CookieName.remember, remember.token, maxAge: max(0, Int(remember.expiresAt - gatehouse.now)))
    }

    static func value(_ request: Request, _ name: String) -> String? {
        guard let value = request.cookies[name]?.value, !value.isEmpty, value.utf8.count <= TokenAuthority.maximumTokenLength else { return nil }
        return value
    }

    // MARK: CSRF

    static let csrfLabel = "gatehouse/v1/csrf"

    /// The form token for this browser: HMAC of its `gatehouse_csrf` cookie under a key derived
    /// from the keyring. Returns the cookie to set when the browser has none yet.
    func csrf(for request: Request) -> (token: String, newCookie: Cookie?) {
        if let binding = Self.value(request, CookieName.csrf), binding.utf8.count == 22, let key = gatehouse.tokens.keys.keyring.derivedKeys(label: Self.csrfLabel).first {
            return (Base64URL.encode(key.authenticationCode(for: Array(binding.utf8))), nil)
        }
        let binding = (try? SystemRandom().bytes(16)).map { Base64URL.encode($0) } ?? UUID().uuidString
        let key = gatehouse.tokens.keys.keyring.derivedKeys(label: Self.csrfLabel).first
        let token = key.map { Base64URL.encode($0.authenticationCode(for: Array(binding.utf8))) } ?? ""
        return (token, cookie(CookieName.csrf, binding, maxAge: nil, path: "/", sameSite: .strict))
    }

    /// Whether `form`'s `csrf` field belongs to this browser's cookie (constant-time).
    func csrfValid(_ request: Request, _ form: Form) -> Bool {
        guard let binding = Self.value(request, CookieName.csrf), let sent = form["csrf"], let mac = Base64URL.decode(sent) else { return false }
        for key in gatehouse.tokens.keys.keyring.derivedKeys(label: Self.csrfLabel) {
            let expected = key.authenticationCode(for: Array(binding.utf8))
            if ConstantTime.equals(expected, mac) { return true }
        }
        return false
    }

    // MARK: Forms

    /// Reads a posted form (`application/x-www-form-urlencoded`, at most 16 KiB and 64 fields).
    func form(_ request: Request) async throws(PageError) -> Form {
        var request = request
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            throw PageError(.invalidRequest, "This page expects a form.")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: 16 * 1024) } catch {
            throw PageError(.invalidRequest, "The form is too large.")
        }
        guard let form = Form(String(buffer: buffer)) else { throw PageError(.invalidRequest, "The form could not be read.") }
        return form
    }

    /// Reads a posted form, checks its CSRF token, and only then calls `handle`: a form that is
    /// unreadable or not from this browser's page gets its error page and changes nothing.
    ///
    /// `json: true` is for the posts a page's script makes (`fetch`): a refusal then answers as
    /// ``jsonError(_:cookies:)``, which the script can show, instead of an HTML page.
    func posted(_ request: Request, back: String? = nil, json: Bool = false, _ handle: (Form) async -> Response) async -> Response {
        let form: Form
        do { form = try await self.form(request) } catch { return json ? jsonError(error) : errorPage(error, back: back) }
        guard csrfValid(request, form) else { return json ? jsonError(.csrf) : errorPage(.csrf, back: back) }
        return await handle(form)
    }

    // MARK: Responses

    /// Headers every page carries: no caching (pages show secrets and codes), a strict CSP with
    /// no inline script, no framing, no referrer (URLs may carry a ticket).
    static func pageHeaders(formTargets: [String]) -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.cacheControl] = "no-store"
        fields[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'\(formTargets.map { " " + $0 }.joined()); frame-ancestors 'none'; base-uri 'none'"
        fields[HTTPField.Name("X-Frame-Options")!] = "DENY"
        fields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        fields[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return fields
    }

    /// The origins a form on these pages may post or be redirected to: the configured return
    /// addresses and the password-reset page (CSP `form-action` covers redirects after a post).
    var formTargets: [String] {
        let web = gatehouse.configuration.web
        var origins = web.returnURLs.compactMap(\.origin)
        if let reset = web.passwordResetURL, let origin = ReturnURL(reset, prefix: false)?.origin { origins.append(origin) }
        return Array(Set(origins)).sorted()
    }

    /// Renders `template` with `values` (plus the layout's own) as an HTML page.
    func page(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok, cookies: [Cookie] = []) -> Response {
        var values = values
        values["issuer"] = gatehouse.configuration.issuer
        values["demo"] = gatehouse.configuration.web.demo ?? false
        let html = templates.render(template, values)
        var response = Response(status: status, headers: Self.pageHeaders(formTargets: formTargets), body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// A 303 to `location` (after a post, or on to the next step).
    func redirect(_ location: String, cookies: [Cookie] = []) -> Response {
        var headers = Self.pageHeaders(formTargets: formTargets)
        headers[.location] = location
        var response = Response(status: .seeOther, headers: headers)
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// A JSON answer for a page's script: `text` is already JSON (an object). No caching, and
    /// the page headers, so that it is never framed or sniffed as something else.
    func json(_ text: String, status: HTTPResponse.Status = .ok, cookies: [Cookie] = []) -> Response {
        var headers = Self.pageHeaders(formTargets: [])
        headers[.contentType] = "application/json; charset=utf-8"
        var response = Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// `{"error": message, "code": code}` with the error's status: the same words the page would
    /// show, for the script to put on the page.
    func jsonError(_ error: PageError, cookies: [Cookie] = []) -> Response {
        let object = ["error": error.message, "code": error.code.name]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return json(String(decoding: data, as: UTF8.self), status: error.status, cookies: cookies)
    }

    /// A page telling the person what went wrong, in words, with the code for support.
    func errorPage(_ error: PageError, cookies: [Cookie] = [], back: String? = nil) -> Response {
        page("message", [
            "title": error.title, "message": error.message, "code": error.code.name, "isError": true,
            "back": back as Any,
        ], status: error.status, cookies: cookies)
    }
}

/// A posted form's fields (the first value of each name; checkboxes repeat for lists).
struct Form: Sendable {
    private(set) var fields: [(String, String)] = []

    init?(_ body: String) {
        guard !body.isEmpty else { return }
        let pairs = body.split(separator: "&", omittingEmptySubsequences: true)
        guard pairs.count <= 64 else { return nil }
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]) else { return nil }
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            guard let value else { return nil }
            fields.append((name, value))
        }
    }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    subscript(_ name: String) -> String? { fields.first(where: { $0.0 == name })?.1 }

    func all(_ name: String) -> [String] { fields.filter { $0.0 == name }.map(\.1) }
}
