package import HTTPTypes
package import NIOCore
package import NIOHTTP1

/// How an answer written by the fast path ends its head: what the connection does after it.
package struct Framing: Equatable, Sendable {
    /// `Connection: close`, and the connection is closed once the answer is written.
    package var close: Bool
    /// An HTTP/1.0 request that asked for keep-alive: the answer says `Connection: keep-alive`.
    package var http10KeepAlive: Bool

    package init(close: Bool, http10KeepAlive: Bool) {
        self.close = close
        self.http10KeepAlive = http10KeepAlive
    }

    /// As the request asks (RFC 9112 §9.3: HTTP/1.1 persists unless `close`, 1.0 only with
    /// `keep-alive`, and a `close` option closes whatever else is said, §9.6). NIO's decoder
    /// answers `isKeepAlive` as llhttp does, which for HTTP/1.0 lets `keep-alive` win over a
    /// `close` beside it; so `close` is looked for here as well.
    package init(_ head: HTTPRequestHead) {
        let close = !head.isKeepAlive
            || head.headers[canonicalForm: "connection"].contains { $0.utf8.lazy.map { $0 | 0x20 }.elementsEqual("close".utf8) }  // ASCII, any case
        self.close = close
        self.http10KeepAlive = !close && head.version.minor == 0
    }
}

/// The fast path's answers on the wire, serialised into one buffer that skips the HTTP/1
/// encoder. The only place that writes the bytes of a `/v1/auth` answer (the responder derives
/// its `HTTPResponse` from the same ``AuthAnswer``: ``AuthAnswer/response``).
package enum FastPathEncoding {
    /// The `/v1/auth` answer. Its header values come from ``AuthCheck``, which answers 401
    /// rather than carry a value with control characters.
    package static func write(_ answer: AuthAnswer, framing: Framing, date: String, into buffer: inout ByteBuffer) {
        switch answer {
        case .valid(let user, let sessionID, let authTime):
            buffer.writeStaticString("HTTP/1.1 204 No Content\r\nGatehouse-User: ")
            buffer.writeString(user)
            buffer.writeStaticString("\r\nGatehouse-Session-Id: ")
            buffer.writeString(sessionID)
            buffer.writeStaticString("\r\nGatehouse-Auth-Time: ")
            buffer.writeString(String(authTime))
            buffer.writeStaticString("\r\n")
        case .unauthorized:
            buffer.writeStaticString("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n")
        case .forbidden:
            buffer.writeStaticString("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n")
        case .unavailable:
            buffer.writeStaticString("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n")
        }
        writeEndOfHead(framing, date: date, into: &buffer)
    }

    /// A direct answer (the responder's status, fields and collected body). Header values with
    /// control characters (none of the responder's) are dropped rather than written.
    package static func write(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, framing: Framing, date: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeStaticString(" ")
        // `Status(code:)` has no phrase; the standard one, as NIO's encoder writes it.
        buffer.writeString(status.reasonPhrase.isEmpty ? HTTPResponseStatus(statusCode: status.code).reasonPhrase : status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for field in headers where isFieldValue(field.value, tab: true) {
            switch field.name {
            case .contentLength, .transferEncoding, .connection, .date: continue
            default: break
            }
            buffer.writeString(field.name.rawName)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        let bodyAllowed = mayHaveBody(status)
        if bodyAllowed {
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(body.readableBytes))
            buffer.writeStaticString("\r\n")
        }
        writeEndOfHead(framing, date: date, into: &buffer)
        if bodyAllowed { buffer.writeImmutableBuffer(body) }
    }

    /// `Connection` (when it says something HTTP/1.1 does not assume), `Date`, and the empty line.
    private static func writeEndOfHead(_ framing: Framing, date: String, into buffer: inout ByteBuffer) {
        if framing.close {
            buffer.writeStaticString("Connection: close\r\n")
        } else if framing.http10KeepAlive {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("Date: ")
        buffer.writeString(date)
        buffer.writeStaticString("\r\n\r\n")
    }

    /// Whether an answer with this status carries a body and `Content-Length` (not 1xx, 204, 304).
    package static func mayHaveBody(_ status: HTTPResponse.Status) -> Bool {
        status.code >= 200 && status.code != 204 && status.code != 304
    }

    /// No control characters (a horizontal tab only where `tab`).
    package static func isFieldValue(_ text: String, tab: Bool = false) -> Bool {
        text.utf8.allSatisfy { ($0 >= 0x20 && $0 != 0x7F) || (tab && $0 == 0x09) }
    }
}
