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
        let caller = authorization.flatMap { header in
            header.hasPrefix("Bearer ") ? apiKeys.authenticate(header.dropFirst(7)) : nil
        }
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
    /// Requests passed on to Hummingbird whose response has not ended yet.
    private var forwarded = 0
    /// The answer to the fast-path request being read (sent at its `.end`).
    private var answer: HTTPResponseHead?
    private var closeAfterAnswer = false
    private var needsFlush = false

    init(check: AuthCheck) {
        self.check = check
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if forwarded == 0, head.method == .GET, head.uri == "/v1/auth" {
                closeAfterAnswer = !head.isKeepAlive
                answer = respond(to: head)
            } else {
                forwarded += 1
                context.fireChannelRead(data)
            }
        case .body:
            if answer == nil { context.fireChannelRead(data) }
        case .end:
            guard let head = answer else {
                context.fireChannelRead(data)
                return
            }
            answer = nil
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if closeAfterAnswer {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
                needsFlush = false
            } else {
                context.write(wrapOutboundOut(.end(nil)), promise: nil)
                needsFlush = true
            }
        }
    }

    private func respond(to request: HTTPRequestHead) -> HTTPResponseHead {
        let headers = request.headers
        let answer = check.decide(
            authorization: headers.first(name: "authorization"),
            session: headers.first(name: "gatehouse-session"),
            cookie: headers.first(name: "cookie")
        )
        var fields: [(String, String)] = []
        switch answer {
        case .valid(let user, let sessionID, let authTime):
            fields = [("Gatehouse-User", user), ("Gatehouse-Session-Id", sessionID), ("Gatehouse-Auth-Time", String(authTime))]
        case .unavailable:
            fields = [("Retry-After", "5"), ("Content-Length", "0")]
        case .unauthorized, .forbidden:
            fields = [("Content-Length", "0")]
        }
        if closeAfterAnswer {
            fields.append(("Connection", "close"))
        } else if request.version.minor == 0 {
            fields.append(("Connection", "keep-alive"))
        }
        return HTTPResponseHead(
            version: .http1_1,
            status: HTTPResponseStatus(statusCode: answer.status.code),
            headers: HTTPHeaders(fields)
        )
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), forwarded > 0 { forwarded -= 1 }
        context.write(data, promise: promise)
    }
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
