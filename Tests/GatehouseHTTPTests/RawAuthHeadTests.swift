@testable import GatehouseHTTP
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// ``RawAuthHead`` takes only heads NIO's HTTP/1 decoder reads the same way: the same request,
/// the same credentials, the same length.
@Suite("GET /v1/auth read ahead of the decoder")
struct RawAuthHeadTests {
    static let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhQGV4YW1wbGUub3JnIn0.c2lnbmF0dXJl"

    static func parse(_ text: String) -> RawAuthHead? {
        Array(text.utf8).withUnsafeBytes { RawAuthHead.parse($0) }
    }

    /// What NIO's decoder (with the node's limits) makes of `text`: the first request's head and
    /// the bytes up to its end, or nil when it refuses the bytes or they hold no whole request.
    static func decode(_ text: String) throws -> (head: HTTPRequestHead, length: Int)? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: HTTP1DecoderLimits.configuration)))
        defer { _ = try? channel.finish() }
        let bytes = Array(text.utf8)
        // Byte by byte, so the end of the first request is seen at its last byte.
        var head: HTTPRequestHead?
        for (index, byte) in bytes.enumerated() {
            do { try channel.writeInbound(ByteBuffer(bytes: [byte])) } catch { return nil }
            while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let h): head = h
                case .body: return nil
                case .end: return head.map { ($0, index + 1) }
                }
            }
        }
        return nil
    }

    static let plain = "GET /v1/auth HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer key-1\r\nGatehouse-Session: \(token)\r\n\r\n"

    @Test("the heads nginx and front ends send are taken, with the decoder's credentials and length")
    func taken() throws {
        let heads = [
            Self.plain,
            // What nginx's auth_request sends (proxy_http_version 1.1, Connection and Content-Length cleared).
            "GET /v1/auth HTTP/1.1\r\nAuthorization: Bearer k\r\nGatehouse-Session: \(Self.token)\r\nHost: gatehouse\r\nUser-Agent: wrk\r\nCookie: gatehouse_session=\(Self.token)\r\n\r\n",
            Self.plain + "GET /v1/auth HTTP/1.1\r\nHost: x\r\n\r\n",  // a second request after it is not part of it
            "GET /v1/auth HTTP/1.1\r\nhost: gatehouse\r\nauthorization: bearer   key-1  \r\ncookie: a=b\r\nCOOKIE: gatehouse_session=\(Self.token)\r\nX-Other: 1\r\n\r\n",
            "GET /v1/auth HTTP/1.1\r\nHost:x\r\nConnection: Keep-Alive\r\nGatehouse-Session:\t\(Self.token)\t\r\nGatehouse-Session: \(Self.token)\r\n\r\n",
            "GET /v1/auth HTTP/1.1\r\nHost: x\r\nGatehouse-Challenge: abc\r\nUser-Agent: curl/7.88 (x86_64)\r\nAccept: */*\r\n\r\n",
            "GET /v1/auth HTTP/1.1\r\nHost: x \r\nCookie:  gatehouse_session=\(Self.token) \t\r\nConnection: keep-alive \r\n\r\n",  // spaces around values
        ]
        for text in heads {
            let raw = try #require(Self.parse(text), "\(text.debugDescription)")
            let decoded = try #require(try Self.decode(text), "\(text.debugDescription)")
            #expect(decoded.head.method == .GET && decoded.head.uri == "/v1/auth" && decoded.head.version == .http1_1 && decoded.head.isKeepAlive)
            #expect(raw.credentials == PresentedCredentials(decoded.head.headers), "\(text.debugDescription)")
            #expect(raw.length == decoded.length, "\(text.debugDescription)")
        }
        let first = try #require(Self.parse(Self.plain))
        #expect(first.credentials.bearerKey == "key-1" && first.credentials.sessionToken == .token(Self.token))
    }

    @Test("anything else is left to the decoder", arguments: [
        "",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\n",                      // not whole yet
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\n\r",                    // not whole yet
        "GET /v1/auth HTTP/1.0\r\nHost: x\r\n\r\n",                  // HTTP/1.0
        "GET /v1/auth?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",              // a query
        "GET /v1/authx HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /v1/auth HTTP/1.1\r\nHost: x\r\n\r\n",
        "get /v1/auth HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET  /v1/auth HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\n\r\n",                             // no Host
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",       // two
        "GET /v1/auth HTTP/1.1\nHost: x\r\n\r\n",                    // bare LF
        "GET /v1/auth HTTP/1.1\r\nHost: x\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\n\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost : x\r\n\r\n",                 // space before the colon
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",       // obsolete line folding
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nX-Bin: a\u{01}b\r\n\r\n", // a control character
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nX-Del: a\u{7F}b\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nX-Utf8: é\r\n\r\n",     // not ASCII
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
        "GET /v1/auth HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n",
    ])
    func leftAlone(text: String) {
        #expect(Self.parse(text) == nil)
    }

    @Test("a head over the length or field limits is left to the decoder")
    func limits() {
        let fields = (0..<RawAuthHead.maximumFields - 1).map { "X-\($0): v\r\n" }.joined()
        #expect(Self.parse("GET /v1/auth HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n") != nil)
        #expect(Self.parse("GET /v1/auth HTTP/1.1\r\nHost: x\r\n" + fields + "X-Last: v\r\n\r\n") == nil)
        let long = "GET /v1/auth HTTP/1.1\r\nHost: x\r\nX-Long: " + String(repeating: "a", count: RawAuthHead.maximumLength) + "\r\n\r\n"
        #expect(Self.parse(long) == nil)
    }

    @Test("random changes to taken heads: whatever is still taken, the decoder reads the same way")
    func mutations() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("GET/v1authHTOPs :\r\n\t\u{0}\u{7F}é-Cookie;=gatehouse_session,Connection".utf8)
        let seeds = [Self.plain, "GET /v1/auth HTTP/1.1\r\nHost: h\r\nCookie: gatehouse_session=\(Self.token)\r\nConnection: keep-alive\r\n\r\n"]
        var taken = 0, compared = 0
        for round in 0..<3000 {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[at] = alphabet.randomElement(using: &generator)!
                case 1: bytes.insert(alphabet.randomElement(using: &generator)!, at: at)
                default: bytes.remove(at: at)
                }
            }
            guard let raw = bytes.withUnsafeBytes({ RawAuthHead.parse($0) }) else { continue }
            taken += 1
            let text = String(decoding: bytes, as: UTF8.self)
            let decoded = try #require(try Self.decode(text), "taken, but the decoder refuses: \(text.debugDescription)")
            compared += 1
            #expect(decoded.head.method == .GET && decoded.head.uri == "/v1/auth" && decoded.head.isKeepAlive, "\(text.debugDescription)")
            #expect(raw.credentials == PresentedCredentials(decoded.head.headers), "\(text.debugDescription)")
            #expect(raw.length == decoded.length, "\(text.debugDescription)")
        }
        // Most single changes outside the request line and names keep the head takeable.
        #expect(taken > 100 && compared == taken, "taken \(taken)")
    }
}
