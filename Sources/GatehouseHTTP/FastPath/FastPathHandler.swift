import GatehouseService
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Answers requests inside the channel pipeline, straight from the HTTP/1 decoder's parts, past
/// the conversion to HTTPTypes, `NIOAsyncChannel` and Hummingbird's per-connection loop:
///
/// - `GET /v1/auth` synchronously, on the event loop, with ``AuthCheck``. It runs on every webmail
///   request: through Hummingbird a request costs a header conversion, a task hop, an async
///   sequence element and a `Request`/`Response` pair; here three header lookups, one
///   verification and one write. While a connection sends nothing but plain `GET /v1/auth`
///   heads, ``RawAuthReader`` reads them ahead of the decoder and this handler answers them
///   (``answerRawAuth(_:)``), its state machine told as if the decoder had read them.
/// - `POST /v1/login/finish` and `POST /v1/mail/authenticate` with a well-formed body from a key
///   of the route's scope on the event loop, with ``LoopRoutes``: the Redis reply comes back to
///   the loop, not to a task.
/// - Every other request with a bounded body (``FastPathStateMachine/route(_:)``) *directly*: the
///   head and body are collected here and handed to the connection's task
///   (``GatehouseHTTP1Channel/handle(value:logger:)``), where the same ``GatehouseResponder``
///   answers; the answer comes back to the event loop and is serialised and written here. Routing, bodies, errors and problems are the
///   responder's; this only replaces the transport. On the sign-in path that transport was about
///   a third of a node's CPU (benchmarks/RESULTS.md).
///
/// What to do when is decided by ``FastPathStateMachine`` (order under pipelining, holding and
/// replaying, `Connection: close`, graceful shutdown, backpressure); this handler translates
/// channel calls into its inputs and its actions into channel calls.
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The responder's `/v1/auth` decision (the responder itself runs in the connection's task).
    private let check: AuthCheck
    /// The sign-in and the mail servers' check, answered without the connection's task.
    private let loopRoutes: LoopRoutes
    private let logger: Logger
    private var state: FastPathStateMachine
    /// The context of ``RawResponseWriter`` at the head of the pipeline (set when this handler
    /// is added, which requires one): answers written there go straight to the socket, past the
    /// HTTP/1 encoder (they are serialised here, into one buffer).
    private var raw: ChannelHandlerContext!
    /// The connection's one timer (see ``FastPathStateMachine/timerFired(now:)``) and when it
    /// goes off.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    /// Where direct requests go: the connection's task answers them, one at a time (the state
    /// machine holds everything after one until its answer), and ends when this is finished (the
    /// channel is gone), so a graceful shutdown waits for an answer in flight by itself.
    private let directRequests: AsyncStream<DirectRequest>.Continuation
    /// The response Hummingbird is writing answers a `HEAD` request: its body parts are dropped.
    private var writingHeadResponse = false
    /// `Date:` for answers, formatted once per second per connection.
    private var date = HTTPDate()
    /// The last valid API key seen on this connection and whose key it is: a connection (nginx's
    /// upstream keep-alive, a front end's pool) presents the same key on every request, so the
    /// key's SHA-256 and constant-time lookup run once per connection. The plain `==` against it
    /// can only tell a client about a value it sent itself on this connection, and the configured
    /// keys do not change while the node runs.
    private var knownKey: Substring?
    private var knownCaller: APIKeyRegistry.Entry?

    /// The largest body collected for a direct request: one byte past the responder's limit, so
    /// the responder still refuses a longer one (the rest is read and dropped).
    static let bodyLimit = HTTPSupport.maximumBodyBytes + 1

    /// - Parameter timeouts: how long a connection may take at each stage.
    init(responder: GatehouseResponder, timeouts: FastPathStateMachine.Timeouts, directRequests: AsyncStream<DirectRequest>.Continuation, logger: Logger) {
        self.check = responder.authCheck
        self.loopRoutes = LoopRoutes(gatehouse: responder.authCheck.gatehouse, counters: responder.responseCounters)
        self.directRequests = directRequests
        self.logger = logger
        self.state = FastPathStateMachine(bodyLimit: Self.bodyLimit, timeouts: timeouts)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let raw = try? context.pipeline.syncOperations.context(handlerType: RawResponseWriter.self) else {
            preconditionFailure("FastPathHandler needs a RawResponseWriter nearer the socket")
        }
        self.raw = raw
        if context.channel.isActive { handleTimer(state.channelActive(now: .now()), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        directRequests.finish()
    }

    func channelActive(context: ChannelHandlerContext) {
        handleTimer(state.channelActive(now: .now()), context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        directRequests.finish()
        context.fireChannelInactive()
    }

    // MARK: Timeouts

    private func handleTimer(_ action: FastPathStateMachine.TimerAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .schedule(let deadline):
            schedule(deadline, context: context)
        case .close:
            logger.trace("closing a connection at its timeout")
            context.close(promise: nil)
        case .requestTimeout:
            logger.debug("a request was not complete within its timeout: 408, closing the connection")
            refuse(status: .requestTimeout, detail: "the request did not arrive in time", context: context)
        }
    }

    /// Moves the timer earlier when the connection now has an earlier deadline (a later one is
    /// found when the timer goes off, so nothing is rescheduled per request).
    private func armTimer(context: ChannelHandlerContext) {
        guard let deadline = state.deadline else { return }
        schedule(deadline, context: context)
    }

    private func schedule(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            self.timerDeadline = nil
            self.handleTimer(self.state.timerFired(now: .now()), context: context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action = state.read(unwrapInboundIn(data))
        if state.takeContinue() {
            // The client holds the body back until it hears this (or gives up waiting).
            raw.writeAndFlush(NIOAny(IOData.byteBuffer(context.channel.allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"))), promise: nil)
        }
        switch action {
        case .forward:
            context.fireChannelRead(data)
        case .none:
            break
        case .answerAuth(let head, let framing):
            answerAuth(PresentedCredentials(head.headers), framing: framing, context: context)
        case .startDirect(let head, let body, _):
            start(head, body: body, context: context)
        case .refuse(let problem):
            refuse(status: problem.status, detail: problem.detail, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if state.readComplete() { raw.flush() }
        armTimer(context: context)
        context.fireChannelReadComplete()
        if state.canReplay { replayHeld(context: context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state.errorCaught(error) { context.fireErrorCaught(error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { handleTimer(state.shutdownBegan(now: .now()), context: context) }
        if state.userInboundEvent(event) { context.fireUserInboundEventTriggered(event) }
    }

    func read(context: ChannelHandlerContext) {
        if state.readRequested() { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if state.writabilityChanged(isWritable: context.channel.isWritable) { context.read() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound (Hummingbird's responses)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200 || head.status == .switchingProtocols:
            writingHeadResponse = state.forwardedResponseHead()
            if writingHeadResponse, !head.headers.contains(name: "content-length") {
                // Without a length the encoder would frame the (absent) body as chunked.
                head.headers.remove(name: "transfer-encoding")
                head.headers.replaceOrAdd(name: "content-length", value: "0")
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
            context.write(data, promise: promise)
            return
        case .head:
            context.write(data, promise: promise)
            return
        case .body where writingHeadResponse:
            promise?.succeed()
            return
        case .body:
            context.write(data, promise: promise)
            return
        case .end:
            writingHeadResponse = false
        }
        let refusal = state.forwardedResponseEnded()
        context.write(data, promise: promise)
        if let refusal {
            // A refused head waited for this answer; its own goes out after it.
            context.flush()
            refuse(status: refusal.status, detail: refusal.detail, context: context)
        } else {
            armTimer(context: context)
        }
    }

    // MARK: /v1/auth read ahead of the decoder

    /// Whether ``RawAuthReader`` may answer a `GET /v1/auth` head it read (else the bytes go to
    /// the decoder).
    var mayAnswerRawAuth: Bool { state.mayAnswerRawAuth }

    /// Answers a `GET /v1/auth` head ``RawAuthReader`` read; the answer is flushed at the end of
    /// the read, with any other answers of it.
    func answerRawAuth(_ credentials: PresentedCredentials) {
        state.rawAuthAnswered()
        answerAuth(credentials, framing: Framing(close: false, http10KeepAlive: false), context: raw)
    }

    // MARK: Answers

    /// Writes an answer past the encoder: with `Connection: close` flushed at once and the
    /// connection closed once it is written; otherwise flushed now or at the end of the read.
    private func write(_ buffer: ByteBuffer, framing: Framing, flushNow: Bool = false, context: ChannelHandlerContext) {
        if framing.close {
            let channel = context.channel
            raw.writeAndFlush(NIOAny(IOData.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
        } else {
            raw.write(NIOAny(IOData.byteBuffer(buffer)), promise: nil)
            if flushNow { raw.flush() }
        }
    }

    /// The `/v1/auth` answer for these credentials, written past the encoder (both ways a head is
    /// read come here).
    private func answerAuth(_ credentials: PresentedCredentials, framing: Framing, context: ChannelHandlerContext) {
        let answer = check.decide(caller: caller(credentials.bearerKey), session: credentials.sessionToken)
        var buffer = context.channel.allocator.buffer(capacity: 240)
        FastPathEncoding.write(answer, framing: framing, date: date.now(), into: &buffer)
        write(buffer, framing: framing, context: context)
    }

    private func caller(_ key: Substring?) -> APIKeyRegistry.Entry? {
        if let key, key == knownKey { return knownCaller }
        let caller = check.caller(key)
        if caller != nil {
            knownKey = key
            knownCaller = caller
        }
        return caller
    }

    /// Answers a request the connection will not serve (a head it refuses, a request that did not
    /// arrive in time) with a problem and `Connection: close`, and closes once it is written.
    private func refuse(status: HTTPResponseStatus, detail: String, context: ChannelHandlerContext) {
        let problem = HTTPSupport.protocolProblem(status: HTTPResponse.Status(code: Int(status.code)), detail: detail)
        var buffer = context.channel.allocator.buffer(capacity: 256 + problem.body.count)
        FastPathEncoding.write(status: problem.status, headers: problem.headers, body: ByteBuffer(bytes: problem.body),
                               framing: Framing(close: true, http10KeepAlive: false), date: date.now(), into: &buffer)
        write(buffer, framing: Framing(close: true, http10KeepAlive: false), context: context)
    }

    // MARK: Direct requests

    /// Hands the request to the connection's task (``GatehouseHTTP1Channel/handle(value:logger:)``),
    /// which answers it and calls ``answered(_:context:)`` on the event loop.
    /// ``LoopRoutes`` answers the requests it takes without the task.
    private func start(_ head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        if head.method == .POST, LoopRoutes.serves(head.uri) {
            let handler = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            let taken = loopRoutes.answer(head, body: body, caller: caller(PresentedCredentials(head.headers).bearerKey), logger: logger) { answer in
                handler.eventLoop.execute { handler.value.handler.answered(answer, context: handler.value.context) }
            }
            if taken { return }
        }
        directRequests.yield(DirectRequest(head, body: body))
    }

    /// On the event loop: writes the direct answer, then replays what arrived meanwhile.
    func answered(_ answer: DirectRequest.Answer, context: ChannelHandlerContext) {
        switch state.directAnswered(channelIsActive: context.channel.isActive) {
        case .drop:
            return
        case .write(let framing):
            var buffer = context.channel.allocator.buffer(capacity: 256 + answer.body.readableBytes)
            FastPathEncoding.write(status: answer.status, headers: answer.headers, body: answer.body, framing: framing, date: date.now(), into: &buffer)
            write(buffer, framing: framing, flushNow: true, context: context)
            replayHeld(context: context)
            armTimer(context: context)
        }
    }

    /// Replays what was held while the direct answer was pending, until it is all replayed or a
    /// replayed request is answered directly again; then reads on if a read was held.
    private func replayHeld(context: ChannelHandlerContext) {
        var replayed = false
        while context.channel.isActive, let item = state.nextHeld() {
            replayed = true
            switch item {
            case .part(let part):
                channelRead(context: context, data: wrapInboundOut(part))
            case .error(let error):
                if state.flushBeforeHeldItem() { raw.flush() }
                context.fireErrorCaught(error)
            case .event(let event):
                // Answers written so far go out before an event that may close the connection.
                if state.flushBeforeHeldItem() { raw.flush() }
                context.fireUserInboundEventTriggered(event)
            }
        }
        if replayed {
            if state.readComplete() { raw.flush() }
            context.fireChannelReadComplete()
        }
        if state.resumeReading() { context.read() }
    }
}
