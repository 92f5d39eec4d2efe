import Foundation
import GatehouseRedis
import GatehouseTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Requests are answered inside the channel pipeline, past Hummingbird's request machinery:
/// `GET /v1/auth` synchronously, the rest directly through the same responder. These
/// check over raw sockets that the fast paths keep HTTP/1.1's rules — answers in request order
/// when requests are pipelined (behind a slow one, behind one that Hummingbird takes), keep-alive
/// and `Connection: close`, HTTP/1.0, chunked and oversized bodies.
@Suite("Channel fast paths on the wire", .timeLimit(.minutes(2)))
struct FastPathTests {
    @Test("pipelined requests are answered in order, the fast one behind a routed one")
    func pipelinedOrder() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let verify = Deployment.keys["verify"]!
            let body = "{\"token\":\"\(token)\"}"
            let request =
                "POST /v1/sessions/verify HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nGatehouse-Session: \(token)\r\n\r\n"
                + "GET /v1/auth HTTP/1.1\r\nHost: t\r\nGatehouse-Session: \(token)\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            let text = try await RawHTTP.exchange(port: d.node.baseURL.port!, request)
            // Status lines in order (a body has no line end, so the next status line follows it).
            // ("\r\n" is one Character, so dropLast() removes the line end.)
            let statusLines = text.matches(of: /HTTP\/1\.1 [0-9]{3} [A-Za-z ]+?\r\n/).map { String(text[$0.range].dropLast()) }
            #expect(statusLines == ["HTTP/1.1 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 401 Unauthorized", "HTTP/1.1 200 OK"], "\(text)")
            // The 204 carries the session's user; the verify answer came first.
            let verifyAt = try #require(text.range(of: "\"session_id\""))
            let userAt = try #require(text.range(of: "Gatehouse-User: \(user)"))
            #expect(verifyAt.lowerBound < userAt.lowerBound)
            #expect(text.hasSuffix("{\"status\":\"ok\"}"), "the connection closed after the last answer: \(text)")
        }
    }

    @Test("HEAD through Hummingbird after requests answered here: its answer has a length but no body, and the answers after it are framed right")
    func headAfterFastAnswers() async throws {
        try await Deployment.with { d in
            let request = "GET /v1/auth HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                + "HEAD /v1/no-such-thing HTTP/1.1\r\nHost: t\r\n\r\n"
                + "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            let text = try await RawHTTP.exchange(port: d.node.baseURL.port!, request)
            let answers = try Self.answers(text, heads: [2, 3])
            // The API has no HEAD routes: both are 404 problems, whose bodies are not sent.
            #expect(answers.map(\.status) == [401, 200, 404, 404, 200], "\(text)")
            #expect(answers.count == 5 && answers[2].body.isEmpty && answers[3].body.isEmpty, "\(text)")
            #expect(answers.count == 5 && Int(answers[3].headers["content-length"] ?? "") ?? 0 > 0, "the length a GET would get: \(text)")
            #expect(answers.last?.body == "{\"status\":\"ok\"}", "\(text)")
        }
    }

    @Test("keep-alive holds across answers; Connection: close and HTTP/1.0 close after the answer")
    func connectionHandling() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let verify = Deployment.keys["verify"]!
            let port = d.node.baseURL.port!
            // Two answers on one connection (a 401 does not close it), then close on request.
            let twice = try await RawHTTP.exchange(port: port,
                "GET /v1/auth HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nGatehouse-Session: \(token)\r\nConnection: close\r\n\r\n")
            #expect(twice.hasPrefix("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"), "\(twice)")
            #expect(twice.contains("HTTP/1.1 204 No Content\r\nGatehouse-User: \(user)\r\n"), "\(twice)")
            #expect(twice.contains("Connection: close\r\n"), "\(twice)")
            // HTTP/1.0 without keep-alive: answered, then closed by the server (the exchange
            // returns only when the server closes).
            let old = try await RawHTTP.exchange(port: port,
                "GET /v1/auth HTTP/1.0\r\nAuthorization: Bearer \(verify)\r\nGatehouse-Session: \(token)\r\n\r\n")
            #expect(old.hasPrefix("HTTP/1.1 204 No Content\r\n"), "\(old)")
            #expect(old.contains("Connection: close\r\n"), "\(old)")
            // Every answer carries an IMF-fixdate Date (RFC 9110 §6.6.1), like the routed ones.
            let date = try #require(old.firstMatch(of: /\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\r\n/), "\(old)")
            let parser = DateFormatter()
            parser.locale = Locale(identifier: "en_US_POSIX")
            parser.timeZone = TimeZone(identifier: "GMT")
            parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            let stamp = String(old[date.range].dropFirst().dropLast().dropFirst("Date: ".count))
            let when = try #require(parser.date(from: stamp), "\(stamp)")
            #expect(abs(when.timeIntervalSinceNow) < 60)
            // Keys change between requests on one connection (the node remembers the last valid
            // one per connection): each request is judged by its own key.
            let admin = Deployment.keys["admin"]!
            let mixed = try await RawHTTP.exchange(port: port,
                ["Bearer \(verify)", "Bearer \(admin)", "Bearer x\(verify)", "Bearer \(verify)"].enumerated().map { index, value in
                    "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: \(value)\r\nGatehouse-Session: \(token)\r\n\(index == 3 ? "Connection: close\r\n" : "")\r\n"
                }.joined())
            let mixedStatuses = mixed.matches(of: /HTTP\/1\.1 ([0-9]{3})/).map { String($0.output.1) }
            #expect(mixedStatuses == ["204", "403", "401", "204"], "\(mixed)")
            // The session in a second Cookie field counts, as through the router.
            let cookies = try await RawHTTP.exchange(port: port,
                "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nCookie: a=b\r\nCookie: gatehouse_session=\(token)\r\nConnection: close\r\n\r\n")
            #expect(cookies.hasPrefix("HTTP/1.1 204 No Content\r\n"), "\(cookies)")
            // A wrong scope is 403, an admin key is not a verify key.
            let forbidden = try await RawHTTP.exchange(port: port,
                "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(admin)\r\nGatehouse-Session: \(token)\r\nConnection: close\r\n\r\n")
            #expect(forbidden.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "\(forbidden)")
            d.expectLogsClean(of: [token, verify])
        }
    }

    @Test("a close option closes whatever else Connection says, on HTTP/1.0 too (caught by the fastpath fuzz target)", arguments: [
        "HTTP/1.0\r\nConnection: keep-alive, close", "HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive", "HTTP/1.1\r\nConnection: Keep-Alive, Close",
    ])
    func closeOption(versionAndConnection: String) async throws {
        try await Deployment.with { d in
            // The exchange returns only when the server closes the connection (10 s at most).
            let answer = try await RawHTTP.exchange(port: d.node.baseURL.port!, "GET /v1/auth \(versionAndConnection)\r\nHost: t\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"), "\(answer)")
            #expect(answer.contains("Connection: close\r\n") && !answer.contains("keep-alive"), "\(answer)")
            let direct = try await RawHTTP.exchange(port: d.node.baseURL.port!, "GET /healthz \(versionAndConnection)\r\nHost: t\r\n\r\n")
            #expect(direct.hasPrefix("HTTP/1.1 200 OK\r\n") && direct.contains("Connection: close\r\n") && !direct.contains("keep-alive"), "\(direct)")
        }
    }
}

extension FastPathTests {
    @Test("direct answers: pipelined in order with requests Hummingbird takes (the import), status lines, headers and lengths")
    func directPipelining() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let admin = Deployment.keys["admin"]!, frontend = Deployment.keys["frontend"]!, verify = Deployment.keys["verify"]!
            let newUser = "piped-\(UUID().uuidString.prefix(8).lowercased())@example.org"
            func post(_ path: String, _ key: String, _ body: String, close: Bool = false) -> String {
                "POST \(path) HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                    + (close ? "Connection: close\r\n" : "") + "\r\n" + body
            }
            let port = d.node.baseURL.port!
            // Direct requests first: each one behind a direct one waits for it (held, then
            // replayed), the fast /v1/auth too; then the import, which goes to Hummingbird
            // (streamed body), and a request behind it, which must wait for its answer.
            let text = try await RawHTTP.exchange(port: port,
                post("/v1/login/start", frontend, "{\"user\":\"\(user)\"}")
                + "GET /v1/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\n\r\n"
                + post("/v1/sessions/verify", verify, "{\"token\":\"\(token)\"}")
                + post("/v1/sessions/verify", verify, "{\"token\":1}")
                + "DELETE /v1/me/devices HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(frontend)\r\nGatehouse-Session: \(token)\r\n\r\n"
                + post("/v1/users/import", admin, "{\"user\":\"\(newUser)\",\"totp_secret\":\"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"}\n")
                + post("/v1/login/start", frontend, "{\"user\":\"\(newUser)\"}")
                + "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let answers = try Self.answers(text)
            #expect(answers.map(\.status) == [200, 401, 200, 400, 204, 200, 200, 200], "\(text)")
            guard answers.count == 8 else { return }
            #expect(answers[0].body.contains("\"status\":\"second_step\""), "\(answers[0].body)")
            #expect(answers[2].body.contains("\"user\":\"\(user)\""), "\(answers[2].body)")
            #expect(answers[3].headers["content-type"] == "application/problem+json")
            #expect(answers[3].body.contains("\"code\":\"invalid_request\""), "\(answers[3].body)")
            #expect(answers[5].body.contains("\"imported\":1"), "\(answers[5].body)")
            // login/start for the user imported just before: the import was answered first.
            #expect(answers[6].body.contains("\"status\":\"second_step\""), "\(answers[6].body)")
            for answer in answers where answer.status != 204 {
                #expect(answer.headers["content-length"] == String(answer.body.utf8.count), "\(answer)")
            }
            #expect(answers[4].headers["content-length"] == nil && answers[4].body.isEmpty, "a 204 has no body: \(answers[4])")
            for answer in answers { #expect(answer.headers["date"]?.hasSuffix(" GMT") == true, "\(answer)") }
            #expect(answers[2].headers["cache-control"] == "no-store")
            d.expectLogsClean(of: [token, secret, admin, frontend, verify])
        }
    }

    @Test("direct answers: chunked and oversized bodies, HTTP/1.0, the connection survives a 400")
    func directBodies() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            let verify = Deployment.keys["verify"]!, frontend = Deployment.keys["frontend"]!
            let port = d.node.baseURL.port!
            // A chunked body in two chunks, then a body over 64 KiB (400, nothing else read
            // into it), then a normal request on the same connection.
            let first = "{\"token\":\"", second = "\(token)\"}"
            let huge = "{\"user\":\"" + String(repeating: "a", count: 70_000) + "@example.org\"}"
            let text = try await RawHTTP.exchange(port: port,
                "POST /v1/sessions/verify HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(first.utf8.count, radix: 16) + "\r\n" + first + "\r\n" + String(second.utf8.count, radix: 16) + "\r\n" + second + "\r\n0\r\n\r\n"
                + "POST /v1/login/start HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(frontend)\r\nContent-Length: \(huge.utf8.count)\r\n\r\n" + huge
                + "POST /v1/sessions/verify HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(verify)\r\nContent-Length: \(first.utf8.count + second.utf8.count)\r\nConnection: close\r\n\r\n" + first + second)
            let answers = try Self.answers(text)
            #expect(answers.map(\.status) == [200, 400, 200], "\(text.prefix(2000))")
            guard answers.count == 3 else { return }
            #expect(answers[0].body.contains("\"user\":\"\(user)\""))
            #expect(answers[1].body.contains("larger than 64 KiB"), "\(answers[1].body)")
            #expect(answers[2].headers["connection"] == "close", "\(answers[2])")
            // HTTP/1.0: answered with Connection: close and closed (the exchange ends on close).
            let old = try await RawHTTP.exchange(port: port,
                "POST /v1/sessions/verify HTTP/1.0\r\nAuthorization: Bearer \(verify)\r\nContent-Length: \(first.utf8.count + second.utf8.count)\r\n\r\n" + first + second)
            let oldAnswers = try Self.answers(old)
            #expect(oldAnswers.map(\.status) == [200] && oldAnswers.first?.headers["connection"] == "close", "\(old)")
            d.expectLogsClean(of: [token, secret, verify, frontend])
        }
    }

    @Test("Expect: 100-continue: 100 Continue comes before the body is sent, then the answer")
    func continueBeforeTheBody() async throws {
        try await Deployment.with { d in
            let port = d.node.baseURL.port!, mail = Deployment.keys["mail"]!
            let body = #"{"user":"nobody@example.org","password":"x","service":"imap"}"#
            let head = "POST /v1/mail/authenticate HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(mail)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
            let (interim, answer) = try await RawHTTP.continueExchange(port: port, head: head, body: body)
            #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n", "before the body: \(interim)")
            let answers = try Self.answers(answer)
            #expect(answers.map(\.status) == [200] && answers.first?.body == #"{"result":"use_primary"}"#, "\(answer)")
        }
    }

    @Test("nothing after a Connection: close answer is answered; a graceful shutdown (SIGTERM) waits for a direct answer in flight")
    func closeAndShutdown() async throws {
        // A real process: the test sends it SIGTERM.
        try await Deployment.with(processes: true) { d in
            let frontend = Deployment.keys["frontend"]!
            let port = d.node.baseURL.port!
            // RFC 9112 §9.6: the server reads nothing after a request with Connection: close.
            let afterAuth = try await RawHTTP.exchange(port: port,
                "GET /v1/auth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try Self.answers(afterAuth).map(\.status) == [401], "\(afterAuth)")
            let afterDirect = try await RawHTTP.exchange(port: port,
                "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /v1/auth HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try Self.answers(afterDirect).map(\.status) == [200], "\(afterDirect)")

            // A login/start held up by a paused Redis (it answers 503 at the command timeout),
            // and SIGTERM while it waits: the connection is not closed under it.
            let (user, _) = try await d.enrolledUser()
            try d.redis.pause()
            let body = "{\"user\":\"\(user)\"}"
            async let pending = RawHTTP.exchange(port: port,
                "POST /v1/login/start HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(frontend)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            try await Task.sleep(for: .milliseconds(500))
            let node = try #require(d.node as? GatehouseNodeProcess)
            let stopping = Task { await node.stop() }  // SIGTERM, then waits for the exit
            let text = try await pending
            try d.redis.resume()
            let answers = try Self.answers(text)
            #expect(answers.count == 1 && [200, 503].contains(answers.first?.status ?? 0), "no answer before the close: \(text)")
            await stopping.value
        }
    }

    @Test("POST /v1/mail/authenticate on the event loop: the route's answers, pipelined in order; a missing or wrong key and a bad body still go to the responder; a flushed script cache is reloaded")
    func mailAuthenticate() async throws {
        try await Deployment.with { d in
            let user = "fast-mail-\(UUID().uuidString.prefix(8).lowercased())@example.org"
            let e = try await AccountFeatureTests.enrolThroughAPI(d, user)
            let mail = Deployment.keys["mail"]!, frontend = Deployment.keys["frontend"]!
            let port = d.node.baseURL.port!
            func post(_ key: String?, _ body: String, close: Bool = false) -> String {
                "POST /v1/mail/authenticate HTTP/1.1\r\nHost: t\r\n" + (key.map { "Authorization: Bearer \($0)\r\n" } ?? "")
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n" + body
            }
            let good = "{\"user\":\"\(user)\",\"password\":\"\(e.appPassword)\",\"service\":\"imap\",\"client_ip\":\"192.0.2.7\"}"
            let wrong = "{\"user\":\"\(user)\",\"password\":\"not-it\",\"service\":\"imap\",\"client_ip\":\"192.0.2.7\"}"
            let plain = #"{"user":"nobody-fast@example.org","password":"x","service":"pop3"}"#
            let text = try await RawHTTP.exchange(port: port,
                post(mail, good)
                + post(mail, wrong)
                + post(frontend, good)
                + post(nil, good)
                + post(mail, #"{"user":"a@example.org","password":"x","service":"imap","extra":1}"#)
                + post(mail, plain)
                + "GET /v1/auth HTTP/1.1\r\nHost: t\r\n\r\n"
                + post(mail, good, close: true))
            let answers = try Self.answers(text)
            #expect(answers.map(\.status) == [200, 401, 403, 401, 400, 200, 401, 200], "\(text)")
            guard answers.count == 8 else { return }
            #expect(answers[0].body.hasPrefix(#"{"app_password_id":""#) && answers[0].body.hasSuffix(#"","result":"ok"}"#), "\(answers[0].body)")
            #expect(answers[0].headers["content-type"] == "application/json" && answers[0].headers["cache-control"] == "no-store", "\(answers[0])")
            #expect(answers[1].headers["content-type"] == "application/problem+json" && answers[1].body.contains(#""code":"denied""#), "\(answers[1])")
            #expect(answers[1].body.contains("not an app password of this user for imap"), "\(answers[1].body)")
            #expect(answers[2].body.contains(#""code":"forbidden""#) && answers[3].body.contains(#""code":"unauthorized""#), "\(answers[2]) \(answers[3])")
            #expect(answers[4].body.contains(#""code":"invalid_request""#), "\(answers[4].body)")
            #expect(answers[5].body == #"{"result":"use_primary"}"#, "\(answers[5].body)")
            #expect(answers[7].headers["connection"] == "close", "\(answers[7])")
            for answer in answers {
                #expect(answer.headers["content-length"] == String(answer.body.utf8.count) && answer.headers["date"]?.hasSuffix(" GMT") == true, "\(answer)")
            }
            // The first use from 192.0.2.7 was recorded (a security event written before the answer).
            let events = try await d.call("GET", "/v1/me/events", headers: ["Gatehouse-Session": e.token])
            let used = (events["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "app_password_used" }
            #expect(used.contains { $0["client_ip"] as? String == "192.0.2.7" }, "\(events.json)")
            // Redis forgot its scripts: the check loads it again and answers as before.
            _ = try await d.client.send(["SCRIPT", "FLUSH"])
            let again = try Self.answers(try await RawHTTP.exchange(port: port, post(mail, good, close: true)))
            #expect(again.map(\.status) == [200] && again.first?.body.contains(#""result":"ok""#) == true, "\(again)")
            d.expectLogsClean(of: [e.appPassword, mail, frontend])
        }
    }

    @Test("a mail check held up by a paused Redis: answered 503 at the command timeout, and a graceful shutdown (SIGTERM) waits for that answer")
    func mailAuthenticateInFlight() async throws {
        try await Deployment.with(processes: true) { d in
            let port = d.node.baseURL.port!, mail = Deployment.keys["mail"]!
            // Any user: with Redis paused the script never runs.
            let body = #"{"user":"paused@example.org","password":"x","service":"pop3"}"#
            let before = try Self.answers(try await RawHTTP.exchange(port: port,
                "POST /v1/mail/authenticate HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(mail)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body))
            #expect(before.map(\.status) == [200], "\(before)")
            try d.redis.pause()
            async let pending = RawHTTP.exchange(port: port,
                "POST /v1/mail/authenticate HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(mail)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            try await Task.sleep(for: .milliseconds(500))
            let node = try #require(d.node as? GatehouseNodeProcess)
            let stopping = Task { await node.stop() }
            let text = try await pending
            try d.redis.resume()
            let answers = try Self.answers(text)
            #expect(answers.count == 1, "no answer before the close: \(text)")
            if let answer = answers.first {
                #expect(answer.status == 503 && answer.headers["retry-after"] != nil && answer.body.contains(#""code":"unavailable""#), "\(answer)")
            }
            await stopping.value
        }
    }

    @Test("a head of 999 header fields is read; one of 1,001 is refused with 400 and the connection is closed")
    func headerFieldCount() async throws {
        try await Deployment.with { d in
            let port = d.node.baseURL.port!
            // `fields` fields in all: Host, fillers and Connection.
            func request(fields: Int, close: Bool) -> String {
                "GET /healthz HTTP/1.1\r\nHost: t\r\n" + (0..<(fields - 2)).map { "X-Filler-\($0): v\r\n" }.joined()
                    + "Connection: \(close ? "close" : "keep-alive")\r\n\r\n"
            }
            let within = try Self.answers(try await RawHTTP.exchange(port: port, request(fields: 999, close: true)))
            #expect(within.map(\.status) == [200], "\(within)")
            // Refused by the HTTP/1 decoder: Hummingbird answers 400 with Connection: close and
            // closes (the exchange ends only when the node closes; keep-alive was asked for).
            let beyond = try await RawHTTP.exchange(port: port, request(fields: 1001, close: false))
            let refused = try Self.answers(beyond)
            #expect(refused.map(\.status) == [400], "\(beyond)")
            #expect(refused.first?.headers["connection"] == "close", "\(beyond)")
        }
    }

    @Test("an idle keep-alive connection is closed after GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS", arguments: [
        // Answered here, answered directly, passed to Hummingbird, and no request at all.
        "GET /v1/auth HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        "",
    ])
    func idleTimeout(request: String) async throws {
        try await Deployment.with(environment: ["GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS": "2"]) { d in
            let port = d.node.baseURL.port!
            let clock = ContinuousClock()
            let started = clock.now
            // Keep-alive: the exchange returns only when the node closes (or fails after 10 s).
            let text = try await RawHTTP.exchange(port: port, request)
            let waited = clock.now - started
            #expect(try Self.answers(text).count == (request.isEmpty ? 0 : 1), "\(text)")
            #expect(waited >= .milliseconds(1900) && waited < .seconds(6), "closed after \(waited)")
        }
    }

    struct Answer: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: String
        var description: String { "\(status) \(headers) \(body.prefix(300))" }
    }

    /// Splits a stream of HTTP/1.1 answers by their Content-Length (none: no body); the answers
    /// at the indexes in `heads` answer HEAD requests and have no body whatever their length.
    static func answers(_ text: String, heads: Set<Int> = []) throws -> [Answer] {
        var answers: [Answer] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            guard let end = rest.range(of: "\r\n\r\n") else { throw RawHTTP.Failure(description: "no end of head in \(rest.prefix(200))") }
            let lines = rest[..<end.lowerBound].components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else { throw RawHTTP.Failure(description: "bad status line \(lines[0])") }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { throw RawHTTP.Failure(description: "bad header \(line)") }
                headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop(while: { $0 == " " }))
            }
            let length = heads.contains(answers.count) ? 0 : Int(headers["content-length"] ?? "0") ?? 0
            let bodyBytes = rest[end.upperBound...].utf8.prefix(length)
            answers.append(Answer(status: status, headers: headers, body: String(decoding: bodyBytes, as: UTF8.self)))
            rest = Substring(rest[end.upperBound...].utf8.dropFirst(length))
        }
        return answers
    }
}

/// One raw HTTP exchange on a loopback socket, on a thread of its own (blocking calls stay off
/// Swift's cooperative pool): sends `request`, reads until the server closes (bounded by 10 s).
enum RawHTTP {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func exchange(port: Int, _ request: String) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try blockingExchange(port: port, Array(request.utf8)) })
            }
            thread.start()
        }
    }

    /// Sends `head`, reads what comes back within 1 s (the interim answer a client waiting for
    /// `100 Continue` sees), then sends `body` and reads until the server closes.
    static func continueExchange(port: Int, head: String, body: String) async throws -> (interim: String, answer: String) {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(interim: String, answer: String), any Error>) in
            let thread = Thread {
                continuation.resume(with: Result {
                    guard let fd = Loopback.connect(port: port, receiveTimeout: .seconds(1)) else {
                        throw Failure(description: "connect to port \(port) failed")
                    }
                    defer { close(fd) }
                    try sendAll(fd, Array(head.utf8))
                    var chunk = [UInt8](repeating: 0, count: 4096)
                    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    let interim = n > 0 ? String(decoding: chunk[..<n], as: UTF8.self) : ""
                    try sendAll(fd, Array(body.utf8))
                    var received: [UInt8] = []
                    for _ in 0..<100 {
                        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        received += chunk[..<n]
                    }
                    return (interim, String(decoding: received, as: UTF8.self))
                })
            }
            thread.start()
        }
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send failed") }
            sent += n
        }
    }

    private static func blockingExchange(port: Int, _ request: [UInt8]) throws -> String {
        guard let fd = Loopback.connect(port: port, receiveTimeout: .seconds(10)) else {
            throw Failure(description: "connect to port \(port) failed")
        }
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send failed") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<10_000 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return String(decoding: received, as: UTF8.self) }
            guard n > 0 else { throw Failure(description: "no close from the server within 10 s; got: \(String(decoding: received, as: UTF8.self))") }
            received += chunk[0..<n]
        }
        throw Failure(description: "the server kept sending")
    }
}
