import GatehouseHTTP
import NIOCore
import NIOHTTP1

/// The fast path's connection rules as FastPathStateMachine's documentation states them, kept as
/// plain state: what the machine must answer to each input. The fuzzer runs both side by side and
/// compares every answer.
///
/// - A request is answered here (`GET /v1/auth` at once, other routes with a bounded body
///   directly) only when no earlier request is with Hummingbird; otherwise it is passed on.
/// - While a direct answer is pending everything that arrives is held, in order, and nothing is
///   read; afterwards it is replayed in that order.
/// - After an answer with `Connection: close` nothing more is read, answered or replayed.
/// - A graceful shutdown is held while a request is read or answered here.
/// - Nothing is read while the socket takes no more output.
/// - A connection idle for the idle timeout is closed.
struct Model {
    enum Route: Equatable { case auth, direct, hummingbird }

    enum Reading {
        case between
        case auth(HTTPRequestHead)
        case direct(HTTPRequestHead, body: [UInt8])
        case forwarded(bodyBytes: Int)
    }

    /// What was held, as comparable descriptions.
    enum HeldItem: Equatable {
        case part(String)
        case error(String)
        case event(String)
    }

    let bodyLimit: Int
    let idleTimeout: Int64
    var reading = Reading.between
    var answering: Framing?
    var forwarded = 0
    var closing = false
    var held: [HeldItem] = []
    var quiescePending = false
    var readPending = false
    var writable = true
    var unflushed = false
    var idleSince: Int64 = 0
    /// A refused head waiting for the answers Hummingbird still owes.
    var pendingRefusal: Refusal?

    init(bodyLimit: Int, idleTimeout: Int64) {
        self.bodyLimit = bodyLimit
        self.idleTimeout = idleTimeout
    }

    var isIdle: Bool {
        guard case .between = reading else { return false }
        return answering == nil && forwarded == 0
    }

    var isReadingHere: Bool {
        switch reading {
        case .auth, .direct: true
        case .between, .forwarded: false
        }
    }

    var mayRead: Bool { answering == nil && writable && !closing }

    var canReplay: Bool { answering == nil && !closing && (!held.isEmpty || (quiescePending && !isReadingHere)) }

    // MARK: The routing rules (docs/api.md; FastPathStateMachine.route)

    /// `GET /v1/auth` here; a bounded body (GET, POST, PUT, DELETE to an origin-form target other
    /// than the import, no Expect other than 100-continue) directly; anything else to Hummingbird.
    static func route(_ head: HTTPRequestHead) -> Route {
        if head.method == .GET, head.uri == "/v1/auth" { return .auth }
        guard [HTTPMethod.GET, .POST, .PUT, .DELETE].contains(head.method) else { return .hummingbird }
        guard head.uri.hasPrefix("/"), !head.uri.hasPrefix("/v1/users/import") else { return .hummingbird }
        // Any other expectation was refused before routing (`refusal`); HTTP/1.0's
        // 100-continue is ignored.
        return .direct
    }

    /// One `Expect: 100-continue` (case and spaces aside) from an HTTP/1.1 (or later 1.x) client.
    static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major == 1, head.version.minor >= 1 else { return false }
        let values = head.headers.filter { $0.name.lowercased() == "expect" }.map(\.value)
        return values.count == 1 && String(values[0].lowercased().filter { $0 != " " && $0 != "\t" }) == "100-continue"
    }

    /// HTTP/1.1 keeps the connection unless a `Connection` option says `close`; HTTP/1.0 only if
    /// one says `keep-alive` and none `close` (RFC 9112 §9.3, §9.6). Options are compared without
    /// case. (As NIO's decoder numbers versions: a minor version of 0 is treated as 1.0.)
    static func framing(_ head: HTTPRequestHead) -> Framing {
        var tokens: Set<String> = []
        for field in head.headers where field.name.lowercasedASCII == "connection" {
            for option in field.value.split(separator: ",") { tokens.insert(String(option.trimmingSpaces).lowercasedASCII) }
        }
        let persistent = head.version.major >= 1 && head.version.minor >= 1
        let keepAlive = !tokens.contains("close") && (persistent || tokens.contains("keep-alive"))
        return Framing(close: !keepAlive, http10KeepAlive: keepAlive && head.version.minor == 0)
    }

    // MARK: Inputs

    enum Expected {
        case forward
        case none
        case answerAuth(HTTPRequestHead, Framing)
        case startDirect(HTTPRequestHead, body: [UInt8], Framing)
        case refuse(Refusal)
    }

    /// Why a head is refused: RFC 9112 §3.2 (exactly one Host in HTTP/1.1, never two) and
    /// RFC 9110 §10.1.1 (only a single 100-continue is an expectation the node meets; HTTP/1.0's
    /// 100-continue is ignored).
    enum Refusal: Equatable { case host, expectation }

    static func refusal(_ head: HTTPRequestHead) -> Refusal? {
        let names = head.headers.map { $0.name.lowercased() }
        let hosts = names.filter { $0 == "host" }.count
        let expectations = head.headers.filter { $0.name.lowercased() == "expect" }.map { $0.value.lowercased().filter { $0 != " " && $0 != "\t" } }
        let http11 = head.version.major > 1 || head.version.minor >= 1
        if hosts > 1 || (http11 && hosts == 0) { return .host }
        if expectations.contains(where: { $0 != "100-continue" }) { return .expectation }
        if http11, expectations.count > 1 { return .expectation }
        return nil
    }

    mutating func read(_ part: HTTPServerRequestPart, now: Int64) -> (Expected, continue: Bool) {
        if closing { return (.none, false) }
        if answering != nil {
            held.append(.part(describe(part)))
            return (.none, false)
        }
        switch part {
        case .head(let head):
            if let refusal = Self.refusal(head) {
                closing = true
                held.removeAll()
                reading = .between
                guard forwarded == 0 else {
                    pendingRefusal = refusal
                    return (.none, false)
                }
                return (.refuse(refusal), false)
            }
            let route = forwarded == 0 ? Self.route(head) : .hummingbird
            let cont = forwarded == 0 && route != .auth && Self.expectsContinue(head)
            switch route {
            case .auth:
                reading = .auth(head)
                return (.none, cont)
            case .direct:
                reading = .direct(head, body: [])
                return (.none, cont)
            case .hummingbird:
                forwarded += 1
                reading = .forwarded(bodyBytes: 0)
                return (.forward, cont)
            }
        case .body(let chunk):
            switch reading {
            case .auth:
                return (.none, false)
            case .direct(let head, let body):
                reading = .direct(head, body: body + Array(chunk.readableBytesView))
                return (.none, false)
            case .forwarded(let bytes):
                reading = .forwarded(bodyBytes: bytes + chunk.readableBytes)
                return (.forward, false)
            case .between:
                return (.forward, false)
            }
        case .end:
            switch reading {
            case .auth(let head):
                reading = .between
                let framing = Self.framing(head)
                answerWritten(framing)
                becameIdle(now)
                return (.answerAuth(head, framing), false)
            case .direct(let head, let body):
                reading = .between
                let framing = Self.framing(head)
                answering = framing
                return (.startDirect(head, body: Array(body.prefix(bodyLimit)), framing), false)
            case .forwarded, .between:
                reading = .between
                becameIdle(now)
                return (.forward, false)
            }
        }
    }

    mutating func errorCaught(_ description: String) -> Bool {
        guard answering != nil else { return true }
        held.append(.error(description))
        return false
    }

    mutating func userInboundEvent(_ description: String, isQuiesce: Bool) -> Bool {
        if isQuiesce, answering != nil || isReadingHere {
            quiescePending = true
            return false
        }
        guard answering != nil else { return true }
        held.append(.event(description))
        return false
    }

    mutating func readComplete() -> Bool {
        defer { unflushed = false }
        return unflushed
    }

    enum Answer: Equatable { case write(Framing), drop }

    mutating func directAnswered(channelIsActive: Bool, now: Int64) -> Answer {
        let framing = answering!
        answering = nil
        guard channelIsActive, !closing else {
            held.removeAll()
            return .drop
        }
        answerWritten(framing)
        unflushed = false
        becameIdle(now)
        return .write(framing)
    }

    mutating func nextHeld() -> HeldItem? {
        guard answering == nil, !closing else { return nil }
        if !held.isEmpty { return held.removeFirst() }
        guard quiescePending, !isReadingHere else { return nil }
        quiescePending = false
        return .event(quiesceDescription)
    }

    mutating func forwardedResponseEnded(now: Int64) -> Refusal? {
        guard forwarded > 0 else { return nil }
        forwarded -= 1
        becameIdle(now)
        guard forwarded == 0, let refusal = pendingRefusal else { return nil }
        pendingRefusal = nil
        return refusal
    }

    mutating func readRequested() -> Bool {
        guard mayRead else {
            readPending = true
            return false
        }
        return true
    }

    mutating func writabilityChanged(isWritable: Bool) -> Bool {
        writable = isWritable
        return resumeReading()
    }

    mutating func resumeReading() -> Bool {
        guard readPending, mayRead else { return false }
        readPending = false
        return true
    }

    enum Idle: Equatable { case none, schedule(Int64), close }

    mutating func channelActive(now: Int64) -> Idle {
        idleSince = now
        return .schedule(now + idleTimeout)
    }

    mutating func idleTimerFired(now: Int64) -> Idle {
        guard !closing else { return .none }
        // Busy (a request read, answered here or by Hummingbird): nothing can expire; the handler
        // sets the timer again when an answer is written.
        guard isIdle else { return .none }
        let deadline = idleSince + idleTimeout
        return now >= deadline ? .close : .schedule(deadline)
    }

    private mutating func answerWritten(_ framing: Framing) {
        if framing.close {
            closing = true
            held.removeAll()
            unflushed = false
        } else {
            unflushed = true
        }
    }

    private mutating func becameIdle(_ now: Int64) {
        if isIdle { idleSince = now }
    }
}

let quiesceDescription = "quiesce"

func describe(_ part: HTTPServerRequestPart) -> String {
    switch part {
    case .head(let head): "head \(head.method) \(head.uri) \(head.version) \(head.headers)"
    case .body(let buffer): "body \(Array(buffer.readableBytesView))"
    case .end(let trailers): "end \(String(describing: trailers))"
    }
}

extension String {
    var lowercasedASCII: String {
        String(decoding: utf8.map { (0x41...0x5A).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, [" ", "\t", "\r", "\n"].contains(f) { s = s.dropFirst() }
        while let l = s.last, [" ", "\t", "\r", "\n"].contains(l) { s = s.dropLast() }
        return s
    }
}
