import Foundation
import GatehouseTesting
import Testing

/// One way to read a request, on every path: the same table of header cases, sent over raw
/// sockets to `GET /v1/auth` answered on the event loop, to `GET /v1/auth` answered by the
/// responder (behind a request Hummingbird has), and to a route (`GET /v1/me`), must get the same
/// decision on each.
@Suite("Reading a request the same way on every path", .timeLimit(.minutes(2)))
struct RequestReadingTests {
    /// Where a case is sent, with which key.
    enum Path: String, CaseIterable {
        case fastAuth = "/v1/auth on the event loop"
        case responderAuth = "/v1/auth by the responder"
        case route = "GET /v1/me"

        var keyScope: String { self == .route ? "frontend" : "verify" }
        var accepted: Int { self == .route ? 200 : 204 }

        /// The raw request: `fields` (already `Name: value` lines), `Connection: close`.
        func request(_ fields: [String], host: [String] = ["Host: t"], version: String = "HTTP/1.1") -> String {
            let target = self == .route ? "/v1/me" : "/v1/auth"
            let head = "GET \(target) \(version)\r\n" + (host + fields).map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n"
            // An absolute-form target goes to Hummingbird, and so does everything behind it.
            return self == .responderAuth ? "GET http://t/healthz HTTP/1.1\r\nHost: t\r\n\r\n" + head : head
        }

        /// The answer to the case (the second one behind the absolute-form request).
        func answer(port: Int, _ request: String) async throws -> FastPathTests.Answer? {
            let answers = try FastPathTests.answers(try await RawHTTP.exchange(port: port, request))
            return self == .responderAuth ? (answers.count == 2 ? answers[1] : nil) : answers.first
        }
    }

    /// A case: the fields to send for key `k` and session token `t`, and whether they present both.
    struct Case: CustomStringConvertible, Sendable {
        var description: String
        var fields: @Sendable (_ k: String, _ t: String) -> [String]
        var accepted: Bool
    }

    static let cases: [Case] = [
        Case(description: "one of each", fields: { k, t in ["Authorization: Bearer \(k)", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "scheme in lower case", fields: { k, t in ["Authorization: bearer \(k)", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "scheme in upper case", fields: { k, t in ["Authorization: BEARER \(k)", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "trailing space after the key", fields: { k, t in ["Authorization: Bearer \(k) ", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "trailing tab after the key", fields: { k, t in ["Authorization: Bearer \(k)\t", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "two spaces after the scheme", fields: { k, t in ["Authorization: Bearer  \(k)", "Gatehouse-Session: \(t)"] }, accepted: true),
        Case(description: "trailing space after the token", fields: { k, t in ["Authorization: Bearer \(k)", "Gatehouse-Session: \(t) "] }, accepted: true),
        Case(description: "session from the cookie", fields: { k, t in ["Authorization: Bearer \(k)", "Cookie: lang=en; gatehouse_session=\(t)"] }, accepted: true),
        Case(description: "session cookie in a second Cookie field", fields: { k, t in ["Authorization: Bearer \(k)", "Cookie: lang=en", "Cookie: gatehouse_session=\(t)"] }, accepted: true),
        Case(description: "two Authorization fields", fields: { k, t in ["Authorization: Bearer \(k)", "Authorization: Bearer \(k)", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "two Gatehouse-Session fields", fields: { k, t in ["Authorization: Bearer \(k)", "Gatehouse-Session: \(t)", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "another scheme", fields: { k, t in ["Authorization: Basic \(k)", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "no space after the scheme", fields: { k, t in ["Authorization: Bearer\(k)", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "scheme without a key", fields: { _, t in ["Authorization: Bearer", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "a key with a space inside", fields: { k, t in ["Authorization: Bearer \(k) x", "Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "no key", fields: { _, t in ["Gatehouse-Session: \(t)"] }, accepted: false),
        Case(description: "an empty Gatehouse-Session", fields: { k, _ in ["Authorization: Bearer \(k)", "Gatehouse-Session: "] }, accepted: false),
        Case(description: "the header, not the cookie, when both come", fields: { k, t in ["Authorization: Bearer \(k)", "Gatehouse-Session: x\(t)", "Cookie: gatehouse_session=\(t)"] }, accepted: false),
        Case(description: "no session", fields: { k, _ in ["Authorization: Bearer \(k)"] }, accepted: false),
    ]

    @Test("the same header cases get the same decision on every path")
    func headerCases() async throws {
        try await Deployment.with { d in
            let port = d.node.baseURL.port!
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            for path in Path.allCases {
                let key = Deployment.keys[path.keyScope]!
                for c in Self.cases {
                    let answer = try await path.answer(port: port, path.request(c.fields(key, token)))
                    #expect(answer?.status == (c.accepted ? path.accepted : 401), "\(c) on \(path.rawValue): \(answer.map(String.init(describing:)) ?? "no answer")")
                }
            }
        }
    }

    @Test("HTTP/1.1 without exactly one Host: 400; an expectation other than 100-continue: 417; both closed, on every path")
    func headRules() async throws {
        try await Deployment.with { d in
            let port = d.node.baseURL.port!
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            for path in Path.allCases {
                let fields = ["Authorization: Bearer \(Deployment.keys[path.keyScope]!)", "Gatehouse-Session: \(token)"]
                let refusals: [(String, String, Int)] = [
                    ("no Host", path.request(fields, host: []), 400),
                    ("two Host fields", path.request(fields, host: ["Host: t", "Host: u"]), 400),
                    ("Expect: 200-ok", path.request(fields + ["Expect: 200-ok"]), 417),
                ]
                for (name, request, status) in refusals {
                    let text = try await RawHTTP.exchange(port: port, request)
                    let answers = try FastPathTests.answers(text)
                    // Behind the absolute-form request, that one is answered first.
                    let answer = path == .responderAuth ? answers.dropFirst().first : answers.first
                    #expect(answer?.status == status, "\(name) on \(path.rawValue): \(text)")
                    #expect(answer?.headers["connection"] == "close", "\(name) on \(path.rawValue): \(text)")
                    #expect(answer?.body.contains("\"code\":\"invalid_request\"") == true, "\(name) on \(path.rawValue): \(text)")
                    #expect(answers.count == (path == .responderAuth ? 2 : 1), "nothing after the refusal: \(text)")
                }
                // HTTP/1.0 may leave Host out, and its Expect: 100-continue is ignored.
                let old = try await path.answer(port: port, path.request(fields + ["Expect: 100-continue"], host: [], version: "HTTP/1.0"))
                #expect(old?.status == path.accepted, "HTTP/1.0 on \(path.rawValue): \(old.map(String.init(describing:)) ?? "no answer")")
            }
        }
    }
}
