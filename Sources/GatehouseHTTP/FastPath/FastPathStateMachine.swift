package import NIOCore
package import NIOHTTP1

/// One HTTP/1 connection as the fast path sees it, as a value with no I/O: the request being
/// read, the direct answer pending, the requests Hummingbird has, what is held meanwhile, and
/// whether the socket may be read. ``FastPathHandler`` owns one per connection on the event loop,
/// feeds it what the channel reports and does what each method returns.
///
/// The rules (HTTP/1.1 pipelining, RFC 9112 §9.3):
/// - A request is answered here (`/v1/auth` at once, others directly through the responder) only
///   when no earlier request of the connection is with Hummingbird (counted from the head passed
///   on until its response's `.end` comes back); otherwise it goes to Hummingbird too.
/// - While a direct answer is pending, everything that arrives (parts, errors, events) is held and
///   no more is read; after the answer it is replayed in order.
/// - A request that does not keep the connection alive gets `Connection: close`; after that
///   answer nothing more is read, answered or replayed.
/// - A graceful shutdown (`ChannelShouldQuiesceEvent`) is held while a request is read or
///   answered here (the handlers after the fast path never saw it, so they would call the
///   connection idle).
/// - Nothing is read while the socket takes no more output (a client that sends requests but
///   does not read answers): answers written here bypass Hummingbird's writer, which waits for
///   writability.
/// - A head that breaks HTTP/1.1's framing rules (``HeadProblem``: no `Host` or two, an
///   expectation other than `100-continue`) is refused with `Connection: close`, after the answers
///   owed to earlier requests, and nothing more is read.
/// - Slow clients are timed out (``Timeouts``): a connection idle for the idle timeout (no
///   request being read, answered here or with Hummingbird) is closed; a head still incomplete
///   the head timeout after its first byte (or after the connection opened), or a declared body
///   still incomplete the body timeout after its head, gets `408` and the connection is closed.
///   Hummingbird's own idle timer cannot do this: it sees only the requests passed on to it, so
///   it would close a connection busy with requests answered here.
/// - After a graceful shutdown began, a connection still open after the shutdown timeout is
///   closed, whatever it is doing, so that a stopping node exits in bounded time.
package struct FastPathStateMachine {
    /// How long a connection may take at each stage; nil: no limit.
    package struct Timeouts: Equatable, Sendable {
        /// No request for this long after the last answer (or after the connection opened, when
        /// there is no head timeout): closed.
        package var idle: TimeAmount?
        /// A head still incomplete this long after its first byte: `408`, closed. A new connection
        /// must send its first head within this long too (closed without an answer).
        package var head: TimeAmount?
        /// A body still incomplete this long after its head: `408` (closed only, when the request
        /// is with Hummingbird).
        package var body: TimeAmount?
        /// After a graceful shutdown began: closed this long after it, whatever is in progress.
        package var shutdown: TimeAmount?

        package init(idle: TimeAmount? = nil, head: TimeAmount? = nil, body: TimeAmount? = nil, shutdown: TimeAmount? = nil) {
            self.idle = idle
            self.head = head
            self.body = body
            self.shutdown = shutdown
        }
    }

    /// A request head the connection refuses (RFC 9112 §3.2, RFC 9110 §10.1.1).
    package enum HeadProblem: Equatable, Sendable {
        /// HTTP/1.1 without exactly one `Host` field, or HTTP/1.0 with several: `400`.
        case host
        /// An `Expect` other than one `100-continue`: `417`.
        case expectation

        package var status: HTTPResponseStatus {
            switch self {
            case .host: .badRequest
            case .expectation: .expectationFailed
            }
        }

        package var detail: String {
            switch self {
            case .host: "an HTTP/1.1 request needs exactly one Host field"
            case .expectation: "the only expectation supported is Expect: 100-continue"
            }
        }
    }

    /// Where a request goes.
    package enum Route: Equatable, Sendable {
        /// `GET /v1/auth`: answered on the event loop.
        case auth
        /// Collected (head and bounded body) and answered through the responder, past Hummingbird.
        case direct
        /// Passed on to Hummingbird.
        case hummingbird
    }

    /// Something that arrived while a direct answer was pending.
    package enum Held {
        case part(HTTPServerRequestPart)
        case error(any Error)
        case event(Any)
    }

    /// The request being read.
    private enum Reading {
        case betweenRequests
        case auth(HTTPRequestHead)
        case direct(HTTPRequestHead, body: ByteBuffer)
        /// Its parts go to Hummingbird.
        case forwarded
        /// Only while a body part is added (keeps the body buffer uniquely referenced).
        case modifying
    }

    private var reading = Reading.betweenRequests
    /// The direct request being answered (how its answer ends), if one is.
    private var answering: Framing?
    /// Requests passed on to Hummingbird whose response has not ended yet.
    private var forwarded = 0
    /// For each request passed on to Hummingbird whose response head has not been written yet,
    /// whether it is a `HEAD` (its response is written without a body: ``forwardedResponseHead()``).
    /// The HTTP/1 encoder is not told the methods itself: it would have to be told of every
    /// request, including the ones answered here, whose answers never pass through it.
    private var forwardedHeadMethods: [Bool] = []
    /// An answer with `Connection: close` went out.
    private var closing = false
    /// What arrived while answering, and how much of it has been replayed. (An array: empty, it
    /// allocates nothing, and a connection is set up per nginx upstream connection. It holds at
    /// most the parts of one read.)
    private var held: [Held] = []
    private var replayed = 0
    /// A graceful shutdown arrived while a request was read or answered here; it goes on once
    /// none is (after whatever else was held).
    private var quiescePending = false
    /// A read asked for while it could not be passed on.
    private var readPending = false
    private var writable = true
    /// Answers written and not flushed (pipelined answers go out in one system call at the end
    /// of a read).
    private var unflushed = false
    /// The largest body collected for a direct request.
    private let bodyLimit: Int
    private let timeouts: Timeouts
    /// When the connection last became idle.
    private var idleSince = NIODeadline.uptimeNanoseconds(0)
    /// A head is being read in pieces: since when (for the head timeout), and whether any of it
    /// has arrived (a connection that sent nothing at all is closed without an answer).
    private var headStarted: NIODeadline?
    private var headBytesSeen = false
    /// The request's body is being read in pieces: since when (for the body timeout).
    private var bodyStarted: NIODeadline?
    /// A part was decoded since the last end of a read (a read that decoded nothing left a head
    /// or body incomplete).
    private var decodedThisRead = false
    /// When a graceful shutdown closes this connection, whatever it is doing.
    private var shutdownDeadline: NIODeadline?
    /// A refused head behind requests Hummingbird still answers: its answer goes out after theirs.
    private var pendingRefusal: HeadProblem?
    /// The head just read asked for `100 Continue` and may have it now (``takeContinue()``).
    private var continuePending = false

    /// - Parameters:
    ///   - bodyLimit: the most body bytes collected for a direct request; the rest of a longer
    ///     body is read and dropped.
    ///   - timeouts: how long a connection may take at each stage.
    package init(bodyLimit: Int, timeouts: Timeouts = Timeouts()) {
        self.bodyLimit = bodyLimit
        self.timeouts = timeouts
    }

    /// Where a request with this head goes: every request with a bounded body goes direct, except
    /// `POST /v1/users/import` (its body may be 8 MiB and is streamed), `HEAD` and other methods,
    /// and targets not in origin form. (Heads with another expectation than `100-continue` are
    /// refused before they are routed: ``problem(_:)``.)
    package static func route(_ head: HTTPRequestHead) -> Route {
        switch head.method {
        case .GET:
            if head.uri == "/v1/auth" { return .auth }
        case .POST, .PUT, .DELETE:
            break
        default:
            return .hummingbird
        }
        guard head.uri.hasPrefix("/"), !head.uri.hasPrefix("/v1/users/import") else {
            return .hummingbird
        }
        return .direct
    }

    /// Whether the client waits for `100 Continue` before it sends the body: `Expect: 100-continue`
    /// from an HTTP/1.1 client (RFC 9110 §10.1.1; never to HTTP/1.0). Dovecot's HTTP client, for
    /// one, sends every body this way and waits up to 2 s for the interim answer.
    package static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major == 1, head.version.minor >= 1 else { return false }
        let values = head.headers["expect"]
        return values.count == 1 && isContinue(values[0])
    }

    private static func isContinue(_ value: String) -> Bool {
        value.lowercased().filter { $0 != " " && $0 != "\t" } == "100-continue"
    }

    /// What is wrong with a head that every path refuses, if anything: HTTP/1.1 without exactly
    /// one `Host` (RFC 9112 §3.2; HTTP/1.0 may omit it, but not send two), and any expectation but
    /// a single `100-continue` (which HTTP/1.0 requests may carry and is then ignored). One pass
    /// over the fields, no allocation for the usual head.
    package static func problem(_ head: HTTPRequestHead) -> HeadProblem? {
        var hosts = 0
        var expectations = 0
        var onlyContinue = true
        for (name, value) in head.headers {
            if HeaderName.equals(name, "host") {
                hosts += 1
            } else if HeaderName.equals(name, "expect") {
                expectations += 1
                if !isContinue(value) { onlyContinue = false }
            }
        }
        let http11 = head.version.major > 1 || head.version.minor >= 1
        if hosts > 1 || (http11 && hosts == 0) { return .host }
        if expectations > 0, !onlyContinue || (expectations > 1 && http11) { return .expectation }
        return nil
    }

    // MARK: Inbound

    package enum ReadAction: Equatable {
        /// Pass the part on to Hummingbird.
        case forward
        /// Nothing to do (the part was collected, held or dropped).
        case none
        /// Write the `/v1/auth` answer for this head now; flush at the end of the read, or at once
        /// and then close if `framing.close`.
        case answerAuth(HTTPRequestHead, Framing)
        /// Answer this request through the responder; call ``directAnswered(channelIsActive:)``
        /// when the answer is ready.
        case startDirect(HTTPRequestHead, body: ByteBuffer, Framing)
        /// Refuse the request with this problem, flush, and close the connection.
        case refuse(HeadProblem)
    }

    /// A request part from the HTTP/1 decoder (also a replayed one). `now` is read only when the
    /// part leaves the connection idle.
    package mutating func read(_ part: HTTPServerRequestPart, now: @autoclosure () -> NIODeadline = .now()) -> ReadAction {
        // After a `Connection: close` answer, whatever else was sent is not looked at (RFC 9112 §9.6).
        if closing { return .none }
        if answering != nil {
            held.append(.part(part))
            return .none
        }
        decodedThisRead = true
        switch part {
        case .head(let head):
            headStarted = nil
            headBytesSeen = false
            bodyStarted = nil
            if let problem = Self.problem(head) {
                // Nothing after this head is read; its answer goes out after those owed before it.
                closing = true
                dropHeld()
                reading = .betweenRequests
                guard forwarded == 0 else {
                    pendingRefusal = problem
                    return .none
                }
                return .refuse(problem)
            }
            let route = forwarded == 0 ? Self.route(head) : .hummingbird
            // Only while no earlier request is with Hummingbird: its answers must go out first.
            continuePending = forwarded == 0 && route != .auth && Self.expectsContinue(head)
            switch route {
            case .auth:
                reading = .auth(head)
                return .none
            case .direct:
                reading = .direct(head, body: ByteBuffer())
                return .none
            case .hummingbird:
                forwarded += 1
                forwardedHeadMethods.append(head.method == .HEAD)
                reading = .forwarded
                return .forward
            }
        case .body(var chunk):
            switch reading {
            case .auth:
                return .none
            case .direct(let head, var body):
                reading = .modifying
                let room = bodyLimit - body.readableBytes
                if room > 0, let part = chunk.readSlice(length: min(room, chunk.readableBytes)) {
                    // A body in one part (the usual case) is kept as the decoder's slice, not copied.
                    if body.readableBytes == 0 { body = part } else { body.writeImmutableBuffer(part) }
                }
                reading = .direct(head, body: body)
                return .none
            case .forwarded, .betweenRequests, .modifying:
                return .forward
            }
        case .end:
            bodyStarted = nil
            switch reading {
            case .auth(let head):
                reading = .betweenRequests
                let framing = Framing(head)
                answerWritten(framing)
                becameIdle(now)
                return .answerAuth(head, framing)
            case .direct(let head, let body):
                reading = .betweenRequests
                let framing = Framing(head)
                answering = framing
                return .startDirect(head, body: body, framing)
            case .forwarded, .betweenRequests, .modifying:
                reading = .betweenRequests
                becameIdle(now)
                return .forward
            }
        }
    }

    /// Whether a `GET /v1/auth` head read ahead of the decoder (``RawAuthReader``) may be
    /// answered now, as ``read(_:now:)`` would answer it at once: nothing is being read, answered
    /// or held, no earlier request is with Hummingbird, the socket takes output, and no shutdown
    /// began. Otherwise the bytes go to the decoder.
    package var mayAnswerRawAuth: Bool {
        isIdle && mayRead && held.isEmpty && !headBytesSeen && !quiescePending && shutdownDeadline == nil
    }

    /// A `GET /v1/auth` head read ahead of the decoder was answered (with the connection kept
    /// alive): what ``read(_:now:)`` does for such a head and its end.
    package mutating func rawAuthAnswered(now: @autoclosure () -> NIODeadline = .now()) {
        precondition(mayAnswerRawAuth, "a raw /v1/auth head is answered only when mayAnswerRawAuth")
        decodedThisRead = true
        headStarted = nil
        headBytesSeen = false
        bodyStarted = nil
        answerWritten(Framing(close: false, http10KeepAlive: false))
        becameIdle(now)
    }

    /// After ``read(_:now:)``: whether to write `100 Continue` now, before anything the read's
    /// action writes or passes on, so the client sends the body (answered once per head).
    package mutating func takeContinue() -> Bool {
        defer { continuePending = false }
        return continuePending
    }

    /// An error from the pipeline: false to hold it (a direct answer is pending), true to pass it on.
    package mutating func errorCaught(_ error: any Error) -> Bool {
        guard answering != nil else { return true }
        held.append(.error(error))
        return false
    }

    /// An inbound user event: false to hold it, true to pass it on.
    package mutating func userInboundEvent(_ event: Any) -> Bool {
        if event is ChannelShouldQuiesceEvent, answering != nil || isReadingHere {
            quiescePending = true
            return false
        }
        guard answering != nil else { return true }
        held.append(.event(event))
        return false
    }

    /// The end of a read from the socket: whether to flush answers written since the last flush.
    /// Starts the head or body timeout when the read left a request incomplete (`now` is read only
    /// then): a read that decoded no part left a head in pieces between requests; one that ends
    /// inside a request left its body incomplete. (A read that decoded parts and then stopped
    /// inside the next head is not seen as such: that head is bounded by the idle timeout.)
    package mutating func readComplete(now: @autoclosure () -> NIODeadline = .now()) -> Bool {
        if !closing {
            switch reading {
            case .betweenRequests:
                if !decodedThisRead, timeouts.head != nil, !headBytesSeen {
                    if headStarted == nil { headStarted = now() }
                    headBytesSeen = true
                }
            case .auth, .direct, .forwarded:
                if bodyStarted == nil, timeouts.body != nil { bodyStarted = now() }
            case .modifying:
                break
            }
        }
        decodedThisRead = false
        defer { unflushed = false }
        return unflushed
    }

    // MARK: Direct answers

    package enum AnswerAction: Equatable {
        /// Write the answer and flush at once (and close after it if `framing.close`), then replay.
        case write(Framing)
        /// The connection is gone or closing: drop the answer.
        case drop
    }

    /// The answer to the pending direct request is ready.
    package mutating func directAnswered(channelIsActive: Bool, now: @autoclosure () -> NIODeadline = .now()) -> AnswerAction {
        guard let framing = answering else { preconditionFailure("a direct answer with no direct request pending") }
        answering = nil
        guard channelIsActive, !closing else {
            dropHeld()
            return .drop
        }
        answerWritten(framing)
        // Flushed at once: no read is in progress whose end would flush it.
        unflushed = false
        becameIdle(now)
        return .write(framing)
    }

    /// The next held item to replay now: nil when none is left, or when a replayed request is
    /// being answered directly again (the rest stays held, ahead of anything read later).
    package mutating func nextHeld() -> Held? {
        guard answering == nil, !closing else { return nil }
        guard replayed < held.count else {
            guard quiescePending, !isReadingHere else { return nil }
            quiescePending = false
            return .event(ChannelShouldQuiesceEvent())
        }
        let item = held[replayed]
        replayed += 1
        if replayed == held.count {
            held.removeAll(keepingCapacity: true)
            replayed = 0
        }
        return item
    }

    /// Whether something held can be replayed now (a shutdown held while a request was read
    /// here, once it is answered).
    package var canReplay: Bool {
        answering == nil && !closing && (replayed < held.count || (quiescePending && !isReadingHere))
    }

    /// Before a replayed error or event reaches the handlers after this one: whether answers
    /// written so far must be flushed first (an event may close the connection).
    package mutating func flushBeforeHeldItem() -> Bool {
        readComplete()
    }

    // MARK: Outbound and reading

    /// Hummingbird writes a final response head: whether it answers a `HEAD` request (then its
    /// body is not written, RFC 9110 §9.3.2).
    package mutating func forwardedResponseHead() -> Bool {
        forwardedHeadMethods.isEmpty ? false : forwardedHeadMethods.removeFirst()
    }

    /// Hummingbird wrote the `.end` of a response: the refusal to write now, if one waited for it.
    package mutating func forwardedResponseEnded(now: @autoclosure () -> NIODeadline = .now()) -> HeadProblem? {
        guard forwarded > 0 else { return nil }
        forwarded -= 1
        becameIdle(now)
        guard forwarded == 0, let refusal = pendingRefusal else { return nil }
        pendingRefusal = nil
        return refusal
    }

    /// The channel asks to read from the socket: whether to pass the request on now (otherwise
    /// it is passed on by ``resumeReading()`` or ``writabilityChanged(isWritable:)``).
    package mutating func readRequested() -> Bool {
        guard mayRead else {
            readPending = true
            return false
        }
        return true
    }

    /// The socket's writability changed: whether to pass on a read held for it.
    package mutating func writabilityChanged(isWritable: Bool) -> Bool {
        writable = isWritable
        return resumeReading()
    }

    /// After a direct answer and its replay: whether to pass on a read held meanwhile.
    package mutating func resumeReading() -> Bool {
        guard readPending, mayRead else { return false }
        readPending = false
        return true
    }

    // MARK: Timeouts

    package enum TimerAction: Equatable {
        case none
        /// Call ``timerFired(now:)`` at this time (unless a call is already due earlier).
        case schedule(NIODeadline)
        /// Close the connection.
        case close
        /// Answer `408` with `Connection: close`, then close (nothing more is read).
        case requestTimeout
    }

    /// The connection is active: a first head must arrive within the head timeout (else the idle
    /// timeout) from now; a client that connects and sends nothing is closed.
    package mutating func channelActive(now: NIODeadline) -> TimerAction {
        idleSince = now
        if timeouts.head != nil { headStarted = now }
        return deadline.map { .schedule($0) } ?? .none
    }

    /// A graceful shutdown began (seen here whether or not it is held): the connection is closed
    /// at the shutdown timeout at the latest. Returns the timer to set.
    package mutating func shutdownBegan(now: NIODeadline) -> TimerAction {
        guard shutdownDeadline == nil, let shutdown = timeouts.shutdown else { return .none }
        shutdownDeadline = now + shutdown
        return deadline.map { .schedule($0) } ?? .none
    }

    /// The earliest time something must be looked at: the shutdown deadline, and the head, body
    /// or idle deadline of what the connection is doing. Nil while nothing can expire (a request is
    /// being answered, here or by Hummingbird, and no shutdown began); the handler asks again
    /// when an answer is written.
    package var deadline: NIODeadline? {
        var earliest = shutdownDeadline
        func consider(_ time: NIODeadline) {
            if earliest.map({ time < $0 }) ?? true { earliest = time }
        }
        guard !closing else { return earliest }
        switch reading {
        case .auth, .direct, .forwarded:
            if let bodyStarted, let body = timeouts.body { consider(bodyStarted + body) }
        case .betweenRequests:
            if let headStarted, let head = timeouts.head { consider(headStarted + head) }
            // Idle until a head begins (a new connection is both: the earlier deadline applies).
            if isIdle, !headBytesSeen, let idle = timeouts.idle { consider(idleSince + idle) }
        case .modifying:
            break
        }
        return earliest
    }

    /// The connection's timer went off (one timer per connection, moved on when it finds nothing
    /// due; none is set per request).
    package mutating func timerFired(now: NIODeadline) -> TimerAction {
        if let shutdownDeadline, now >= shutdownDeadline { return .close }
        guard !closing else { return deadline.map { .schedule($0) } ?? .none }
        switch reading {
        case .auth, .direct, .forwarded:
            if let bodyStarted, let body = timeouts.body, now >= bodyStarted + body {
                return timedOut(answer: forwarded == 0)
            }
        case .betweenRequests:
            if let headStarted, let head = timeouts.head, now >= headStarted + head {
                return timedOut(answer: headBytesSeen && forwarded == 0 && answering == nil)
            }
            if isIdle, !headBytesSeen, let idle = timeouts.idle, now >= idleSince + idle { return .close }
        case .modifying:
            break
        }
        return deadline.map { .schedule($0) } ?? .none
    }

    /// A request was too slow: nothing more is read; a `408` when nothing else is owed first.
    private mutating func timedOut(answer: Bool) -> TimerAction {
        closing = true
        dropHeld()
        return answer ? .requestTimeout : .close
    }

    /// No request is being read, answered here, or with Hummingbird.
    package var isIdle: Bool {
        guard case .betweenRequests = reading else { return false }
        return answering == nil && forwarded == 0
    }

    private mutating func becameIdle(_ now: () -> NIODeadline) {
        if timeouts.idle != nil, isIdle { idleSince = now() }
    }

    // MARK: State

    /// Whether a request is being read to be answered here.
    private var isReadingHere: Bool {
        switch reading {
        case .auth, .direct: true
        case .betweenRequests, .forwarded, .modifying: false
        }
    }

    private var mayRead: Bool { answering == nil && writable && !closing }

    /// Whether a direct request is being answered.
    package var isAnswering: Bool { answering != nil }

    /// Whether the connection is closing after a `Connection: close` answer.
    package var isClosing: Bool { closing }

    /// How many requests Hummingbird has whose response has not ended.
    package var forwardedCount: Int { forwarded }

    private mutating func answerWritten(_ framing: Framing) {
        if framing.close {
            closing = true
            dropHeld()
            // The close path flushes at once.
            unflushed = false
        } else {
            unflushed = true
        }
    }

    private mutating func dropHeld() {
        held.removeAll()
        replayed = 0
    }
}
