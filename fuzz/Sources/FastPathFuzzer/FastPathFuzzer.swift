import FuzzSupport
import GatehouseHTTP
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1

// libFuzzer target over the fast path's request handling: arbitrary bytes, cut into reads at
// points the input chooses, go through NIO's HTTP/1 decoder configured as a node's
// (HTTP1DecoderLimits), and its parts, errors and read ends drive FastPathStateMachine as
// FastPathHandler drives it — with the answers to direct requests, the ends of Hummingbird's
// responses, graceful shutdowns, other events, changes of writability, read requests and the
// idle timer interleaved where the input says.
//
// Input: byte 0 picks the body limit; byte 1 how many control bytes follow (they choose the cut
// points and the interleaving); the rest is what the client sends.
//
// Invariants: every answer of the machine is the one Model (the rules in its documentation)
// gives — actions, 100 Continue, held items replayed in order and only then, reads passed on or
// held, flushes, idleness and the idle timer; a direct request's body is exactly the first
// `bodyLimit` bytes the decoder gave for it, and a forwarded request's parts are all passed on;
// the bytes FastPathEncoding writes for an answer are one well-formed HTTP/1.1 response head
// (no field value with a control character gets through), with `Connection: close` exactly
// when the framing closes, and a body of exactly `Content-Length` bytes.

@main
enum FastPathFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input) }
    }
}

/// What the decoder handed on, in order.
private enum Event {
    case part(HTTPServerRequestPart)
    case error(any Error)
    case readComplete
}

/// The last handler of the embedded pipeline: where FastPathHandler sits in a node.
private final class Collector: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    var events: [Event] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        events.append(.part(unwrapInboundIn(data)))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        events.append(.readComplete)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        events.append(.error(error))
    }
}

/// One connection: the machine under test, the model, and the harness's view of the requests.
private struct Connection {
    var machine: FastPathStateMachine
    var model: Model
    var control: FuzzInput
    var clock: Int64 = 1_000_000_000
    let date = "Thu, 01 Jan 2026 00:00:00 GMT"

    var now: NIODeadline { .uptimeNanoseconds(UInt64(clock)) }

    init(bodyLimit: Int, control: FuzzInput) {
        machine = FastPathStateMachine(bodyLimit: bodyLimit, timeouts: .init(idle: .nanoseconds(5_000_000_000)))
        model = Model(bodyLimit: bodyLimit, idleTimeout: 5_000_000_000)
        self.control = control
    }


    // MARK: As FastPathHandler does

    mutating func channelActive() {
        let moment = now
        let got = machine.channelActive(now: moment)
        let expected = model.channelActive(now: clock)
        check("channelActive", same(got, expected), "\(got) vs \(expected)")
    }

    mutating func channelRead(_ part: HTTPServerRequestPart) {
        let moment = now
        let action = machine.read(part, now: moment)
        let cont = machine.takeContinue()
        let (expected, expectedContinue) = model.read(part, now: clock)
        check("100 Continue", cont == expectedContinue, "\(cont) for \(describe(part))")
        switch (action, expected) {
        case (.forward, .forward), (.none, .none):
            break
        case (.answerAuth(let head, let framing), .answerAuth(let h, let f)):
            check("answerAuth", head == h && framing == f, "\(framing) vs \(f)")
            checkAuthAnswer(framing)
        case (.refuse(let problem), .refuse(let refusal)):
            check("refuse", (problem == .host) == (refusal == .host), "\(problem) vs \(refusal)")
        case (.startDirect(let head, let body, let framing), .startDirect(let h, let b, let f)):
            check("startDirect", head == h && framing == f && Array(body.readableBytesView) == b,
                  "body of \(body.readableBytes) bytes, expected \(b.count) (limit \(model.bodyLimit)); \(framing) vs \(f)")
        default:
            check("read", false, "\(action) for \(describe(part)), expected \(expected)")
        }
        check("forwardedCount", machine.forwardedCount == model.forwarded, "\(machine.forwardedCount) vs \(model.forwarded)")
        check("isAnswering", machine.isAnswering == (model.answering != nil))
        check("isClosing", machine.isClosing == model.closing)
        check("isIdle", machine.isIdle == model.isIdle)
    }

    mutating func channelReadComplete() {
        let flush = machine.readComplete()
        check("readComplete", flush == model.readComplete())
        let canReplay = machine.canReplay
        check("canReplay", canReplay == model.canReplay)
        if canReplay { replayHeld() }
    }

    mutating func errorCaught(_ error: any Error) {
        let passed = machine.errorCaught(error)
        check("errorCaught", passed == model.errorCaught("\(error)"))
    }

    mutating func userInboundEvent(quiesce: Bool) {
        let event: Any = quiesce ? ChannelShouldQuiesceEvent() : "another event"
        let passed = machine.userInboundEvent(event)
        check("userInboundEvent", passed == model.userInboundEvent(quiesce ? quiesceDescription : "another event", isQuiesce: quiesce))
    }

    mutating func readRequested() {
        check("readRequested", machine.readRequested() == model.readRequested())
    }

    mutating func writabilityChanged() {
        let writable = !model.writable
        check("writabilityChanged", machine.writabilityChanged(isWritable: writable) == model.writabilityChanged(isWritable: writable))
    }

    mutating func forwardedResponseEnded() {
        let moment = now
        let refusal = machine.forwardedResponseEnded(now: moment)
        let expected = model.forwardedResponseEnded(now: clock)
        check("forwardedResponseEnded", machine.forwardedCount == model.forwarded && machine.isIdle == model.isIdle)
        check("refusal after the forwarded answers", (refusal == nil) == (expected == nil) && (refusal == .host) == (expected == .host),
              "\(String(describing: refusal)) vs \(String(describing: expected))")
    }

    mutating func idleTimerFired() {
        clock += Int64(control.int(in: 0...7)) * 1_000_000_000
        let moment = now
        let got = machine.timerFired(now: moment)
        let expected = model.idleTimerFired(now: clock)
        check("idleTimerFired", same(got, expected), "\(got) vs \(expected)")
    }

    /// The direct answer is ready: written (then what was held is replayed) or dropped.
    mutating func answerDirect(channelIsActive: Bool) {
        let moment = now
        let got = machine.directAnswered(channelIsActive: channelIsActive, now: moment)
        let expected = model.directAnswered(channelIsActive: channelIsActive, now: clock)
        switch (got, expected) {
        case (.drop, .drop):
            break
        case (.write(let framing), .write(let f)):
            check("directAnswered", framing == f, "\(framing) vs \(f)")
            checkDirectAnswer(framing)
            replayHeld()
        default:
            check("directAnswered", false, "\(got) vs \(expected)")
        }
    }

    mutating func replayHeld() {
        var replayed = false
        // Bounded: each round takes one held item, and no more are held than parts were read.
        for _ in 0..<10_000 {
            let item = machine.nextHeld()
            let expected = model.nextHeld()
            guard let item else {
                check("nextHeld", expected == nil, "nothing, expected \(String(describing: expected))")
                break
            }
            replayed = true
            switch item {
            case .part(let part):
                check("nextHeld", expected == .part(describe(part)), "\(describe(part)) vs \(String(describing: expected))")
                channelRead(part)
            case .error(let error):
                check("nextHeld", expected == .error("\(error)"), "error \(error) vs \(String(describing: expected))")
                check("flushBeforeHeldItem", machine.flushBeforeHeldItem() == model.readComplete())
            case .event(let event):
                let description = event is ChannelShouldQuiesceEvent ? quiesceDescription : "\(event)"
                check("nextHeld", expected == .event(description), "event \(description) vs \(String(describing: expected))")
                check("flushBeforeHeldItem", machine.flushBeforeHeldItem() == model.readComplete())
            }
        }
        if replayed { check("readComplete after replay", machine.readComplete() == model.readComplete()) }
        check("resumeReading", machine.resumeReading() == model.resumeReading())
    }

    // MARK: The interleaving

    /// Before each decoder event: what else happens now, as the control bytes say (when they run
    /// out: the direct answer comes at once, Hummingbird's responses end, nothing else).
    mutating func interleave() {
        let c = control.byte()
        if model.answering != nil, c & 3 != 3 { answerDirect(channelIsActive: c & 4 == 0) }
        if model.forwarded > 0, (c >> 3) & 3 != 3 { forwardedResponseEnded() }
        switch c >> 5 {
        case 1: userInboundEvent(quiesce: true)
        case 2: userInboundEvent(quiesce: false)
        case 3: writabilityChanged()
        case 4: readRequested()
        case 5: idleTimerFired()
        default: break
        }
    }

    mutating func deliver(_ event: Event) {
        interleave()
        switch event {
        case .part(let part):
            channelRead(part)
        case .error(let error):
            errorCaught(error)
        case .readComplete:
            channelReadComplete()
        }
    }

    /// At the end: the pending answer, Hummingbird's responses, and the replay they allow.
    mutating func finish() {
        for _ in 0..<1_000 {
            if model.answering != nil {
                answerDirect(channelIsActive: true)
            } else if model.forwarded > 0 {
                forwardedResponseEnded()
            } else {
                break
            }
        }
        if machine.canReplay || model.canReplay {
            check("canReplay at the end", machine.canReplay == model.canReplay)
            replayHeld()
        }
        check("idle at the end", machine.isIdle == model.isIdle)
        idleTimerFired()
    }

    // MARK: Answers on the wire

    /// The `/v1/auth` answer for this framing, one of each kind in turn.
    mutating func checkAuthAnswer(_ framing: Framing) {
        let answers: [AuthAnswer] = [
            .valid(user: "kate@example.org", sessionID: "c2Vzc2lvbi1pZA", authTime: 1_800_000_000),
            .unauthorized, .forbidden, .unavailable,
        ]
        let answer = answers[Int(control.byte() % 4)]
        var buffer = ByteBuffer()
        FastPathEncoding.write(answer, framing: framing, date: date, into: &buffer)
        let response = parseResponse(Array(buffer.readableBytesView))
        check("auth answer", response.status == Int(answer.status.code) && response.body.isEmpty, "\(response)")
        checkFraming(response, framing)
        if case .valid(let user, let sessionID, let authTime) = answer {
            check("auth answer fields", response.fields["gatehouse-user"] == [user] && response.fields["gatehouse-session-id"] == [sessionID]
                && response.fields["gatehouse-auth-time"] == [String(authTime)], "\(response.fields)")
        } else {
            check("auth answer length", response.fields["content-length"] == ["0"], "\(response.fields)")
        }
    }

    /// A direct answer with a status, fields and body from the control bytes; the fields' values
    /// may carry any byte the responder's HTTPFields can hold.
    mutating func checkDirectAnswer(_ framing: Framing) {
        let status = HTTPResponse.Status(code: control.pick([200, 201, 204, 304, 400, 401, 404, 409, 413, 429, 500, 503, 101, 299]))
        var fields = HTTPFields()
        let count = control.int(in: 0...3)
        var kept: [(String, String)] = []
        for _ in 0..<count {
            let name = control.pick([HTTPField.Name.contentType, .cacheControl, .location, .retryAfter, .setCookie, .contentLength, .connection, .date, .transferEncoding])
            let value = control.piece(maxLength: 12)
            let field = HTTPField(name: name, lenientValue: value)
            fields.append(field)
            let skipped = [HTTPField.Name.contentLength, .transferEncoding, .connection, .date].contains(name)
            if !skipped, FastPathEncoding.isFieldValue(field.value, tab: true) { kept.append((name.canonicalName.lowercased(), field.value)) }
        }
        let body = control.piece(maxLength: 40)
        var buffer = ByteBuffer()
        FastPathEncoding.write(status: status, headers: fields, body: ByteBuffer(bytes: body), framing: framing, date: date, into: &buffer)
        let response = parseResponse(Array(buffer.readableBytesView))
        check("direct answer status", response.status == status.code, "\(response)")
        checkFraming(response, framing)
        for (name, value) in kept {
            check("direct answer field", response.fields[name]?.contains(value.trimmingSpacesAndTabs) == true, "\(name): \(value.debugDescription) missing from \(response.fields)")
        }
        if FastPathEncoding.mayHaveBody(status) {
            check("direct answer body", response.fields["content-length"] == [String(body.count)] && response.body == body, "\(response)")
        } else {
            check("direct answer without body", response.fields["content-length"] == nil && response.body.isEmpty, "\(response)")
        }
    }

    mutating func checkFraming(_ response: ParsedResponse, _ framing: Framing) {
        let connection = response.fields["connection"] ?? []
        check("Connection field", connection == (framing.close ? ["close"] : framing.http10KeepAlive ? ["keep-alive"] : []), "\(connection) for \(framing)")
        check("Date field", response.fields["date"] == [date])
    }
}

/// The machine's answer and the rules' must agree.
private func check(_ what: String, _ condition: Bool, _ detail: @autoclosure () -> String = "") {
    Fuzz.check(condition, "\(what): the machine and the rules disagree. \(detail())")
}

private func same(_ a: FastPathStateMachine.TimerAction, _ b: Model.Idle) -> Bool {
    switch (a, b) {
    case (.none, .none), (.close, .close): true
    case (.schedule(let d), .schedule(let e)): d.uptimeNanoseconds == UInt64(e)
    default: false
    }
}

extension String {
    var trimmingSpacesAndTabs: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// An HTTP/1.1 response as this checker reads it, strictly: a status line, fields of token names
/// and values without control characters (other than tab), CRLF line ends, an empty line, then
/// the rest as the body.
struct ParsedResponse: CustomStringConvertible {
    var status: Int
    var fields: [String: [String]]
    var body: [UInt8]

    var description: String { "\(status) \(fields) body \(body.count) bytes" }
}

private func parseResponse(_ bytes: [UInt8]) -> ParsedResponse {
    let crlfcrlf: [UInt8] = [13, 10, 13, 10]
    guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<($0 + 4)]) == crlfcrlf }) else {
        Fuzz.fail("an answer without the end of its head: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
    }
    let head = Array(bytes[..<end])
    for (i, b) in head.enumerated() {
        if b == 13 { Fuzz.check(i + 1 < head.count && head[i + 1] == 10, "a bare CR in an answer's head") }
        if b == 10 { Fuzz.check(i > 0 && head[i - 1] == 13, "a bare LF in an answer's head") }
        Fuzz.check(b >= 0x20 || b == 9 || b == 13 || b == 10, "a control character in an answer's head: \(String(decoding: head, as: UTF8.self).debugDescription)")
        Fuzz.check(b != 0x7F, "DEL in an answer's head")
    }
    var lines: [String] = []
    var start = 0
    for i in head.indices where head[i] == 13 {
        lines.append(String(decoding: head[start..<i], as: UTF8.self))
        start = i + 2
    }
    lines.append(String(decoding: head[min(start, head.count)...], as: UTF8.self))
    let statusLine = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
    guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", statusLine[1].utf8.count == 3, let status = Int(statusLine[1]) else {
        Fuzz.fail("a bad status line \(lines[0].debugDescription)")
    }
    var fields: [String: [String]] = [:]
    let token = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { Fuzz.fail("a field line without a colon: \(line.debugDescription)") }
        let name = String(line[..<colon])
        Fuzz.check(!name.isEmpty && name.utf8.allSatisfy(token.contains), "a bad field name \(name.debugDescription)")
        let value = String(line[line.index(after: colon)...]).trimmingSpacesAndTabs
        fields[name.lowercased(), default: []].append(value)
    }
    return ParsedResponse(status: status, fields: fields, body: Array(bytes[(end + 4)...]))
}

// MARK: The test

private let bodyLimits = [0, 1, 16, 1024, 65_537]

func fuzzOneInput(_ input: FuzzInput) {
    var input = input
    let bodyLimit = bodyLimits[Int(input.byte()) % bodyLimits.count]
    var control = FuzzInput(input.bytes(input.int(in: 0...32)))
    let http = input.rest()
    let pieces = pieces(of: http, maxPieces: 6, input: &control)

    let channel = EmbeddedChannel()
    let collector = Collector()
    do {
        try HTTP1DecoderLimits.addServerCodec(to: channel.pipeline.syncOperations)
        try channel.pipeline.syncOperations.addHandler(collector)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    } catch {
        Fuzz.fail("cannot set up the embedded channel: \(error)")
    }

    var connection = Connection(bodyLimit: bodyLimit, control: control)
    connection.channelActive()
    var eventsSeen = 0
    func drain(_ connection: inout Connection) {
        while eventsSeen < collector.events.count {
            let event = collector.events[eventsSeen]
            eventsSeen += 1
            connection.deliver(event)
        }
    }
    for piece in pieces {
        // The decoder's errors reach the collector; nothing is thrown past it.
        _ = try? channel.writeInbound(ByteBuffer(bytes: piece))
        drain(&connection)
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    drain(&connection)
    connection.finish()
    checkDecoded(collector.events, limitBytes: http.count)
}

/// The decoder's own accounting: each request is a head, body parts and an end, and the body
/// bytes of all requests come from the input.
private func checkDecoded(_ events: [Event], limitBytes: Int) {
    var total = 0
    var inRequest = false
    for case .part(let part) in events {
        switch part {
        case .head:
            Fuzz.check(!inRequest, "a head inside a request")
            inRequest = true
        case .body(let chunk):
            Fuzz.check(inRequest, "a body part outside a request")
            total += chunk.readableBytes
        case .end:
            Fuzz.check(inRequest, "an end outside a request")
            inRequest = false
        }
    }
    Fuzz.check(total <= limitBytes, "\(total) body bytes from \(limitBytes) bytes of input")
}
