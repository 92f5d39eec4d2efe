import GatehouseService
import HTTPTypes
import Testing

@testable import GatehouseHTTP

@Suite("nginx mail proxy exchange, without a node")
struct MailProxyExchangeTests {
    static func headers(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return fields
    }

    static let base: [(String, String)] = [
        ("Auth-Method", "plain"), ("Auth-User", "kate@example.org"), ("Auth-Pass", "abcd%20efgh"),
        ("Auth-Protocol", "pop3"), ("Auth-Login-Attempt", "3"), ("Client-IP", "2001:db8::7"),
    ]

    @Test("a request as nginx sends it: escapes undone, protocol, attempt and address read")
    func reads() throws {
        let request = try MailProxyRequest(Self.headers(Self.base))
        #expect(request.method == .plain && request.service == .pop3 && request.attempt == 3)
        #expect(request.login == "kate@example.org" && request.password == "abcd efgh" && request.clientIP == "2001:db8::7")
        #expect(MailProxyRequest.unescape("p%25ss+w%C3%B6rd", limit: 64) == "p%ss+wörd")
    }

    @Test("malformed: broken escapes, NUL, invalid UTF-8, too long, repeated or missing headers, unknown values")
    func malformed() {
        #expect(MailProxyRequest.unescape("50%", limit: 64) == nil)
        #expect(MailProxyRequest.unescape("%zz", limit: 64) == nil)
        #expect(MailProxyRequest.unescape("a%00b", limit: 64) == nil)
        #expect(MailProxyRequest.unescape("%FF%FE", limit: 64) == nil)
        #expect(MailProxyRequest.unescape(String(repeating: "a", count: 65), limit: 64) == nil)
        #expect(MailProxyRequest.unescape(String(repeating: "%41", count: 64), limit: 64) == String(repeating: "A", count: 64))
        let cases: [[(String, String)]] = [
            Self.base.filter { $0.0 != "Auth-Protocol" },
            Self.base.filter { $0.0 != "Auth-User" },
            Self.base + [("Auth-Pass", "second")],
            Self.base.map { $0.0 == "Auth-Method" ? ($0.0, "gssapi") : $0 },
            Self.base.map { $0.0 == "Auth-Login-Attempt" ? ($0.0, "0") : $0 },
            Self.base.map { $0.0 == "Client-IP" ? ($0.0, "mail.example.org") : $0 },
        ]
        for pairs in cases {
            #expect(throws: MailProxyRequest.Malformed.self, "\(pairs)") { try MailProxyRequest(Self.headers(pairs)) }
        }
        // `none` (SMTP without AUTH) carries no user or password.
        #expect(throws: Never.self) {
            try MailProxyRequest(Self.headers([("Auth-Method", "none"), ("Auth-Protocol", "smtp")]))
        }
    }

    @Test("answers: Auth-Wait only while the connection has attempts left, SMTP codes, durations in words")
    func answers() {
        let wait = MailProxyAnswer.refused(.notAnAppPassword, service: .imap, wait: 4, attempt: 9)
        #expect(wait[MailProxyRequest.Header.wait] == "4" && wait[MailProxyRequest.Header.errorCode] == nil)
        let last = MailProxyAnswer.refused(.notAnAppPassword, service: .imap, wait: 4, attempt: 10)
        #expect(last[MailProxyRequest.Header.wait] == nil)
        #expect(wait[MailProxyRequest.Header.status]?.hasPrefix("[AUTHENTICATIONFAILED] Two-step verification is on") == true)
        let pop = MailProxyAnswer.refused(.temporaryFailure, service: .pop3, wait: 5, attempt: 1)
        #expect(pop[MailProxyRequest.Header.status] == "[SYS/TEMP] Temporary authentication failure: try again later")
        let smtp = MailProxyAnswer.refused(.throttled(seconds: 840), service: .smtp, wait: 30, attempt: 1)
        #expect(smtp[MailProxyRequest.Header.status] == "Too many failed logins from your address: try again in 14 minutes")
        #expect(smtp[MailProxyRequest.Header.errorCode] == "454 4.7.0")
        #expect(MailProxyAnswer.Refusal.throttled(seconds: 1).text.hasSuffix("1 second"))
        let server = GatehouseConfiguration.MailBackend.Server("[2001:db8::1]:993")
        #expect(server?.address == "2001:db8::1" && server?.port == 993)
        #expect(GatehouseConfiguration.MailBackend.Server("imap.example.org:143") == nil)
        #expect(GatehouseConfiguration.MailBackend.Server("127.0.0.1:0") == nil)
        let ok = MailProxyAnswer.accepted(server: server!, backendLogin: nil)
        #expect(ok.fields.map(\.value) == ["OK", "2001:db8::1", "993"])
    }
}
