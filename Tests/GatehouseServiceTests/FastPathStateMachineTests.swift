import Foundation
import GatehouseHTTP
import GatehouseService
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing

/// The fast path's connection rules, driven through ``FastPathStateMachine`` alone: no sockets,
/// no channels, no event loop. (`FastPathTests` checks the same rules on the wire.)
@Suite("Fast path state machine")
struct FastPathStateMachineTests {
    /// A head with `Host: t` added (HTTP/1.1 requires one) unless `headers` has one or `host` is false.
    static func head(_ method: HTTPMethod = .GET, _ uri: String = "/v1/auth", version: HTTPVersion = .http1_1, _ headers: [(String, String)] = [], host: Bool = true) -> HTTPServerRequestPart {
        var fields = headers
        if host, !fields.contains(where: { $0.0.lowercased() == "host" }) { fields.insert(("Host", "t"), at: 0) }
        return .head(HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields)))
    }
    static let auth = head()
    static let end = HTTPServerRequestPart.end(nil)
    static func body(_ text: String) -> HTTPServerRequestPart { .body(ByteBuffer(string: text)) }

    /// Reads a whole request and returns the action of its last part.
    static func request(_ state: inout FastPathStateMachine, _ head: HTTPServerRequestPart, body: String? = nil) -> FastPathStateMachine.ReadAction {
        _ = state.read(head)
        if let body { _ = state.read(Self.body(body)) }
        return state.read(end)
    }

    @Test("routes: /v1/auth here, bounded bodies direct (Expect: 100-continue too), the import, HEAD and absolute targets to Hummingbird")
    func routes() {
        func route(_ part: HTTPServerRequestPart) -> FastPathStateMachine.Route {
            guard case .head(let head) = part else { return .hummingbird }
            return FastPathStateMachine.route(head)
        }
        #expect(route(Self.auth) == .auth)
        #expect(route(Self.head(.POST, "/v1/login/start")) == .direct)
        #expect(route(Self.head(.GET, "/healthz")) == .direct)
        #expect(route(Self.head(.DELETE, "/v1/me/devices")) == .direct)
        #expect(route(Self.head(.POST, "/v1/users/import")) == .hummingbird)
        #expect(route(Self.head(.HEAD, "/healthz")) == .hummingbird)
        #expect(route(Self.head(.POST, "/v1/mail/authenticate", [("Expect", "100-continue")])) == .direct)
        #expect(route(Self.head(.POST, "/v1/login/start", version: .http1_0, [("Expect", "100-continue")])) == .direct, "ignored in HTTP/1.0")
        #expect(route(Self.head(.GET, "http://t/healthz")) == .hummingbird)
    }

    @Test("Expect: 100-continue gets 100 Continue once, at its head: not from HTTP/1.0, not behind Hummingbird, not while held")
    func continueBeforeTheBody() {
        let expecting = Self.head(.POST, "/v1/mail/authenticate", [("Expect", "100-Continue")])
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.read(expecting).isNone)
        #expect(state.takeContinue() == true)
        #expect(state.takeContinue() == false, "once per head")
        _ = state.read(Self.body("{}"))
        #expect(state.takeContinue() == false)
        guard case .startDirect = state.read(Self.end) else { Issue.record("not answered directly"); return }
        // Held while that answer is pending: no 100 yet; it comes when the head is replayed.
        #expect(state.read(expecting).isNone)
        #expect(state.takeContinue() == false)
        #expect(state.directAnswered(channelIsActive: true) == .write(Framing(close: false, http10KeepAlive: false)))
        guard case .part(let replayed) = state.nextHeld() else { Issue.record("nothing held"); return }
        _ = state.read(replayed)
        #expect(state.takeContinue() == true)
        _ = state.read(Self.end)

        // HTTP/1.0 never gets one; nor does a request behind one Hummingbird still answers.
        var old = FastPathStateMachine(bodyLimit: 100)
        _ = old.read(Self.head(.POST, "/v1/mail/authenticate", version: .http1_0, [("Expect", "100-continue")]))
        #expect(old.takeContinue() == false)
        var behind = FastPathStateMachine(bodyLimit: 100)
        _ = Self.request(&behind, Self.head(.POST, "/v1/users/import"), body: "{}\n")
        #expect(behind.read(expecting).isForward)
        #expect(behind.takeContinue() == false)
        // No body to wait for on /v1/auth.
        var auth = FastPathStateMachine(bodyLimit: 100)
        _ = auth.read(Self.head(.GET, "/v1/auth", [("Expect", "100-continue")]))
        #expect(auth.takeContinue() == false)
    }

    @Test("pipelined /v1/auth requests are answered in order and flushed once at the end of the read")
    func pipelinedAuth() {
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.read(Self.auth).isNone)
        guard case .answerAuth(_, let first) = state.read(Self.end) else { Issue.record("no answer"); return }
        guard case .answerAuth(_, let second) = Self.request(&state, Self.auth) else { Issue.record("no answer"); return }
        #expect(first == Framing(close: false, http10KeepAlive: false) && second == first)
        #expect(state.readComplete() == true)
        #expect(state.readComplete() == false, "one flush for the read")
    }

    @Test("a request behind one Hummingbird has goes to Hummingbird too, until its response ends")
    func behindHummingbird() {
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.read(Self.head(.POST, "/v1/users/import")).isForward)
        #expect(state.read(Self.body("{}\n")).isForward)
        #expect(state.read(Self.end).isForward)
        // /v1/auth and a direct request pipelined behind it: all parts forwarded.
        #expect(state.read(Self.auth).isForward)
        #expect(state.read(Self.end).isForward)
        #expect(state.read(Self.head(.POST, "/v1/login/start")).isForward)
        #expect(state.read(Self.body("{}")).isForward)
        #expect(state.read(Self.end).isForward)
        #expect(state.forwardedCount == 3)
        state.forwardedResponseEnded()
        state.forwardedResponseEnded()
        state.forwardedResponseEnded()
        // All answered: the next /v1/auth is answered here again.
        guard case .answerAuth = Self.request(&state, Self.auth) else { Issue.record("not answered here"); return }
    }

    @Test("while a direct answer is pending everything is held and not read; after it, replayed in order")
    func holdAndReplay() {
        struct Failure: Error {}
        var state = FastPathStateMachine(bodyLimit: 100)
        guard case .startDirect(let head, let body, let framing) = Self.request(&state, Self.head(.POST, "/v1/login/start"), body: "{\"user\":1}") else {
            Issue.record("not direct"); return
        }
        #expect(head.uri == "/v1/login/start" && String(buffer: body) == "{\"user\":1}" && !framing.close)
        #expect(state.isAnswering)
        // A pipelined /v1/auth, an error and an event arrive meanwhile: all held, no read.
        #expect(state.read(Self.auth).isNone)
        #expect(state.read(Self.end).isNone)
        #expect(state.errorCaught(Failure()) == false)
        #expect(state.userInboundEvent("an event") == false)
        #expect(state.readRequested() == false)
        #expect(state.nextHeld() == nil, "nothing replays before the answer")
        #expect(state.directAnswered(channelIsActive: true) == .write(framing))
        // Replayed in the order they came: the /v1/auth request is answered when replayed.
        guard case .part(let first) = state.nextHeld() else { Issue.record("no head"); return }
        #expect(state.read(first).isNone)
        guard case .part(let second) = state.nextHeld(), case .answerAuth = state.read(second) else { Issue.record("no auth answer"); return }
        guard case .error(let error) = state.nextHeld() else { Issue.record("no error"); return }
        #expect(error is Failure)
        #expect(state.flushBeforeHeldItem() == true, "the replayed answer goes out before the error")
        guard case .event(let event) = state.nextHeld() else { Issue.record("no event"); return }
        #expect(event as? String == "an event")
        #expect(state.nextHeld() == nil)
        #expect(state.resumeReading() == true, "the read held meanwhile is passed on")
        #expect(state.resumeReading() == false, "once")
    }

    @Test("a replayed direct request holds the rest again, ahead of what is read later")
    func replayStopsAtDirect() {
        var state = FastPathStateMachine(bodyLimit: 100)
        guard case .startDirect = Self.request(&state, Self.head(.GET, "/healthz")) else { Issue.record("not direct"); return }
        for part in [Self.head(.GET, "/healthz"), Self.end, Self.auth, Self.end] { #expect(state.read(part).isNone) }
        _ = state.directAnswered(channelIsActive: true)
        guard case .part(let head) = state.nextHeld(), case .part(let end) = state.nextHeld() else { Issue.record("nothing held"); return }
        #expect(state.read(head).isNone)
        guard case .startDirect = state.read(end) else { Issue.record("not direct"); return }
        #expect(state.nextHeld() == nil, "the /v1/auth behind it waits for its answer")
        #expect(state.read(Self.head(.GET, "/v1/later")).isNone, "read later: held behind the rest")
        _ = state.directAnswered(channelIsActive: true)
        guard case .part(let authHead) = state.nextHeld(), case .head(let h) = authHead, h.uri == "/v1/auth" else { Issue.record("order lost"); return }
        guard case .part = state.nextHeld(), case .part(let later) = state.nextHeld(), case .head(let l) = later else { Issue.record("order lost"); return }
        #expect(l.uri == "/v1/later")
    }

    @Test("Connection: close: the answer closes, nothing after it is read, answered or replayed")
    func connectionClose() {
        var state = FastPathStateMachine(bodyLimit: 100)
        guard case .answerAuth(_, let framing) = Self.request(&state, Self.head(.GET, "/v1/auth", [("Connection", "close")])) else {
            Issue.record("no answer"); return
        }
        #expect(framing.close)
        #expect(state.isClosing)
        #expect(state.read(Self.head(.GET, "/healthz")).isNone)
        #expect(state.read(Self.end).isNone)
        #expect(state.readRequested() == false)
        #expect(state.readComplete() == false, "the close path flushed at once")

        // A direct request with close: what was held behind it is dropped.
        var direct = FastPathStateMachine(bodyLimit: 100)
        guard case .startDirect(_, _, let closing) = Self.request(&direct, Self.head(.GET, "/healthz", [("Connection", "close")])) else {
            Issue.record("not direct"); return
        }
        #expect(closing.close)
        _ = Self.request(&direct, Self.auth)
        #expect(direct.directAnswered(channelIsActive: true) == .write(closing))
        #expect(direct.nextHeld() == nil)
        #expect(direct.resumeReading() == false)
    }

    @Test("a direct answer for a connection that went away is dropped with what was held")
    func answerAfterClose() {
        var state = FastPathStateMachine(bodyLimit: 100)
        _ = Self.request(&state, Self.head(.GET, "/healthz"))
        _ = Self.request(&state, Self.auth)
        #expect(state.directAnswered(channelIsActive: false) == .drop)
        #expect(state.nextHeld() == nil)
    }

    @Test("HTTP/1.0: keep-alive only when asked for, and then said in the answer", arguments: [
        ([(String, String)](), Framing(close: true, http10KeepAlive: false)),
        ([("Connection", "keep-alive")], Framing(close: false, http10KeepAlive: true)),
    ])
    func http10(headers: [(String, String)], expected: Framing) {
        var state = FastPathStateMachine(bodyLimit: 100)
        guard case .answerAuth(_, let framing) = Self.request(&state, Self.head(.GET, "/v1/auth", version: .http1_0, headers)) else {
            Issue.record("no answer"); return
        }
        #expect(framing == expected)
        var direct = FastPathStateMachine(bodyLimit: 100)
        guard case .startDirect(_, _, let directFraming) = Self.request(&direct, Self.head(.POST, "/v1/sessions/verify", version: .http1_0, headers), body: "{}") else {
            Issue.record("not direct"); return
        }
        #expect(directFraming == expected)
    }

    @Test("a graceful shutdown waits for a request read or answered here; passes on otherwise")
    func quiesce() {
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.userInboundEvent(ChannelShouldQuiesceEvent()) == true, "idle: passed on (Hummingbird's state handler closes)")
        // Being read: held until it is answered.
        _ = state.read(Self.head(.POST, "/v1/login/start"))
        #expect(state.userInboundEvent(ChannelShouldQuiesceEvent()) == false)
        #expect(state.userInboundEvent("other events pass") == true)
        #expect(state.canReplay == false, "not while the request is read")
        _ = state.read(Self.body("{}"))
        guard case .startDirect = state.read(Self.end) else { Issue.record("not direct"); return }
        #expect(state.nextHeld() == nil, "held while the answer is in flight")
        _ = state.directAnswered(channelIsActive: true)
        guard case .event(let event) = state.nextHeld() else { Issue.record("the shutdown was lost"); return }
        #expect(event is ChannelShouldQuiesceEvent)

        // While a /v1/auth request is read: replayable once it is answered.
        var auth = FastPathStateMachine(bodyLimit: 100)
        _ = auth.read(Self.auth)
        #expect(auth.userInboundEvent(ChannelShouldQuiesceEvent()) == false)
        guard case .answerAuth = auth.read(Self.end) else { Issue.record("no answer"); return }
        #expect(auth.canReplay)
        #expect(auth.flushBeforeHeldItem() == true)
        guard case .event = auth.nextHeld() else { Issue.record("the shutdown was lost"); return }

        // Behind a request Hummingbird has: passed on (Hummingbird waits for its response).
        var forwarded = FastPathStateMachine(bodyLimit: 100)
        _ = Self.request(&forwarded, Self.head(.HEAD, "/healthz"))
        #expect(forwarded.userInboundEvent(ChannelShouldQuiesceEvent()) == true)
    }

    @Test("backpressure: no read while the socket takes no more output, resumed when it does")
    func backpressure() {
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.readRequested() == true)
        #expect(state.writabilityChanged(isWritable: false) == false)
        #expect(state.readRequested() == false)
        #expect(state.writabilityChanged(isWritable: true) == true)
        #expect(state.readRequested() == true)
        // Writable again while a direct answer is pending: still no read until the answer.
        _ = Self.request(&state, Self.head(.GET, "/healthz"))
        #expect(state.writabilityChanged(isWritable: false) == false)
        #expect(state.readRequested() == false)
        #expect(state.writabilityChanged(isWritable: true) == false)
        _ = state.directAnswered(channelIsActive: true)
        #expect(state.resumeReading() == true)
    }

    static func at(_ seconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000) }

    @Test("idle timeout: counted from the last answer; never while a request is read or answered here or by Hummingbird")
    func idleTimeout() {
        let at = Self.at
        var state = FastPathStateMachine(bodyLimit: 100, timeouts: .init(idle: .seconds(60)))
        #expect(state.channelActive(now: at(0)) == .schedule(at(60)))
        // A /v1/auth answer at 30 s: idle from then.
        _ = state.read(Self.auth, now: at(30))
        _ = state.read(Self.end, now: at(30))
        #expect(state.timerFired(now: at(60)) == .schedule(at(90)))
        // A direct request read at 80 s and answered at 200 s: busy meanwhile (nothing to time).
        _ = state.read(Self.head(.GET, "/healthz"), now: at(80))
        #expect(state.deadline == nil, "being read (no body timeout set)")
        _ = state.read(Self.end, now: at(100))
        #expect(state.timerFired(now: at(150)) == .none, "being answered")
        _ = state.directAnswered(channelIsActive: true, now: at(200))
        #expect(state.deadline == at(260))
        #expect(state.timerFired(now: at(210)) == .schedule(at(260)))
        // Passed to Hummingbird at 250 s, its response ends at 400 s.
        _ = state.read(Self.head(.HEAD, "/healthz"), now: at(250))
        _ = state.read(Self.end, now: at(250))
        #expect(state.timerFired(now: at(260)) == .none, "with Hummingbird")
        #expect(state.forwardedResponseEnded(now: at(400)) == nil)
        #expect(state.timerFired(now: at(420)) == .schedule(at(460)))
        #expect(state.timerFired(now: at(460)) == .close)
        // Without a timeout, nothing is scheduled.
        var unlimited = FastPathStateMachine(bodyLimit: 100)
        #expect(unlimited.channelActive(now: at(0)) == .none)
        #expect(unlimited.timerFired(now: at(1000)) == .none)
    }

    static let slow = FastPathStateMachine.Timeouts(idle: .seconds(60), head: .seconds(10), body: .seconds(10), shutdown: .seconds(8))

    @Test("head timeout: a new connection's first head within 10 s (closed without an answer); a head in pieces within 10 s of its first piece (408)")
    func headTimeout() {
        let at = Self.at
        // Nothing sent at all: closed, no answer.
        var silent = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        #expect(silent.channelActive(now: at(0)) == .schedule(at(10)))
        #expect(silent.timerFired(now: at(10)) == .close)

        // A first head sent in pieces from 4 s (reads that decode nothing): 408 at 10 s after connect.
        var pieces = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = pieces.channelActive(now: at(0))
        #expect(pieces.readComplete(now: at(4)) == false)
        #expect(pieces.deadline == at(10))
        #expect(pieces.timerFired(now: at(9)) == .schedule(at(10)))
        #expect(pieces.timerFired(now: at(10)) == .requestTimeout)
        #expect(pieces.isClosing, "nothing more is read")
        #expect(pieces.read(Self.auth) == .none)

        // Keep-alive: idle for 50 s after an answer, then a head one line at a time from 80 s.
        var slowloris = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = slowloris.channelActive(now: at(0))
        _ = slowloris.read(Self.auth, now: at(1))
        _ = slowloris.read(Self.end, now: at(1))
        _ = slowloris.readComplete(now: at(1))
        #expect(slowloris.deadline == at(61), "idle after the answer")
        _ = slowloris.readComplete(now: at(80))
        #expect(slowloris.deadline == at(90), "the head's first piece at 80 s")
        _ = slowloris.readComplete(now: at(85))
        #expect(slowloris.deadline == at(90), "later pieces do not move it")
        #expect(slowloris.timerFired(now: at(90)) == .requestTimeout)

        // A head completed in time clears it.
        var inTime = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = inTime.channelActive(now: at(0))
        _ = inTime.readComplete(now: at(2))
        guard case .answerAuth = Self.request(&inTime, Self.auth) else { Issue.record("no answer"); return }
        _ = inTime.readComplete(now: at(3))
        #expect(inTime.timerFired(now: at(10)) != .requestTimeout)
    }

    @Test("body timeout: a declared body within 10 s of its head; 408 when answered here, closed when Hummingbird has it")
    func bodyTimeout() {
        let at = Self.at
        var direct = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = direct.channelActive(now: at(0))
        _ = direct.read(Self.head(.POST, "/v1/login/start", [("Content-Length", "20")]))
        _ = direct.read(Self.body("{\"user\":"))
        _ = direct.readComplete(now: at(1))
        #expect(direct.deadline == at(11))
        _ = direct.readComplete(now: at(6))
        #expect(direct.timerFired(now: at(6)) == .schedule(at(11)))
        #expect(direct.timerFired(now: at(11)) == .requestTimeout)

        // The body completed in time: no timeout; answered, then idle.
        var inTime = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = inTime.channelActive(now: at(0))
        _ = inTime.read(Self.head(.POST, "/v1/login/start", [("Content-Length", "2")]))
        _ = inTime.readComplete(now: at(1))
        _ = inTime.read(Self.body("{}"))
        guard case .startDirect = inTime.read(Self.end) else { Issue.record("not direct"); return }
        _ = inTime.readComplete(now: at(2))
        #expect(inTime.deadline == nil, "being answered")
        _ = inTime.directAnswered(channelIsActive: true, now: at(3))
        #expect(inTime.deadline == at(63))

        // The import's streamed body, with Hummingbird: closed without an answer of ours.
        var forwarded = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = forwarded.channelActive(now: at(0))
        #expect(forwarded.read(Self.head(.POST, "/v1/users/import", [("Content-Length", "9000")])) == .forward)
        _ = forwarded.readComplete(now: at(1))
        #expect(forwarded.timerFired(now: at(11)) == .close)
    }

    @Test("a graceful shutdown closes the connection 8 s after it began, whatever it is doing")
    func shutdownTimeout() {
        let at = Self.at
        var state = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = state.channelActive(now: at(0))
        _ = state.read(Self.head(.POST, "/v1/login/start", [("Content-Length", "20")]))
        _ = state.read(Self.body("{}"))
        _ = state.read(Self.end)
        #expect(state.deadline == nil, "being answered")
        #expect(state.shutdownBegan(now: at(100)) == .schedule(at(108)))
        #expect(state.shutdownBegan(now: at(104)) == .none, "counted from the first")
        #expect(state.timerFired(now: at(104)) == .schedule(at(108)))
        #expect(state.timerFired(now: at(108)) == .close)
        var none = FastPathStateMachine(bodyLimit: 100, timeouts: .init(idle: .seconds(60)))
        _ = none.channelActive(now: at(0))
        #expect(none.shutdownBegan(now: at(1)) == .none, "no shutdown timeout: Hummingbird waits")
    }

    @Test("heads every path refuses: HTTP/1.1 without exactly one Host (400), an expectation other than 100-continue (417)", arguments: [
        ([(String, String)](), HTTPVersion.http1_1, FastPathStateMachine.HeadProblem?.some(.host)),
        ([("Host", "a"), ("Host", "b")], .http1_1, .host),
        ([("host", "a"), ("HOST", "a")], .http1_1, .host),
        ([("Host", "a"), ("Host", "b")], .http1_0, .host),
        ([], .http1_0, nil),
        ([("Host", "")], .http1_1, nil),
        ([("Host", "a"), ("Expect", "100-continue")], .http1_1, nil),
        ([("Host", "a"), ("Expect", "100-Continue")], .http1_1, nil),
        ([("Host", "a"), ("Expect", "200-ok")], .http1_1, .expectation),
        ([("Host", "a"), ("Expect", "100-continue, foo")], .http1_1, .expectation),
        ([("Host", "a"), ("Expect", "100-continue"), ("Expect", "100-continue")], .http1_1, .expectation),
        ([("Expect", "100-continue")], .http1_0, nil),
        ([("Expect", "fly")], .http1_0, .expectation),
    ])
    func headProblems(headers: [(String, String)], version: HTTPVersion, expected: FastPathStateMachine.HeadProblem?) {
        let head = HTTPRequestHead(version: version, method: .POST, uri: "/v1/login/start", headers: HTTPHeaders(headers))
        #expect(FastPathStateMachine.problem(head) == expected)
        var state = FastPathStateMachine(bodyLimit: 100)
        let action = state.read(.head(head))
        if let expected {
            guard case .refuse(let problem) = action else { Issue.record("not refused: \(action)"); return }
            #expect(problem == expected)
            #expect(state.isClosing, "nothing after it is read")
            #expect(state.read(Self.end) == .none)
        } else {
            #expect(action == .none, "collected to be answered")
        }
    }

    @Test("a refused head behind a request Hummingbird has: refused after that answer")
    func refusalBehindForwarded() {
        var state = FastPathStateMachine(bodyLimit: 100)
        #expect(state.read(Self.head(.HEAD, "/healthz")) == .forward)
        #expect(state.read(Self.end) == .forward)
        #expect(state.read(Self.head(.GET, "/v1/auth", host: false)) == .none)
        #expect(state.isClosing)
        #expect(state.forwardedResponseEnded() == .host)
    }

    @Test("GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS: 60 by default, 0 for none, refused when not a count")
    func idleTimeoutSetting() throws {
        #expect(try GatehouseConfiguration.load(environment: [:]).httpIdleTimeoutSeconds == 60)
        #expect(try GatehouseConfiguration.load(environment: ["GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS": "0"]).httpIdleTimeoutSeconds == 0)
        #expect(try GatehouseConfiguration.load(environment: ["GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS": "5"]).httpIdleTimeoutSeconds == 5)
        for bad in ["-1", "1m", ""] {
            #expect(throws: ServiceError.self) { try GatehouseConfiguration.load(environment: ["GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS": bad]) }
        }
    }

    @Test("head, body and shutdown timeouts and the connection limit: defaults, 0, refused when not a count")
    func slowClientSettings() throws {
        let defaults = try GatehouseConfiguration.load(environment: [:])
        #expect(defaults.httpHeadTimeoutSeconds == 10 && defaults.httpBodyTimeoutSeconds == 10)
        #expect(defaults.shutdownTimeoutSeconds == 8 && defaults.httpMaxConnections == 10_000)
        let set = try GatehouseConfiguration.load(environment: [
            "GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS": "3", "GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS": "0",
            "GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS": "5", "GATEHOUSE_HTTP_MAX_CONNECTIONS": "100",
        ])
        #expect(set.httpHeadTimeoutSeconds == 3 && set.httpBodyTimeoutSeconds == 0 && set.shutdownTimeoutSeconds == 5 && set.httpMaxConnections == 100)
        for name in ["GATEHOUSE_HTTP_HEAD_TIMEOUT_SECONDS", "GATEHOUSE_HTTP_BODY_TIMEOUT_SECONDS", "GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS", "GATEHOUSE_HTTP_MAX_CONNECTIONS"] {
            for bad in ["-1", "10s", ""] {
                #expect(throws: ServiceError.self, "\(name)=\(bad)") { try GatehouseConfiguration.load(environment: [name: bad]) }
            }
        }
    }

    @Test("a direct body is collected up to the limit; the rest is read and dropped")
    func bodyLimit() {
        var state = FastPathStateMachine(bodyLimit: 5)
        _ = state.read(Self.head(.POST, "/v1/login/start"))
        _ = state.read(Self.body("abc"))
        _ = state.read(Self.body("defgh"))
        guard case .startDirect(_, let body, _) = state.read(Self.end) else { Issue.record("not direct"); return }
        #expect(String(buffer: body) == "abcde")
    }

    @Test("the /v1/auth answer on the wire and the responder's HTTPResponse have the same status and fields", arguments: [
        AuthAnswer.valid(user: "kim@example.org", sessionID: "c2Vzc2lvbg", authTime: 1_700_000_000),
        .unauthorized, .forbidden, .unavailable,
    ])
    func oneAnswer(answer: AuthAnswer) throws {
        var buffer = ByteBuffer()
        FastPathEncoding.write(answer, framing: Framing(close: false, http10KeepAlive: false), date: "Sun, 06 Nov 1994 08:49:37 GMT", into: &buffer)
        let text = String(buffer: buffer)
        #expect(text.hasSuffix("\r\n\r\n"))
        var lines = text.dropLast(4).components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let response = answer.response
        #expect(statusLine == "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)")
        let wire = lines.map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), String(line[line.index(colon, offsetBy: 2)...]))
        }.filter { !["Content-Length", "Date"].contains($0.0) }
        #expect(wire.map(\.0) == response.headerFields.map(\.name.rawName))
        #expect(wire.map(\.1) == response.headerFields.map(\.value))
        // Bodiless: 204 without Content-Length, the others with 0 (as Hummingbird writes them).
        #expect(text.contains("Content-Length: 0\r\n") == (response.status != .noContent))
    }
}

extension FastPathStateMachine.ReadAction {
    var isNone: Bool { if case .none = self { true } else { false } }
    var isForward: Bool { if case .forward = self { true } else { false } }
}

extension FastPathStateMachineTests {
    @Test("/v1/auth read ahead of the decoder: answered only when nothing else is going on, then the connection is idle as after a decoded one")
    func rawAuth() {
        let at = Self.at
        // Answered at 5 s: the first-head deadline is gone, the idle one counts from 5 s, the
        // answer is flushed at the end of the read, and a read with only such heads is no piece of a head.
        var state = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        #expect(state.channelActive(now: at(0)) == .schedule(at(10)))
        #expect(state.mayAnswerRawAuth)
        state.rawAuthAnswered(now: at(5))
        state.rawAuthAnswered(now: at(5))
        #expect(state.readComplete(now: at(5)) == true, "flush the answers")
        #expect(state.deadline == at(65))
        #expect(state.timerFired(now: at(10)) == .schedule(at(65)), "no head timeout")
        #expect(state.timerFired(now: at(65)) == .close)

        // Not while the socket takes no output, nor once a shutdown began or is held back.
        var blocked = FastPathStateMachine(bodyLimit: 100, timeouts: Self.slow)
        _ = blocked.channelActive(now: at(0))
        _ = blocked.writabilityChanged(isWritable: false)
        #expect(!blocked.mayAnswerRawAuth)
        _ = blocked.writabilityChanged(isWritable: true)
        #expect(blocked.mayAnswerRawAuth)
        _ = blocked.shutdownBegan(now: at(1))
        #expect(!blocked.mayAnswerRawAuth)

        // Not while a decoded request is being read, answered directly, or with Hummingbird, and
        // not after a Connection: close answer.
        var busy = FastPathStateMachine(bodyLimit: 100)
        _ = busy.read(Self.head(.POST, "/v1/login/start"))
        #expect(!busy.mayAnswerRawAuth, "being read")
        _ = busy.read(Self.end)
        #expect(!busy.mayAnswerRawAuth, "being answered")
        _ = busy.directAnswered(channelIsActive: true)
        #expect(busy.mayAnswerRawAuth)
        _ = Self.request(&busy, Self.head(.HEAD, "/healthz"))
        #expect(!busy.mayAnswerRawAuth, "with Hummingbird")
        _ = busy.forwardedResponseEnded()
        #expect(busy.mayAnswerRawAuth)
        _ = Self.request(&busy, Self.head(.GET, "/v1/auth", [("Connection", "close")]))
        #expect(!busy.mayAnswerRawAuth, "closing")
    }
}
