import Foundation
import GatehouseTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Clients that hold a connection without finishing a request, over raw loopback sockets: each is
/// timed out (`GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS`, `_BODY_TIMEOUT_SECONDS`), the node serves a
/// bounded number of connections (`GATEHOUSE_HTTP_MAX_CONNECTIONS`), and a stopping node does not
/// wait for them past `GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS`.
@Suite("Slow clients on the wire", .timeLimit(.minutes(3)))
struct SlowClientTests {
    static let shortTimeouts = ["GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS": "2", "GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS": "2"]

    @Test("timed out: nothing sent (closed, no answer), a partial head, a head one line every 0.5 s, a partial body (408); the import's partial body (closed); a request in pieces within the time is answered")
    func timeouts() async throws {
        try await Deployment.with(environment: Self.shortTimeouts) { d in
            let port = d.node.baseURL.port!
            let frontend = Deployment.keys["frontend"]!, admin = Deployment.keys["admin"]!
            async let silent = SlowClient.run(port: port, pieces: [])
            async let partialHead = SlowClient.run(port: port, pieces: ["GET /v1/auth HTTP/1.1\r\nHo"])
            // 20 lines 0.5 s apart would take 10 s; the head timeout ends it after 2.
            let lines = ["GET /v1/auth HTTP/1.1\r\n"] + (0..<19).map { "X-Slow-\($0): \($0)\r\n" }
            async let lineByLine = SlowClient.run(port: port, pieces: lines, pause: .milliseconds(500))
            async let partialBody = SlowClient.run(port: port, pieces: [
                "POST /v1/login/start HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(frontend)\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":",
            ])
            async let partialImport = SlowClient.run(port: port, pieces: [
                "POST /v1/users/import HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(admin)\r\nContent-Length: 1000\r\n\r\n{\"user\":",
            ])
            // Two pieces 1 s apart, complete within the 2 s: answered, and the connection stays.
            async let inTime = SlowClient.run(port: port, pieces: ["GET /healthz HTTP/1.1\r\n", "Host: t\r\n\r\n"], pause: .seconds(1), stopAfterAnswer: true)

            let results = try await (silent: silent, partialHead: partialHead, lineByLine: lineByLine, partialBody: partialBody, partialImport: partialImport, inTime: inTime)
            func closedAfterTimeout(_ result: SlowClient.Result) -> Bool {
                result.closed && result.elapsed >= .milliseconds(1900) && result.elapsed < .seconds(5)
            }
            #expect(results.silent.text.isEmpty && closedAfterTimeout(results.silent), "\(results.silent)")
            for (name, result) in [("partial head", results.partialHead), ("line by line", results.lineByLine), ("partial body", results.partialBody)] {
                #expect(closedAfterTimeout(result), "\(name): \(result)")
                let answers = try FastPathTests.answers(result.text)
                #expect(answers.map(\.status) == [408], "\(name): \(result)")
                #expect(answers.first?.headers["connection"] == "close", "\(name): \(result)")
                #expect(answers.first?.headers["content-type"] == "application/problem+json", "\(name): \(result)")
                #expect(answers.first?.body.contains("\"code\":\"invalid_request\"") == true, "\(name): \(result)")
            }
            #expect(results.lineByLine.piecesSent < lines.count, "the slow head was cut off: \(results.lineByLine)")
            #expect(results.partialImport.text.isEmpty && closedAfterTimeout(results.partialImport), "\(results.partialImport)")
            #expect(try FastPathTests.answers(results.inTime.text).map(\.status) == [200], "\(results.inTime)")
            #expect(!results.inTime.closed, "\(results.inTime)")
        }
    }

    @Test("at most GATEHOUSE_HTTP_MAX_CONNECTIONS open at once: the next is closed on arrival, and served again once one closes")
    func connectionCap() async throws {
        try await Deployment.with(environment: ["GATEHOUSE_HTTP_MAX_CONNECTIONS": "4"]) { d in
            let port = d.node.baseURL.port!
            // The harness's own HTTP client may keep a connection or two open: open connections
            // until one is closed on arrival; at most four are served.
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            var refusedAt: Int?
            for attempt in 0..<6 where refusedAt == nil {
                let fd = try #require(Loopback.connect(port: port, receiveTimeout: .seconds(3)))
                let text = try await SlowClient.exchange(fd: fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                if text.isEmpty {
                    close(fd)
                    refusedAt = attempt
                } else {
                    #expect(try FastPathTests.answers(text).map(\.status) == [200], "\(text)")
                    held.append(fd)
                }
            }
            #expect(refusedAt.map { (1...4).contains($0) } == true, "served \(held.count) before one was refused")
            // Every further one is closed at once too, before any request.
            for _ in 0..<2 {
                let refused = try await SlowClient.run(port: port, pieces: [])
                #expect(refused.closed && refused.text.isEmpty && refused.elapsed < .seconds(1), "\(refused)")
            }
            #expect(d.node.log.contains("connections refused"), "the refusal is logged")
            // One of the four closes: a new connection is served.
            close(held.removeLast())
            var served = false
            for _ in 0..<40 where !served {
                try await Task.sleep(for: .milliseconds(50))
                let text = try await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                served = (try? FastPathTests.answers(text).map(\.status)) == [200]
            }
            #expect(served, "no connection served after one closed")
        }
    }

    @Test("SIGTERM with a partial body held open: the node answers what it has and exits within 10 s (closed at the shutdown timeout)")
    func shutdownDeadline() async throws {
        // A real process (the test sends it SIGTERM), with no body timeout: only the shutdown
        // timeout (default 8 s) can end the held request.
        try await Deployment.with(environment: ["GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS": "0", "GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS": "0"], processes: true) { d in
            let port = d.node.baseURL.port!
            let frontend = Deployment.keys["frontend"]!
            let node = try #require(d.node as? GatehouseNodeProcess)
            async let held = SlowClient.run(port: port, pieces: [
                "POST /v1/login/start HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(frontend)\r\nContent-Length: 100\r\n\r\n{\"user\":",
            ], limit: .seconds(15))
            try await Task.sleep(for: .milliseconds(500))
            let clock = ContinuousClock()
            let started = clock.now
            let status = try #require(await node.stop())
            let took = clock.now - started
            let exitedByItself = (status & 0x7f) == 0
            #expect(exitedByItself, "the node had to be SIGKILLed (wait status \(status))")
            #expect(took < .seconds(10), "exit \(took) after SIGTERM")
            #expect(took >= .seconds(7), "closed before the shutdown timeout: \(took)")
            let result = try await held
            #expect(result.closed, "\(result)")
        }
    }
}

/// A client on a raw loopback socket that sends its pieces with pauses and reads until the
/// server closes, on a thread of its own (blocking calls stay off Swift's cooperative pool).
enum SlowClient {
    struct Result: CustomStringConvertible {
        var text: String
        /// The server closed the connection (otherwise the client stopped, or `limit` passed).
        var closed: Bool
        /// From the first piece (or the connect) until the close or the end.
        var elapsed: Duration
        var piecesSent: Int
        var description: String { "closed \(closed) after \(elapsed), \(piecesSent) pieces sent: \(text.prefix(400))" }
    }

    /// Sends `pieces` `pause` apart, reading meanwhile; then reads until the server closes or
    /// `limit` passes (or, with `stopAfterAnswer`, until an answer's head has come).
    static func run(port: Int, pieces: [String], pause: Duration = .zero, limit: Duration = .seconds(8), stopAfterAnswer: Bool = false) async throws -> Result {
        try await onThread {
            guard let fd = Loopback.connect(port: port, receiveTimeout: .milliseconds(100)) else {
                throw RawHTTP.Failure(description: "connect to port \(port) failed")
            }
            defer { close(fd) }
            let clock = ContinuousClock()
            let started = clock.now
            var received: [UInt8] = []
            var sent = 0
            var nextSend = started
            var chunk = [UInt8](repeating: 0, count: 65536)
            // Bounded by `limit`, read in 100 ms slices.
            while clock.now - started < limit {
                if sent < pieces.count, clock.now >= nextSend {
                    let bytes = Array(pieces[sent].utf8)
                    let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n < 0 { return Result(text: String(decoding: received, as: UTF8.self), closed: true, elapsed: clock.now - started, piecesSent: sent) }
                    sent += 1
                    nextSend = clock.now + pause
                }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 || (n < 0 && errno == ECONNRESET) {
                    return Result(text: String(decoding: received, as: UTF8.self), closed: true, elapsed: clock.now - started, piecesSent: sent)
                }
                if n > 0 {
                    received += chunk[0..<n]
                    if stopAfterAnswer, String(decoding: received, as: UTF8.self).contains("\r\n\r\n") { break }
                }
            }
            return Result(text: String(decoding: received, as: UTF8.self), closed: false, elapsed: clock.now - started, piecesSent: sent)
        }
    }

    /// One request on an open connection; reads until the answer's head and its Content-Length of body.
    static func exchange(fd: Int32, _ request: String) async throws -> String {
        try await onThread {
            let bytes = Array(request.utf8)
            guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
                throw RawHTTP.Failure(description: "send failed")
            }
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            for _ in 0..<100 {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                received += chunk[0..<n]
                if let answers = try? FastPathTests.answers(String(decoding: received, as: UTF8.self)), !answers.isEmpty { break }
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            Thread { continuation.resume(with: Swift.Result { try body() }) }.start()
        }
    }
}
