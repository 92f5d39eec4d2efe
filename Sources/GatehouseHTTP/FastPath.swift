#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import GatehouseCore
import GatehouseService
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import Synchronization
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The `GET /v1/auth` decision, shared by the channel fast path and the responder.
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

/// Answers requests inside the channel pipeline, straight from the HTTP/1 decoder's parts, past
/// the conversion to HTTPTypes, `NIOAsyncChannel` and Hummingbird's per-connection loop:
///
/// - `GET /v1/auth` synchronously, on the event loop, with ``AuthCheck``. It runs on every webmail
///   request: through Hummingbird a request costs a header conversion, a task hop, an async
///   sequence element and a `Request`/`Response` pair; here three header lookups, one
///   verification and one write.
/// - Every other request with a bounded body (all but `POST /v1/users/import`, whose body may
///   be 8 MiB and is streamed; and `HEAD`, `Expect:` and non-origin-form targets) *directly*: the
///   head and body are collected here, the same ``GatehouseResponder`` answers in a task, and the
///   answer is serialised and written here. Routing, bodies, errors and problems are the
///   responder's; this only replaces the transport. On the sign-in path that transport was about
///   a third of a node's CPU (benchmarks/RESULTS.md).
///
/// Order is kept (HTTP/1.1 pipelining): while a direct request is being answered, the parts,
/// errors and events that follow it are held (and reading from the socket paused) and replayed
/// after its answer; a request is answered here only when no earlier request of the connection
/// is with Hummingbird (counted from the head passed on until its response's `.end` comes back
/// through `write`), otherwise it goes to Hummingbird too, which answers it with the same
/// responder. A request that does not keep the connection alive gets `Connection: close` and the
/// connection is closed after the answer. A graceful shutdown (`ChannelShouldQuiesceEvent`)
/// waits for the direct answer in flight.
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: GatehouseResponder
    private var check: AuthCheck { responder.authCheck }
    private let logger: Logger
    /// The context of ``RawResponseWriter`` at the head of the pipeline: answers written there
    /// go straight to the socket, past the HTTP/1 encoder (they are serialised here, into one
    /// buffer). Nil only if the writer is missing, and then answers go through the encoder.
    private var raw: ChannelHandlerContext?
    /// Requests passed on to Hummingbird whose response has not ended yet.
    private var forwarded = 0
    /// The answer to the `/v1/auth` request being read (sent at its `.end`).
    private var answer: AuthCheck.Answer?
    /// The direct request being read: its head and body so far.
    private var direct: (head: HTTPRequestHead, body: ByteBuffer)?
    /// A direct request is being answered; what arrives meanwhile waits in `held`.
    private var busy = false
    /// (An array: empty, it allocates nothing, and a connection is set up per nginx upstream
    /// connection. It holds at most the parts of one read.)
    private var held: [Held] = []
    /// A `read` asked for while busy or while the socket cannot take more output (a client
    /// that sends requests but does not read answers), passed on when that ends.
    private var readHeld = false
    /// An answer with `Connection: close` went out: nothing more is read or answered.
    private var closing = false
    /// Direct requests whose task has not come back to the event loop yet (a graceful shutdown
    /// waits for them: ``whenIdle(_:)``), readable off the loop too
    /// (``GatehouseHTTP1Channel/handle(value:logger:)`` waits only when it is not zero); and who
    /// waits.
    let tasksRunning = TaskCounter()
    private var idleWaiters: [EventLoopPromise<Void>] = []
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

    private enum Held {
        case read(NIOAny)
        case error(any Error)
        case event(Any)
    }

    /// The largest body collected for a direct request: one byte past the responder's limit, so
    /// the responder still refuses a longer one (the rest is read and dropped).
    static let bodyLimit = HTTPSupport.maximumBodyBytes + 1

    init(responder: GatehouseResponder, logger: Logger) {
        self.responder = responder
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        raw = try? context.pipeline.syncOperations.context(handlerType: RawResponseWriter.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        raw = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a `Connection: close` answer, whatever else was sent is not looked at (RFC 9112 §9.6).
        if closing { return }
        if busy {
            held.append(.read(data))
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard forwarded == 0 else {
                forward(context: context, data)
                return
            }
            if head.method == .GET, head.uri == "/v1/auth" {
                readConnection(head)
                answer = authAnswer(head.headers)
            } else if Self.goesDirect(head) {
                readConnection(head)
                direct = (head, ByteBuffer())
            } else {
                forward(context: context, data)
            }
        case .body(var chunk):
            if answer != nil { return }
            guard direct != nil else {
                context.fireChannelRead(data)
                return
            }
            let room = Self.bodyLimit - direct!.body.readableBytes
            if room > 0, let part = chunk.readSlice(length: min(room, chunk.readableBytes)) {
                // A body in one part (the usual case) is kept as the decoder's slice, not copied.
                if direct!.body.readableBytes == 0 { direct!.body = part } else { direct!.body.writeImmutableBuffer(part) }
            }
        case .end:
            if let answer {
                self.answer = nil
                send(answer, context: context)
            } else if let direct {
                self.direct = nil
                start(direct.head, body: direct.body, context: context)
            } else {
                context.fireChannelRead(data)
            }
        }
    }

    private func forward(context: ChannelHandlerContext, _ data: NIOAny) {
        forwarded += 1
        context.fireChannelRead(data)
    }

    private func readConnection(_ head: HTTPRequestHead) {
        closeAfterAnswer = !head.isKeepAlive
        http10KeepAlive = head.isKeepAlive && head.version.minor == 0
    }

    /// Requests the responder can answer from a collected body (see the type's comment).
    static func goesDirect(_ head: HTTPRequestHead) -> Bool {
        switch head.method {
        case .GET, .POST, .PUT, .DELETE: break
        default: return false
        }
        guard head.uri.hasPrefix("/"), !head.uri.hasPrefix("/v1/users/import"), !head.headers.contains(name: "expect") else { return false }
        return true
    }

    // MARK: GET /v1/auth

    private func authAnswer(_ headers: HTTPHeaders) -> AuthCheck.Answer {
        let session = headers.first(name: "gatehouse-session")
        // Several Cookie fields are read as one, as HTTPFields does for the responder.
        let cookie = session == nil ? headers["cookie"].joined(separator: "; ") : ""
        return check.decide(caller: caller(headers.first(name: "authorization")), session: session, cookie: cookie.isEmpty ? nil : cookie)
    }

    private func caller(_ authorization: String?) -> APIKeyRegistry.Entry? {
        if let authorization, authorization == knownAuthorization { return knownCaller }
        let caller = check.caller(authorization)
        if caller != nil {
            knownAuthorization = authorization
            knownCaller = caller
        }
        return caller
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
    private func finish(context: ChannelHandlerContext, flushNow: Bool = false, _ write: (ChannelHandlerContext) -> EventLoopFuture<Void>) {
        if closeAfterAnswer {
            closing = true
            held.removeAll()
            let channel = context.channel
            let written = write(raw ?? context)
            (raw ?? context).flush()
            written.whenComplete { _ in channel.close(promise: nil) }
            needsFlush = false
        } else {
            _ = write(raw ?? context)
            if flushNow {
                (raw ?? context).flush()
                needsFlush = false
            } else {
                needsFlush = true
            }
        }
    }

    // MARK: Direct requests

    /// Hands the request to the responder in a task; the answer comes back to the event loop.
    private func start(_ head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        busy = true
        tasksRunning.value.add(1, ordering: .releasing)
        // The conversion leaves the first Host field out: it is the request's authority.
        let fields = HTTPFields(head.headers, splitCookie: false)
        let authority = head.headers.first(name: "host")
        let request = HTTPRequest(method: HTTPRequest.Method(head.method.rawValue) ?? .get, scheme: "http", authority: authority, path: head.uri, headerFields: fields)
        let responder = responder
        let source = ApplicationRequestContextSource(channel: context.channel, logger: logger)
        let close = closeAfterAnswer, keepAlive10 = http10KeepAlive
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        Task {
            let response: Response
            do {
                response = try await responder.respond(to: Request(head: request, body: RequestBody(buffer: body)), context: BasicRequestContext(source: source))
            } catch {
                // The responder answers its own errors; anything else is a 500, as in Hummingbird.
                response = Response(status: .internalServerError)
            }
            var collector = BodyCollector()
            do { try await response.body.write(collector.writer) } catch { collector.failed = true }
            let status = collector.failed ? HTTPResponse.Status.internalServerError : response.status
            let headers = collector.failed ? HTTPFields() : response.headers
            let bodyBytes = collector.failed ? ByteBuffer() : collector.buffer.value
            loop.execute {
                let (handler, context) = bound.value
                handler.answered(status: status, headers: headers, body: bodyBytes, close: close, http10KeepAlive: keepAlive10, context: context)
            }
        }
    }

    /// On the event loop: writes the direct answer, then replays what arrived meanwhile.
    private func answered(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, close: Bool, http10KeepAlive: Bool, context: ChannelHandlerContext) {
        busy = false
        if tasksRunning.value.subtract(1, ordering: .releasing).newValue == 0 {
            for waiter in idleWaiters { waiter.succeed() }
            idleWaiters.removeAll()
        }
        guard context.channel.isActive, !closing else {
            held.removeAll()
            return
        }
        closeAfterAnswer = close
        self.http10KeepAlive = http10KeepAlive
        var buffer = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        Self.serialise(status: status, headers: headers, body: body, close: close, http10KeepAlive: http10KeepAlive, date: date.now(), into: &buffer)
        if let raw {
            finish(context: context, flushNow: true) { _ in raw.write(NIOAny(IOData.byteBuffer(buffer))) }
        } else {
            // No raw writer: through the encoder, as one head and one body.
            var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status.code), headers: HTTPHeaders(headers))
            if Self.mayHaveBody(status) { head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes)) }
            if close { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            finish(context: context, flushNow: true) { ctx in ctx.write(self.wrapOutboundOut(.end(nil))) }
        }
        if close { return }
        replayHeld(context: context)
    }

    /// Succeeds on the event loop once no direct request's task is running: a connection's
    /// handling ends only then, so a graceful shutdown does not stop the service under a task
    /// whose client went away.
    func whenIdle(_ loop: any EventLoop) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        guard tasksRunning.value.load(ordering: .acquiring) > 0 else { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    private func replayHeld(context: ChannelHandlerContext) {
        var replayed = false
        // Taken out whole; whatever a replayed request leaves (it went direct again) goes back.
        var pending = held[...]
        held.removeAll()
        while !busy, !closing, context.channel.isActive, let item = pending.popFirst() {
            replayed = true
            switch item {
            case .read(let data):
                channelRead(context: context, data: data)
            case .error(let error):
                flushAnswers(context: context)
                context.fireErrorCaught(error)
            case .event(let event):
                // Answers written so far go out before an event that may close the connection.
                flushAnswers(context: context)
                context.fireUserInboundEventTriggered(event)
            }
        }
        held = context.channel.isActive && !closing ? Array(pending) + held : []
        if replayed { channelReadComplete(context: context) }
        resumeReading(context: context)
    }

    private func flushAnswers(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            (raw ?? context).flush()
        }
    }

    private func resumeReading(context: ChannelHandlerContext) {
        if readHeld, !busy, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    /// Whether an answer with this status carries a body and `Content-Length` (not 1xx, 204, 304).
    static func mayHaveBody(_ status: HTTPResponse.Status) -> Bool {
        status.code >= 200 && status.code != 204 && status.code != 304
    }

    /// A direct answer on the wire. Header values with control characters (none of the
    /// responder's) are dropped rather than written.
    static func serialise(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, close: Bool, http10KeepAlive: Bool, date: String, into buffer: inout ByteBuffer) {
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
        writeEndOfHead(close: close, http10KeepAlive: http10KeepAlive, date: date, into: &buffer)
        if bodyAllowed { buffer.writeImmutableBuffer(body) }
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
        writeEndOfHead(close: close, http10KeepAlive: http10KeepAlive, date: date, into: &buffer)
    }

    /// `Connection` (when it says something HTTP/1.1 does not assume), `Date`, and the empty line.
    private static func writeEndOfHead(close: Bool, http10KeepAlive: Bool, date: String, into buffer: inout ByteBuffer) {
        if close {
            buffer.writeStaticString("Connection: close\r\n")
        } else if http10KeepAlive {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("Date: ")
        buffer.writeString(date)
        buffer.writeStaticString("\r\n\r\n")
    }

    /// No control characters (a horizontal tab only where `tab`).
    static func isFieldValue(_ text: String, tab: Bool = false) -> Bool {
        text.utf8.allSatisfy { ($0 >= 0x20 && $0 != 0x7F) || (tab && $0 == 0x09) }
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

    func read(context: ChannelHandlerContext) {
        // Backpressure: no more requests are read while a direct answer is pending or while the
        // socket takes no more output (answers written here bypass Hummingbird's writer, which
        // would wait for writability).
        if busy || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReading(context: context)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if busy { held.append(.error(error)) } else { context.fireErrorCaught(error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A graceful shutdown closes idle connections; one with a direct request being read or
        // answered is not idle (the handlers after this one never saw that request).
        if busy || ((direct != nil || answer != nil) && event is ChannelShouldQuiesceEvent) {
            held.append(.event(event))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushAnswers(context: context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), forwarded > 0 { forwarded -= 1 }
        context.write(data, promise: promise)
    }
}

/// A count shared between the event loop and the connection's async handling.
final class TaskCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Collects a response body written through Hummingbird's `ResponseBodyWriter`.
private struct BodyCollector {
    final class Box: @unchecked Sendable {
        // Written only by the task that runs the body's writer, read after it.
        var value = ByteBuffer()
    }
    let buffer = Box()
    var failed = false

    var writer: Writer { Writer(box: buffer) }

    struct Writer: ResponseBodyWriter {
        let box: Box
        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            box.value.writeBuffer(&buffer)
        }
        mutating func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
            for var buffer in buffers { box.value.writeBuffer(&buffer) }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
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
/// response through, and gives ``FastPathHandler`` a place to write its own serialised
/// answers that skips the HTTP/1 encoder.
final class RawResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
}

/// Hummingbird's HTTP/1 child channel with ``FastPathHandler`` placed between the HTTP/1
/// decoder and the conversion to HTTPTypes (Hummingbird's `additionalChannelHandlers` go after
/// that conversion, which was a third of the `/v1/auth` fast path's cost). Everything else is as in
/// `HTTP1Channel`: the same decoder limits, the connection state handler, and `handleHTTP`.
struct GatehouseHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    /// The async channel Hummingbird reads, and the fast path (to wait for its tasks).
    struct Value: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let fastPath: NIOLoopBound<FastPathHandler>
        /// The fast path's count of running direct tasks (no hop to the loop to read it).
        let tasksRunning: TaskCounter
        var channel: any Channel { asyncChannel.channel }
    }

    let responder: HTTPChannelHandler.Responder
    let gatehouse: GatehouseResponder

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            let fastPath = FastPathHandler(responder: gatehouse, logger: logger)
            try channel.pipeline.syncOperations.addHandler(RawResponseWriter(), position: .first)
            try channel.pipeline.syncOperations.addHandler(fastPath)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            return Value(asyncChannel: asyncChannel, fastPath: NIOLoopBound(fastPath, eventLoop: channel.eventLoop), tasksRunning: fastPath.tasksRunning)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value.asyncChannel, logger: logger)
        // Hummingbird's part of the connection is over; a direct request's task may still run
        // (its client went away): the connection is done when that task is.
        let fastPath = value.fastPath
        guard value.tasksRunning.value.load(ordering: .acquiring) > 0 else { return }
        try? await fastPath.eventLoop.flatSubmit { fastPath.value.whenIdle(fastPath.eventLoop) }.get()
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the channel fast paths of ``FastPathHandler`` in front of `gatehouse`.
    static func gatehouse(_ gatehouse: GatehouseResponder) -> HTTPServerBuilder {
        .init { responder in GatehouseHTTP1Channel(responder: responder, gatehouse: gatehouse) }
    }
}
