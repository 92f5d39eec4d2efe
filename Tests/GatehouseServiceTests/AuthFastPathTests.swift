import Foundation
import GatehouseTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `GET /v1/auth` is answered inside the channel pipeline, past Hummingbird (issue 6): these
/// check over raw sockets that the fast path keeps HTTP/1.1's rules — answers in request order
/// when requests are pipelined behind a slow one, keep-alive and `Connection: close`, HTTP/1.0.
@Suite("GET /v1/auth fast path on the wire", .timeLimit(.minutes(2)))
struct AuthFastPathTests {
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

    private static func blockingExchange(port: Int, _ request: [UInt8]) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect to port \(port) failed") }
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
