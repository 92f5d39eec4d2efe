#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import GatehouseCore
import GatehouseService
import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The `GET /v1/auth` decision (SPEC §4), shared by the channel fast path and the responder.
///
/// Synchronous and free of I/O: an API key lookup, one token verification and a revocation
/// lookup in memory. Answers carry no body (nginx `auth_request` reads only the status and
/// headers).
struct AuthCheck: Sendable {
    let gatehouse: Gatehouse
    let apiKeys: APIKeyRegistry
    let ok = Counter(label: "gatehouse_auth_checks_total", dimensions: [("result", "ok")])
    let refused = Counter(label: "gatehouse_auth_checks_total", dimensions: [("result", "refused")])

    /// What to answer.
    enum Answer {
        case valid(user: String, sessionID: String, authTime: Int64)
        case unauthorized
        case forbidden
        case unavailable

        var status: HTTPResponse.Status {
            switch self {
            case .valid: .noContent
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .unavailable: .serviceUnavailable
            }
        }
    }

    /// Decides from the three headers that matter.
    func decide(authorization: String?, session: String?, cookie: String?) -> Answer {
        decide(caller: caller(authorization), session: session, cookie: cookie)
    }

    /// The API key presented in an `Authorization: Bearer` header, if it is a configured one.
    func caller(_ authorization: String?) -> APIKeyRegistry.Entry? {
        authorization.flatMap { header in
            header.hasPrefix("Bearer ") ? apiKeys.authenticate(header.dropFirst(7)) : nil
        }
    }

    /// Decides for an already identified caller.
    func decide(caller: APIKeyRegistry.Entry?, session: String?, cookie: String?) -> Answer {
        guard let caller, caller.scopes.contains(.verify) else {
            refused.increment()
            return caller == nil ? .unauthorized : .forbidden
        }
        guard let token = session ?? cookie.flatMap(Self.sessionCookie) else {
            refused.increment()
            return .unauthorized
        }
        do {
            let claims = try gatehouse.verifySession(token)
            ok.increment()
            return .valid(user: claims.common.user, sessionID: claims.sessionID, authTime: claims.authTime)
        } catch {
            refused.increment()
            return error.code == .unavailable ? .unavailable : .unauthorized
        }
    }

    /// The answer for the responder (HTTPTypes).
    func decide(_ fields: HTTPFields) -> HTTPResponse {
        let answer = decide(authorization: fields[.authorization], session: fields[Self.sessionHeader], cookie: fields[.cookie])
        var response = HTTPResponse(status: answer.status)
        switch answer {
        case .valid(let user, let sessionID, let authTime):
            response.headerFields[Self.userHeader] = user
            response.headerFields[Self.sessionIDHeader] = sessionID
            response.headerFields[Self.authTimeHeader] = String(authTime)
        case .unavailable:
            response.headerFields[HTTPSupport.retryAfter] = "5"
        case .unauthorized, .forbidden:
            break
        }
        return response
    }

    static let sessionHeader = HTTPField.Name("Gatehouse-Session")!
    static let userHeader = HTTPField.Name("Gatehouse-User")!
    static let sessionIDHeader = HTTPField.Name("Gatehouse-Session-Id")!
    static let authTimeHeader = HTTPField.Name("Gatehouse-Auth-Time")!

    /// The session token from `Gatehouse-Session`, else from the `gatehouse_session` cookie.
    static func sessionToken(_ fields: HTTPFields) -> String? {
        fields[sessionHeader] ?? fields[.cookie].flatMap(sessionCookie)
    }

    /// The value of the `gatehouse_session` cookie in a `Cookie` header.
    static func sessionCookie(_ cookies: String) -> String? {
        for part in cookies.split(separator: ";") {
            let trimmed = part.drop(while: { $0 == " " })
            if trimmed.hasPrefix("gatehouse_session=") { return String(trimmed.dropFirst("gatehouse_session=".count)) }
        }
        return nil
    }
}

/// Answers `GET /v1/auth` inside the channel pipeline, on the event loop, straight from the
/// HTTP/1 decoder's parts — before the conversion to HTTPTypes and before Hummingbird's async
/// request handling.
///
/// Why: `/v1/auth` runs on every webmail request. Through the responder a request costs a header
/// conversion, a task hop, an async sequence element and a `Request`/`Response` pair; here it
/// costs three header lookups, one synchronous verification and one write. Issue 6 measures the
/// path against nginx's own `return 204` (see benchmarks/RESULTS.md).
///
/// Order is kept: the fast path is taken only when no request of this connection is waiting for
/// Hummingbird (counted from the head passed on until its response's `.end` comes back through
/// `write`); otherwise the request goes through the responder, which answers `/v1/auth` with the
/// same ``AuthCheck``. A request body is drained and ignored; the answer goes out at the
/// request's end. A request that does not keep the connection alive gets `Connection: close`
/// and the connection is closed after the answer.
final class AuthFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let check: AuthCheck
    /// The context of ``RawResponseWriter`` at the head of the pipeline: answers written there
    /// go straight to the socket, past the HTTP/1 encoder (they are serialised here, into one
    /// buffer). Nil only if the writer is missing, and then answers go through the encoder.
    private var raw: ChannelHandlerContext?
    /// Requests passed on to Hummingbird whose response has not ended yet.
    private var forwarded = 0
    /// The answer to the fast-path request being read (sent at its `.end`).
    private var answer: AuthCheck.Answer?
    private var closeAfterAnswer = false
    private var http10KeepAlive = false
    private var needsFlush = false
    /// `Date:` for answers (RFC 9110 §6.6.1), formatted once per second per connection.
    private var date = HTTPDate()
    /// The last valid `Authorization` value seen on this connection and whose key it is: a
    /// connection (nginx's upstream keep-alive, a front end's pool) presents the same key on every
    /// request, so the key's SHA-256 and constant-time lookup run once per connection. The plain
    /// `==` against it can only tell a client about a value it sent itself on this connection, and
    /// the configured keys do not change while the node runs.
    private var knownAuthorization: String?
    private var knownCaller: APIKeyRegistry.Entry?

    init(check: AuthCheck) {
        self.check = check
    }

    func handlerAdded(context: ChannelHandlerContext) {
        raw = try? context.pipeline.syncOperations.context(handlerType: RawResponseWriter.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        raw = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if forwarded == 0, head.method == .GET, head.uri == "/v1/auth" {
                closeAfterAnswer = !head.isKeepAlive
                http10KeepAlive = head.isKeepAlive && head.version.minor == 0
                let headers = head.headers
                let session = headers.first(name: "gatehouse-session")
                // Several Cookie fields are read as one, as HTTPFields does for the responder.
                let cookie = session == nil ? headers["cookie"].joined(separator: "; ") : ""
                let authorization = headers.first(name: "authorization")
                let caller: APIKeyRegistry.Entry?
                if let authorization, authorization == knownAuthorization {
                    caller = knownCaller
                } else {
                    caller = check.caller(authorization)
                    if caller != nil {
                        knownAuthorization = authorization
                        knownCaller = caller
                    }
                }
                answer = check.decide(caller: caller, session: session, cookie: cookie.isEmpty ? nil : cookie)
            } else {
                forwarded += 1
                context.fireChannelRead(data)
            }
        case .body:
            if answer == nil { context.fireChannelRead(data) }
        case .end:
            guard let answer else {
                context.fireChannelRead(data)
                return
            }
            self.answer = nil
            send(answer, context: context)
        }
    }

    private func send(_ answer: AuthCheck.Answer, context: ChannelHandlerContext) {
        guard let raw else {
            // No raw writer: through the encoder.
            context.write(wrapOutboundOut(.head(Self.head(answer, close: closeAfterAnswer))), promise: nil)
            finish(context: context) { ctx in ctx.write(self.wrapOutboundOut(.end(nil))) }
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 240)
        Self.serialise(answer, close: closeAfterAnswer, http10KeepAlive: http10KeepAlive, date: date.now(), into: &buffer)
        finish(context: context) { _ in raw.write(NIOAny(IOData.byteBuffer(buffer))) }
    }

    /// Writes with `write`, then flushes now and closes (`Connection: close`) or leaves the flush
    /// to `channelReadComplete` (several pipelined answers go out in one system call).
    private func finish(context: ChannelHandlerContext, _ write: (ChannelHandlerContext) -> EventLoopFuture<Void>) {
        if closeAfterAnswer {
            let channel = context.channel
            let written = write(raw ?? context)
            (raw ?? context).flush()
            written.whenComplete { _ in channel.close(promise: nil) }
            needsFlush = false
        } else {
            _ = write(raw ?? context)
            needsFlush = true
        }
    }

    /// The answer on the wire. Header values come from a verified token: a user address (no
    /// control characters, `UserID` refuses them), a base64url id and a number; anything else
    /// would answer 401 rather than be written.
    static func serialise(_ answer: AuthCheck.Answer, close: Bool, http10KeepAlive: Bool, date: String, into buffer: inout ByteBuffer) {
        var answer = answer
        if case .valid(let user, let sid, _) = answer, !(Self.isFieldValue(user) && Self.isFieldValue(sid)) {
            answer = .unauthorized
        }
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
        if close {
            buffer.writeStaticString("Connection: close\r\n")
        } else if http10KeepAlive {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("Date: ")
        buffer.writeString(date)
        buffer.writeStaticString("\r\n\r\n")
    }

    private static func isFieldValue(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }

    /// The same answer as a response head, for the encoder.
    static func head(_ answer: AuthCheck.Answer, close: Bool) -> HTTPResponseHead {
        var fields: [(String, String)] = []
        switch answer {
        case .valid(let user, let sessionID, let authTime):
            fields = [("Gatehouse-User", user), ("Gatehouse-Session-Id", sessionID), ("Gatehouse-Auth-Time", String(authTime))]
        case .unavailable:
            fields = [("Retry-After", "5"), ("Content-Length", "0")]
        case .unauthorized, .forbidden:
            fields = [("Content-Length", "0")]
        }
        if close { fields.append(("Connection", "close")) }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status.code), headers: HTTPHeaders(fields))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            (raw ?? context).flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), forwarded > 0 { forwarded -= 1 }
        context.write(data, promise: promise)
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `Date:`, formatted again only when the
/// second changes.
struct HTTPDate {
    private var second: time_t = -1
    private var text = ""

    mutating func now() -> String {
        var t = time(nil)
        guard t != second else { return text }
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return text }
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : String(v) }
        text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        second = t
        return text
    }
}

/// The first handler of the pipeline (nearest the socket): passes the encoded bytes of every
/// response through, and gives ``AuthFastPathHandler`` a place to write its own serialised
/// answers that skips the HTTP/1 encoder.
final class RawResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
}

/// Hummingbird's HTTP/1 child channel with ``AuthFastPathHandler`` placed between the HTTP/1
/// decoder and the conversion to HTTPTypes (Hummingbird's `additionalChannelHandlers` go after
/// that conversion, which is a third of the fast path's cost). Everything else is as in
/// `HTTP1Channel`: the same decoder limits, the connection state handler, and `handleHTTP`.
struct GatehouseHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let check: AuthCheck

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            try channel.pipeline.syncOperations.addHandler(RawResponseWriter(), position: .first)
            try channel.pipeline.syncOperations.addHandler(AuthFastPathHandler(check: check))
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the `/v1/auth` fast path.
    static func gatehouse(check: AuthCheck) -> HTTPServerBuilder {
        .init { responder in GatehouseHTTP1Channel(responder: responder, check: check) }
    }
}
