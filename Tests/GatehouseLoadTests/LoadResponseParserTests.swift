import GatehouseLoad
import Testing

/// The load generator's response parser, shared by its blocking client and its event loops: a
/// response is found whole or not at all, however the bytes arrive.
@Suite("gatehouse load: response parser")
struct LoadResponseParserTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("a Content-Length body, byte by byte: nothing until the last byte, then exactly the response")
    func contentLength() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-LENGTH: 7\r\n\r\n{\"a\":1}HTTP/1.1 204"
        let all = Self.bytes(text)
        let end = all.count - "HTTP/1.1 204".utf8.count
        for cut in 0..<end {
            #expect(try LoadResponseParser.parse(Array(all[0..<cut]), method: "POST", atEOF: false) == nil, "cut \(cut)")
        }
        let parsed = try #require(try LoadResponseParser.parse(all, method: "POST", atEOF: false))
        #expect(parsed.response.status == 200)
        #expect(parsed.response.body == Self.bytes("{\"a\":1}"))
        #expect(parsed.consumed == end)
        #expect(!parsed.close)
    }

    @Test("chunked bodies with extensions and trailers; 204 and HEAD without a body")
    func chunkedAndEmpty() throws {
        let chunked = Self.bytes("HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
        #expect(try LoadResponseParser.parse(Array(chunked.dropLast(2)), method: "GET", atEOF: false) == nil)
        let parsed = try #require(try LoadResponseParser.parse(chunked, method: "GET", atEOF: false))
        #expect(parsed.response.status == 401)
        #expect(parsed.response.body == Self.bytes("abcde"))
        #expect(parsed.consumed == chunked.count)

        let noContent = Self.bytes("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
        #expect(try LoadResponseParser.parse(noContent, method: "GET", atEOF: false)?.response.body == [])
        let head = Self.bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        #expect(try LoadResponseParser.parse(head, method: "HEAD", atEOF: false)?.consumed == head.count)
    }

    @Test("a body without a length ends with the stream; Connection: close and HTTP/1.0 end the connection")
    func closeDelimited() throws {
        let open = Self.bytes("HTTP/1.1 200 OK\r\n\r\nto the end")
        #expect(try LoadResponseParser.parse(open, method: "GET", atEOF: false) == nil)
        let parsed = try #require(try LoadResponseParser.parse(open, method: "GET", atEOF: true))
        #expect(parsed.response.body == Self.bytes("to the end"))
        #expect(parsed.close)
        let close = Self.bytes("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n")
        #expect(try LoadResponseParser.parse(close, method: "GET", atEOF: false)?.close == true)
        let old = Self.bytes("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(try LoadResponseParser.parse(old, method: "GET", atEOF: false)?.close == true)
    }

    @Test("malformed answers are errors, not hangs")
    func malformed() {
        let answers = [
            Self.bytes("SMTP/1.1 200 OK\r\n\r\n"),
            Self.bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            [UInt8](repeating: 65, count: LoadResponseParser.maximumHead),
        ]
        for bytes in answers {
            let error = #expect(throws: LoadError.self) { try LoadResponseParser.parse(bytes, method: "GET", atEOF: false) }
            #expect(error?.code == .malformedResponse, "\(error.map { "\($0)" } ?? "no error")")
        }
    }
}
