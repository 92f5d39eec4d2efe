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
/// - A connection idle for the idle timeout (no request being read, answered here or with
///   Hummingbird) is closed. Hummingbird's own idle timer cannot do this: it sees only the
///   requests passed on to it, so it would close a connection busy with requests answered here.
package struct FastPathStateMachine {
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
    private let idleTimeout: TimeAmount?
    /// When the connection last became idle.
    private var idleSince = NIODeadline.uptimeNanoseconds(0)
    /// The head just read asked for `100 Continue` and may have it now (``takeContinue()``).
    private var continuePending = false

    /// - Parameters:
    ///   - bodyLimit: the most body bytes collected for a direct request; the rest of a longer
    ///     body is read and dropped.
    ///   - idleTimeout: how long a connection may be idle before it is closed; nil: no limit.
    package init(bodyLimit: Int, idleTimeout: TimeAmount? = nil) {
        self.bodyLimit = bodyLimit
        self.idleTimeout = idleTimeout
    }

    /// Where a request with this head goes: every request with a bounded body goes direct, except
    /// `POST /v1/users/import` (its body may be 8 MiB and is streamed), `HEAD` and other methods,
    /// an `Expect:` other than `100-continue`, and targets not in origin form.
    package static func route(_ head: HTTPRequestHead) -> Route {
        switch head.method {
        case .GET:
            if head.uri == "/v1/auth" { return .auth }
        case .POST, .PUT, .DELETE:
            break
        default:
            return .hummingbird
        }
        guard head.uri.hasPrefix("/"), !head.uri.hasPrefix("/v1/users/import"),
              !head.headers.contains(name: "expect") || Self.expectsContinue(head)
        else {
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
        return values.count == 1 && values[0].lowercased().filter { $0 != " " && $0 != "\t" } == "100-continue"
    }

    // MARK: Inbound

    package enum ReadAction {
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
        switch part {
        case .head(let head):
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
    package mutating func readComplete() -> Bool {
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

    /// Hummingbird wrote the `.end` of a response.
    package mutating func forwardedResponseEnded(now: @autoclosure () -> NIODeadline = .now()) {
        guard forwarded > 0 else { return }
        forwarded -= 1
        becameIdle(now)
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

    // MARK: Idle connections

    package enum IdleAction: Equatable {
        case none
        /// Call ``idleTimerFired(now:)`` at this time (unless a call is already scheduled).
        case schedule(NIODeadline)
        /// Close the connection.
        case close
    }

    /// The connection is active: it is idle from now (a client that connects and sends nothing
    /// is closed too).
    package mutating func channelActive(now: NIODeadline) -> IdleAction {
        idleSince = now
        return idleTimeout.map { .schedule(now + $0) } ?? .none
    }

    /// The idle timer went off. One timer per connection, moved on when it finds the connection
    /// busy or idle for less than the timeout (no timer is set per request).
    package mutating func idleTimerFired(now: NIODeadline) -> IdleAction {
        guard let idleTimeout, !closing else { return .none }
        guard isIdle else { return .schedule(now + idleTimeout) }
        let deadline = idleSince + idleTimeout
        return now >= deadline ? .close : .schedule(deadline)
    }

    /// No request is being read, answered here, or with Hummingbird.
    package var isIdle: Bool {
        guard case .betweenRequests = reading else { return false }
        return answering == nil && forwarded == 0
    }

    private mutating func becameIdle(_ now: () -> NIODeadline) {
        if idleTimeout != nil, isIdle { idleSince = now() }
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
