import ArgumentParser
import Dispatch
import Foundation
import GatehouseCore
import GatehouseCrypto
import Glibc
import Histogram
import Synchronization

/// `gatehouse load`: the load generator for the verification path.
///
/// Seeds users with known TOTP secrets through `POST /v1/users/import`, signs each in once, then
/// drives a weighted mix of session checks, valid codes (never reusing a time step), wrong codes and
/// replays from epoll event loops (``LoadEventLoop``), and checks the answers: an accepted replay or wrong
/// code, a refused valid code or a refused live session is a correctness failure (exit 1).
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load-test the verification path (session checks, valid/wrong/replayed codes) of running nodes.",
        discussion: """
            Loopback only. Users '<prefix>-<i>@load.example' are imported with fresh secrets, 10% of them \
            (at least one) take the wrong codes so the others are never throttled. Exits 1 on any \
            correctness failure (accepted replay or wrong code, refused valid code or session) or when \
            more than 1% of operations hit transport errors. \
            A `check` is one POST /v1/login/finish with a valid code on a challenge opened before the run \
            (one per valid-pool user, so --users bounds the number of checks); it measures the code \
            check alone. When the mix is only `check`, the seeding sign-in is skipped. With several \
            URLs, each user's login/start and login/finish go to one of them (as behind a balancer that \
            hashes on the user); session checks go round-robin.
            """
    )

    @Option(name: .customLong("url"), help: "Base URL of a node (repeatable; requests round-robin). Default: GATEHOUSE_URL or http://127.0.0.1:8080.")
    var urls: [String] = []
    @Option(help: "Users to seed.") var users: Int = 200
    @Option(help: "Requests in flight: each runs operations back to back on its own keep-alive connection per URL.") var concurrency: Int = 50
    @Option(help: "Event-loop threads the in-flight requests are spread over (epoll; 1 is enough for most runs).") var threads: Int = 1
    @Option(help: "Seconds to run (at most 3600).") var duration: Double = 10
    @Option(help: "Cap on operations per second across all workers.") var rate: Double?
    @Option(help: "Weights of the operations: auth, valid, wrong, replay, check (a lone valid-code check on a challenge opened before the run).") var mix: String = "auth=70,valid=10,wrong=15,replay=5"
    @Option(name: .customLong("admin-key"), help: "Admin API key (default: GATEHOUSE_ADMIN_KEY).") var adminKey: String?
    @Option(name: .customLong("frontend-key"), help: "Frontend API key (default: GATEHOUSE_FRONTEND_KEY).") var frontendKey: String?
    @Option(name: .customLong("verify-key"), help: "Verify API key (default: GATEHOUSE_VERIFY_KEY).") var verifyKey: String?
    @Flag(help: "Print one JSON object instead of the text report.") var json = false
    @Flag(name: .customLong("tolerate-unavailable"), help: "Count 503 answers to code operations (a Redis outage under test) as 'unavailable' errors, not as refused valid codes.")
    var tolerateUnavailable = false
    @Option(help: "User name prefix (default: load-<random>).") var prefix: String?
    @Flag(inversion: .prefixedNo, help: "Progress line on stderr every second (default: when stderr is a terminal).")
    var progress: Bool?

    func validate() throws {
        guard (2...100_000).contains(users) else { throw ValidationError("--users must be 2...100000") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1...1024") }
        guard (1...16).contains(threads), threads <= concurrency else { throw ValidationError("--threads must be 1...16 and at most --concurrency") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600] seconds") }
        if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be in (0, 1000000]") }
        _ = try LoadMix(parsing: mix)
        _ = try endpoints()
    }

    private func endpoints() throws -> [LoadEndpoint] {
        let list = urls.isEmpty ? [ProcessInfo.processInfo.environment["GATEHOUSE_URL"] ?? "http://127.0.0.1:8080"] : urls
        guard list.count <= 64 else { throw ValidationError("at most 64 --url") }
        return try list.map { try LoadEndpoint(parsing: $0) }
    }

    private func key(_ value: String?, _ variable: String, _ option: String) throws -> String {
        if let value, !value.isEmpty { return value }
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        throw ValidationError("no \(option): pass it or set \(variable)")
    }

    func run() async throws {
        let config = LoadConfig(
            endpoints: try endpoints(), users: users, concurrency: concurrency, threads: threads, duration: duration, rate: rate,
            mix: try LoadMix(parsing: mix),
            adminKey: try key(adminKey, "GATEHOUSE_ADMIN_KEY", "--admin-key"),
            frontendKey: try key(frontendKey, "GATEHOUSE_FRONTEND_KEY", "--frontend-key"),
            verifyKey: try key(verifyKey, "GATEHOUSE_VERIFY_KEY", "--verify-key"),
            prefix: try prefix ?? "load-" + Base32.encode(SystemRandom().bytes(5)).lowercased(),
            progress: progress ?? (isatty(2) != 0),
            tolerateUnavailable: tolerateUnavailable
        )
        // Everything blocking (sockets, joins) runs on dedicated threads, never on the cooperative pool.
        let report = try await onThread { try LoadRunner(config).run() }
        print(json ? report.json() : report.text())
        if !report.passed { throw ExitCode(1) }
    }
}

/// Runs `body` on a new OS thread and returns its result.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

// MARK: - Configuration

/// Operation kinds.
enum LoadOp: String, CaseIterable, Sendable, Comparable {
    case auth, valid, wrong, replay, check
    static func < (a: LoadOp, b: LoadOp) -> Bool { a.index < b.index }
    var index: Int { Self.allCases.firstIndex(of: self)! }
}

/// The weighted mix, e.g. `auth=70,valid=10,wrong=15,replay=5`.
struct LoadMix: Sendable {
    var weights: [(LoadOp, Int)]
    var total: Int

    init(parsing text: String) throws {
        var found: [LoadOp: Int] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let op = LoadOp(rawValue: pair[0]), let weight = Int(pair[1]), (0...1_000_000).contains(weight) else {
                throw ValidationError("--mix: '\(part)' is not <auth|valid|wrong|replay|check>=<weight>")
            }
            found[op] = weight
        }
        weights = LoadOp.allCases.map { ($0, found[$0] ?? 0) }
        total = weights.reduce(0) { $0 + $1.1 }
        guard total > 0 else { throw ValidationError("--mix: the weights add up to 0") }
    }

    func pick(_ roll: Int) -> LoadOp {
        var left = roll
        for (op, weight) in weights {
            if left < weight { return op }
            left -= weight
        }
        return .auth
    }
}

struct LoadConfig: Sendable {
    var endpoints: [LoadEndpoint]
    var users: Int
    var concurrency: Int
    /// Event-loop threads of the timed run.
    var threads = 1
    var duration: Double
    var rate: Double?
    var mix: LoadMix
    var adminKey: String
    var frontendKey: String
    var verifyKey: String
    var prefix: String
    var progress: Bool
    /// 503 answers to code operations are expected (a state-store outage under test): counted
    /// as errors of their own, not as refused valid codes.
    var tolerateUnavailable = false
}

/// A loopback `http://host:port[/base]` resolved to a socket address.
struct LoadEndpoint: Sendable {
    var url: String
    var family: Int32
    var address: [UInt8]
    var hostHeader: String
    var basePath: String

    init(parsing text: String) throws {
        guard let url = URL(string: text), url.scheme == "http", var host = url.host, !host.isEmpty else {
            throw ValidationError("--url '\(text)' is not an http:// URL")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = url.port ?? 80
        guard (1...65535).contains(port) else { throw ValidationError("--url '\(text)': bad port") }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw ValidationError("--url '\(text)': cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var chosen: (Int32, [UInt8])?
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let e = entry, chosen == nil {
            let bytes = Array(UnsafeRawBufferPointer(start: e.pointee.ai_addr, count: Int(e.pointee.ai_addrlen)))
            if Self.isLoopback(family: e.pointee.ai_family, bytes) { chosen = (e.pointee.ai_family, bytes) }
            entry = e.pointee.ai_next
        }
        guard let chosen else { throw ValidationError("--url '\(text)': the load generator only targets loopback addresses") }
        self.url = text
        self.family = chosen.0
        self.address = chosen.1
        let bracketed = host.contains(":") ? "[\(host)]" : host
        self.hostHeader = url.port.map { "\(bracketed):\($0)" } ?? bracketed
        let path = url.path
        self.basePath = path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// A TCP socket for this endpoint with TCP_NODELAY, optionally non-blocking.
    func openSocket(nonBlocking: Bool) throws -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let s = socket(family, type, 0)
        guard s >= 0 else { throw LoadHTTPError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return s
    }

    /// connect(2) to this endpoint (0, or -1 with errno).
    func connect(_ s: Int32) -> Int32 {
        address.withUnsafeBytes { raw in
            Glibc.connect(s, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }

    static func isLoopback(family: Int32, _ bytes: [UInt8]) -> Bool {
        if family == AF_INET, bytes.count >= MemoryLayout<sockaddr_in>.size {
            return bytes.withUnsafeBytes { $0.load(as: sockaddr_in.self) }.sin_addr.s_addr.bigEndian >> 24 == 127
        }
        if family == AF_INET6, bytes.count >= MemoryLayout<sockaddr_in6>.size {
            let a = bytes.withUnsafeBytes { $0.load(as: sockaddr_in6.self) }.sin6_addr
            let raw = withUnsafeBytes(of: a) { Array($0) }
            return raw[0..<15].allSatisfy { $0 == 0 } && raw[15] == 1
        }
        return false
    }
}

// MARK: - Blocking HTTP/1.1 client

struct LoadHTTPError: Error, CustomStringConvertible {
    var description: String
    /// Nothing of the response arrived on a reused connection: the server closed it while idle.
    var stale = false
    init(_ description: String, stale: Bool = false) {
        self.description = description
        self.stale = stale
    }
}

/// A minimal blocking keep-alive HTTP/1.1 client over one TCP socket, for the seeding (the timed
/// run uses ``LoadEventLoop``); owned by one thread (not Sendable).
/// Every send and receive is bounded by a 10 s socket timeout.
final class LoadConnection {
    struct Response {
        var status: Int
        var body: [UInt8]
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }

        /// `session.token` of a sign-in answer, `challenge.token` of a login/start answer and a
        /// problem's `code`: decoded with JSONDecoder into just these fields (the generator shares
        /// the machine with the node, so its own JSON work is kept small).
        private struct Fields: Decodable {
            struct Token: Decodable { var token: String }
            /// A string in a sign-in answer, a number in a problem: read as a string or not at all
            /// (a strict `String?` failed the whole decode of every problem, so a refused replay
            /// or wrong code was counted as an unexpected answer).
            struct Text: Decodable {
                var value: String?
                init(from decoder: any Decoder) throws { value = try? decoder.singleValueContainer().decode(String.self) }
            }
            var session: Token?
            var challenge: Token?
            var status: Text?
            var code: String?
        }
        private var fields: Fields? { try? JSONDecoder().decode(Fields.self, from: Data(body)) }
        var sessionToken: String? { Self.sessionTokenBytes(body) ?? fields?.session?.token }

        /// `session.token` straight from the bytes of a compact answer (the node's JSON has no
        /// spaces and base64url tokens need no escapes); nil sends the caller to the decoder.
        private static func sessionTokenBytes(_ body: [UInt8]) -> String? {
            let session = Array(#""session":{"#.utf8), token = Array(#""token":""#.utf8)
            guard let s = LoadResponseParser.find(body, session, from: 0),
                  let t = LoadResponseParser.find(body, token, from: s + session.count) else { return nil }
            let start = t + token.count
            guard let end = body[start...].firstIndex(of: UInt8(ascii: "\"")), end > start,
                  !body[start..<end].contains(UInt8(ascii: "\\")) else { return nil }
            return String(decoding: body[start..<end], as: UTF8.self)
        }
        var problemCode: String? { fields?.code }
        /// The challenge token when login/start answered `second_step`.
        var secondStepChallenge: String? {
            guard let fields, fields.status?.value == "second_step" else { return nil }
            return fields.challenge?.token
        }
    }

    let endpoint: LoadEndpoint
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    /// The request being sent, and the receive chunk: allocated once per connection.
    private var outgoing: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 16 * 1024)

    init(_ endpoint: LoadEndpoint) { self.endpoint = endpoint }
    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        buffer.removeAll(keepingCapacity: true)
    }

    func request(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]? = nil, contentType: String = "application/json") throws -> Response {
        // Written into one reused buffer: the generator shares the machine with the node.
        Self.encode(method, path, endpoint: endpoint, headers: headers, body: body, contentType: contentType, into: &outgoing)
        for attempt in 0..<2 {
            let reused = fd >= 0
            do {
                if fd < 0 { try connect() }
                try sendAll(outgoing)
                return try readResponse(method: method)
            } catch let error as LoadHTTPError {
                close()
                // A kept-alive connection the server closed while idle: the request never reached it.
                if reused, error.stale, attempt == 0 { continue }
                throw error
            }
        }
        throw LoadHTTPError("unreachable")
    }

    /// The bytes of one request, written into `out` (emptied first).
    static func encode(_ method: String, _ path: String, endpoint: LoadEndpoint, headers: [(String, String)], body: [UInt8]?, contentType: String = "application/json", into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        func line(_ parts: String...) {
            for part in parts { out.append(contentsOf: part.utf8) }
            out.append(contentsOf: [13, 10])
        }
        line(method, " ", endpoint.basePath, path, " HTTP/1.1")
        line("Host: ", endpoint.hostHeader)
        for (name, value) in headers { line(name, ": ", value) }
        if let body {
            line("Content-Type: ", contentType)
            line("Content-Length: ", String(body.count))
        } else if method != "GET" {
            line("Content-Length: 0")
        }
        line()
        if let body { out.append(contentsOf: body) }
    }

    private func connect() throws {
        let s = try endpoint.openSocket(nonBlocking: false)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = endpoint.connect(s)
        guard rc == 0 else {
            let e = errno
            Glibc.close(s)
            throw LoadHTTPError("connect \(endpoint.url): \(String(cString: strerror(e)))")
        }
        fd = s
        buffer.removeAll(keepingCapacity: true)
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw LoadHTTPError("send: \(String(cString: strerror(e)))", stale: e == EPIPE || e == ECONNRESET)
            }
            sent += n
        }
    }

    /// Reads more bytes into `buffer`; returns false at end of stream.
    private func fill() throws -> Bool {
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { throw LoadHTTPError("timed out waiting for \(endpoint.url)") }
            throw LoadHTTPError("recv: \(String(cString: strerror(e)))", stale: e == ECONNRESET && buffer.isEmpty)
        }
    }

    private func readResponse(method: String) throws -> Response {
        for _ in 0..<1_000_000 {
            if let parsed = try LoadResponseParser.parse(buffer, method: method, atEOF: false) {
                return take(parsed)
            }
            let wasEmpty = buffer.isEmpty
            guard try fill() else {
                if let parsed = try LoadResponseParser.parse(buffer, method: method, atEOF: true) { return take(parsed) }
                throw LoadHTTPError(wasEmpty ? "connection closed before the response" : "connection closed mid-response", stale: wasEmpty)
            }
        }
        throw LoadHTTPError("response did not end")
    }

    private func take(_ parsed: LoadResponseParser.Parsed) -> Response {
        buffer.removeFirst(parsed.consumed)
        if parsed.close { close() }
        return parsed.response
    }
}

/// Finds one whole HTTP/1.x response at the start of a buffer: for the blocking client (seeding)
/// and the event-driven run alike. Parsed on bytes, only the status and the three headers that
/// frame the body (a dictionary of every header, lower-cased, was a tenth of the generator's
/// CPU, which it shares with the node on a small machine).
enum LoadResponseParser {
    struct Parsed {
        var response: LoadConnection.Response
        /// Bytes of the buffer the response took.
        var consumed: Int
        /// The connection ends after it (`Connection: close`, HTTP/1.0, or a body read to the end).
        var close: Bool
    }

    static let maximumHead = 64 * 1024
    static let maximumBody = 16 << 20

    /// The response at the start of `buffer`, or nil when more bytes are needed. With `atEOF`
    /// the stream has ended: a body without a length ends there.
    static func parse(_ buffer: [UInt8], method: String, atEOF: Bool) throws(LoadHTTPError) -> Parsed? {
        guard let headEnd = find(buffer, [13, 10, 13, 10], from: 0) else {
            if buffer.count >= maximumHead { throw LoadHTTPError("response head too large") }
            return nil
        }
        var lines = buffer[0..<headEnd].split(separator: 13, omittingEmptySubsequences: false)[...]
        let statusLine = lines.removeFirst().split(separator: 32, maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].starts(with: Array("HTTP/1.".utf8)),
              let status = Int(String(decoding: statusLine[1], as: UTF8.self)) else {
            throw LoadHTTPError("malformed status line")
        }
        let isHTTP10 = statusLine[0].elementsEqual("HTTP/1.0".utf8)
        var connectionClose = false, chunked = false
        var contentLength: Int?
        for var line in lines {
            if line.first == 10 { line = line.dropFirst() }
            guard let colon = line.firstIndex(of: 58) else { continue }
            let name = line[..<colon]
            var value = line[(colon + 1)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            if equalsIgnoringCase(name, "content-length") {
                contentLength = Int(String(decoding: value, as: UTF8.self))
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                chunked = String(decoding: value, as: UTF8.self).lowercased().contains("chunked")
            } else if equalsIgnoringCase(name, "connection") {
                connectionClose = equalsIgnoringCase(value, "close")
            }
        }
        let bodyStart = headEnd + 4
        var close = connectionClose || isHTTP10
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) {
            return Parsed(response: .init(status: status, body: []), consumed: bodyStart, close: close)
        }
        if chunked {
            var body: [UInt8] = []
            var at = bodyStart
            for _ in 0..<1_000_000 {
                guard let lineEnd = find(buffer, [13, 10], from: at) else { return nil }
                let sizeText = String(decoding: buffer[at..<lineEnd], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "", radix: 16), size >= 0 else {
                    throw LoadHTTPError("bad chunk size")
                }
                at = lineEnd + 2
                if size == 0 {
                    // Trailers up to the empty line.
                    for _ in 0..<1000 {
                        guard let end = find(buffer, [13, 10], from: at) else { return nil }
                        let empty = end == at
                        at = end + 2
                        if empty { return Parsed(response: .init(status: status, body: body), consumed: at, close: close) }
                    }
                    throw LoadHTTPError("too many trailers")
                }
                guard body.count + size <= maximumBody else { throw LoadHTTPError("response body too large") }
                guard buffer.count >= at + size + 2 else { return nil }
                body += buffer[at..<(at + size)]
                at += size + 2
            }
            throw LoadHTTPError("too many chunks")
        }
        if let length = contentLength, length >= 0 {
            guard length <= maximumBody else { throw LoadHTTPError("response body too large") }
            guard buffer.count >= bodyStart + length else { return nil }
            return Parsed(response: .init(status: status, body: Array(buffer[bodyStart..<(bodyStart + length)])), consumed: bodyStart + length, close: close)
        }
        // No length: the body runs to the end of the stream.
        guard buffer.count - bodyStart <= maximumBody else { throw LoadHTTPError("response body too large") }
        guard atEOF else { return nil }
        close = true
        return Parsed(response: .init(status: status, body: Array(buffer[bodyStart...])), consumed: buffer.count, close: close)
    }

    /// ASCII case-insensitive comparison of a header name or value with lower-case `text`.
    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let p = text.utf8Start
        for (i, b) in bytes.enumerated() where (b >= 65 && b <= 90 ? b | 0x20 : b) != p[i] { return false }
        return true
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = start
        let first = needle[0]
        while i + needle.count <= haystack.count {
            if haystack[i] == first {
                var j = 1
                while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

// MARK: - Shared state

/// A seeded user: its name and secret never change.
struct LoadUser: Sendable {
    let name: String
    let secret: String
    let totp: TOTP

    func code(step: Int64) -> String { HOTP.format(totp.code(step: UInt64(step)), digits: totp.digits) }
}

/// What the generator knows about one user's server-side state.
struct LoadUserState {
    /// The highest step submitted as a valid code (accepted or not): never submitted again.
    var lastStep: Int64 = -1
    /// Reserved by a worker for a valid or replay operation.
    var busy = false
    var session: String?
    /// The last accepted code, for replays.
    var accepted: (code: String, step: Int64)?
    /// Replays since the last success: kept under the free-failure allowance so valid codes are never throttled.
    var replaysSinceSuccess = 0
    /// Replays in the current 15-minute window: kept under the per-user failure budget (100 per 15 min).
    var replayWindowStart: Int64 = 0
    var replaysInWindow = 0
    /// A challenge opened before the run for a `check` operation (consumed by it).
    var challenge: String?
}

func loadNow() -> Int64 { Int64(Date().timeIntervalSince1970) }
func loadStep() -> Int64 { loadNow() / 30 }
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One lock's share of the per-user bookkeeping: users `s`, `s + S`, `s + 2S`, … of stripe `s`
/// of `S`, and those of them whose pre-opened challenge (for `check`) is not spent yet.
struct LoadStripe {
    var users: [LoadUserState]
    var checkQueue: [Int] = []
}

/// A lock that is a class, so stripes can sit in an array (a `Mutex` cannot).
final class LoadLock<Value>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: sending Value) { mutex = Mutex(value) }
}

/// State shared by the seeding threads and the event loops: per-user bookkeeping under striped
/// locks (one lock for every user, when each connection had its own thread, was contended: a
/// twentieth of the generator's CPU went to waiting on it; several `--threads` would contend the
/// same way), live counters as atomics.
final class LoadShared: Sendable {
    let users: [LoadUser]
    /// Users that take valid codes and replays (never wrong codes, so never throttled).
    let validPool: Range<Int>
    /// Users reserved for wrong codes.
    let wrongPool: Range<Int>
    let stripes: [LoadLock<LoadStripe>]
    let ops = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let pacer = Mutex<UInt64>(0)

    init(users: [LoadUser]) {
        self.users = users
        let wrong = max(1, users.count / 10)
        validPool = 0..<(users.count - wrong)
        wrongPool = (users.count - wrong)..<users.count
        let count = min(64, users.count)
        stripes = (0..<count).map { s in
            LoadLock(LoadStripe(users: Array(repeating: LoadUserState(), count: (users.count - s + count - 1) / count)))
        }
    }

    /// Runs `body` on user `index`'s state under its stripe's lock.
    func withUser<R>(_ index: Int, _ body: (inout LoadUserState) -> R) -> R {
        stripes[index % stripes.count].mutex.withLock { body(&$0.users[index / stripes.count]) }
    }

    /// Visits the users of `pool`, stripe by stripe from the one `roll` picks, under each
    /// stripe's lock, until `body` returns a value.
    private func scan<R>(_ pool: Range<Int>, _ roll: Int, _ body: (Int, inout LoadUserState) -> R?) -> R? {
        let count = stripes.count
        for k in 0..<count {
            let s = (roll &+ k) % count
            let found: R? = stripes[s].mutex.withLock { stripe in
                let n = stripe.users.count
                guard n > 0 else { return nil }
                let offset = (roll / count) % n
                for j in 0..<n {
                    let local = (offset + j) % n
                    let i = local * count + s
                    guard pool.contains(i) else { continue }
                    if let r = body(i, &stripe.users[local]) { return r }
                }
                return nil
            }
            if let found { return found }
        }
        return nil
    }

    func randomSession(_ roll: Int) -> String? {
        let count = stripes.count
        return stripes[roll % count].mutex.withLock { stripe in
            let n = stripe.users.count
            for k in 0..<min(n, 16) {
                if let s = stripe.users[(roll / count &+ k * 7919) % n].session { return s }
            }
            return nil
        }
    }

    /// Reserves a valid-pool user with a usable step: the current one or the next (inside the ±1
    /// window), above every step already submitted for it.
    func reserveValid(_ roll: Int) -> (index: Int, step: Int64)? {
        let current = loadStep()
        return scan(validPool, roll) { i, state in
            guard !state.busy, state.lastStep < current + 1 else { return nil }
            state.busy = true
            return (i, max(state.lastStep + 1, current))
        }
    }

    /// Records that `step` was submitted for `index` (before the answer: a lost answer must not
    /// lead to reusing the step).
    func markSubmitted(_ index: Int, step: Int64) {
        withUser(index) { $0.lastStep = max($0.lastStep, step) }
    }

    func accepted(_ index: Int, code: String, step: Int64, session: String?) {
        withUser(index) { state in
            state.accepted = (code, step)
            state.replaysSinceSuccess = 0
            if let session { state.session = session }
        }
    }

    /// Reserves a valid-pool user with an accepted code to replay, staying inside the throttle's
    /// free failures and the per-user failure budget.
    func reserveReplay(_ roll: Int) -> (index: Int, code: String)? {
        let now = loadNow()
        let current = now / 30
        return scan(validPool, roll) { i, state in
            guard !state.busy, let accepted = state.accepted, state.replaysSinceSuccess < 3 else { return nil }
            if now - state.replayWindowStart >= 900 {
                state.replayWindowStart = now
                state.replaysInWindow = 0
            }
            guard state.replaysInWindow < 40 else { return nil }
            // A code that is by chance also the code of a still-unused step in the window would
            // rightly be accepted: skip that (one-in-a-million) case.
            let last = state.lastStep
            if (current - 1...current + 1).contains(where: { $0 > last && users[i].code(step: $0) == accepted.code }) { return nil }
            state.busy = true
            state.replaysSinceSuccess += 1
            state.replaysInWindow += 1
            return (i, accepted.code)
        }
    }

    /// Reserves a valid-pool user with a pre-opened challenge and a usable step, taking the
    /// challenge (a check consumes it either way). Users with an open challenge wait in their
    /// stripe's queue, so a reservation costs O(1) however many challenges are already spent,
    /// and takes one lock.
    func reserveCheck(_ roll: Int) -> (index: Int, step: Int64, challenge: String)? {
        let current = loadStep()
        let count = stripes.count
        var attempts = 0
        for k in 0..<count where attempts < 64 {
            let s = (roll &+ k) % count
            let found: (Int, Int64, String)? = stripes[s].mutex.withLock { stripe in
                while attempts < 64, let i = stripe.checkQueue.popLast() {
                    attempts += 1
                    let local = i / count
                    guard let challenge = stripe.users[local].challenge else { continue }  // spent
                    guard !stripe.users[local].busy, stripe.users[local].lastStep < current + 1 else {
                        // Busy or out of steps for now: back of the line, try the next stripe.
                        stripe.checkQueue.insert(i, at: 0)
                        return nil
                    }
                    stripe.users[local].busy = true
                    stripe.users[local].challenge = nil
                    return (i, max(stripe.users[local].lastStep + 1, current), challenge)
                }
                return nil
            }
            if let found { return (found.0, found.1, found.2) }
        }
        return nil
    }

    func setChallenge(_ index: Int, _ challenge: String) {
        stripes[index % stripes.count].mutex.withLock { stripe in
            stripe.users[index / stripes.count].challenge = challenge
            stripe.checkQueue.append(index)
        }
    }

    func release(_ index: Int) {
        withUser(index) { $0.busy = false }
    }

    /// Rate cap: the next free slot (monotonic nanoseconds).
    func slot(interval: UInt64) -> UInt64 {
        let now = monotonicNanos()
        return pacer.withLock { next in
            let slot = max(next, now)
            next = slot + interval
            return slot
        }
    }
}

// MARK: - Results

struct LoadKindStats: Sendable {
    var count = 0
    var ok = 0
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)

    mutating func record(ok: Bool, since start: UInt64) {
        count += 1
        if ok { self.ok += 1 }
        let micros = max(1, min((monotonicNanos() &- start) / 1000, 120_000_000))
        _ = histogram.record(micros)
    }

    mutating func merge(_ other: LoadKindStats) {
        count += other.count
        ok += other.ok
        histogram.add(other.histogram)
    }
}

struct LoadWorkerResult: Sendable {
    var kinds: [LoadOp: LoadKindStats] = Dictionary(uniqueKeysWithValues: LoadOp.allCases.map { ($0, LoadKindStats()) })
    var errors: [String: Int] = [:]
    var failures: [String: Int] = [:]
    var skipped: [String: Int] = [:]
    var transportErrors = 0
    var lastTransportError: String?

    mutating func merge(_ other: LoadWorkerResult) {
        for (op, stats) in other.kinds { kinds[op, default: LoadKindStats()].merge(stats) }
        errors.merge(other.errors, uniquingKeysWith: +)
        failures.merge(other.failures, uniquingKeysWith: +)
        skipped.merge(other.skipped, uniquingKeysWith: +)
        transportErrors += other.transportErrors
        lastTransportError = other.lastTransportError ?? lastTransportError
    }
}

// MARK: - Worker

/// SplitMix64 (Steele, Lea, Flood 2014), seeded from the system generator.
struct LoadRandom: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One OS thread: one keep-alive connection per URL, requests round-robin across them.
/// One request of an operation, not yet encoded.
struct LoadRequest {
    var method: String
    var path: String
    var key: String
    var headers: [(String, String)] = []
    var json: [(String, String)]? = nil
    /// A user's index: the request goes to the same URL as that user's other requests.
    var affinity: Int? = nil

    /// The JSON body, written as bytes.
    var body: [UInt8]? {
        json.map { pairs in
            var w = JSONWriter(capacity: 512)
            w.raw("{")
            for (index, (name, value)) in pairs.enumerated() {
                if index > 0 { w.raw(",") }
                w.string(name)
                w.raw(":")
                w.string(value)
            }
            w.raw("}")
            return w.bytes
        }
    }

    var allHeaders: [(String, String)] { [("Authorization", "Bearer \(key)")] + headers }
}

/// What an operation does next: send a request and continue with its answer (or the transport
/// error), or nothing (the operation is over). Operations are written once in this form; the
/// event loop (``LoadEventLoop``) runs them during the timed run.
enum LoadStep {
    case send(LoadRequest, (Result<LoadConnection.Response, any Error>) -> LoadStep)
    case done
}

/// The operations and their checks, and one driver's share of the results (not Sendable: one
/// thread owns it). Its blocking connections serve the seeding.
final class LoadWorker {
    let config: LoadConfig
    let shared: LoadShared
    var connections: [LoadConnection]
    var next: Int
    /// Picks operations, users and wrong codes: nothing secret, so a SplitMix64 seeded once
    /// (the system generator is a getrandom(2) call per number).
    var rng = LoadRandom()
    var result = LoadWorkerResult()

    init(config: LoadConfig, shared: LoadShared, index: Int) {
        self.config = config
        self.shared = shared
        connections = config.endpoints.map(LoadConnection.init)
        next = index
    }

    /// Which URL a request goes to: the next one round-robin, or with `affinity` (a user's
    /// index) always the same one: a user's sign-in steps go to one node, as behind a balancer
    /// that hashes on the user, so a finish finds the credential its login/start cached there.
    func endpointIndex(_ request: LoadRequest) -> Int {
        if let affinity = request.affinity { return affinity % config.endpoints.count }
        defer { next &+= 1 }
        return next % config.endpoints.count
    }

    /// Sends `request` on this worker's blocking connection (seeding).
    func send(_ request: LoadRequest) throws -> LoadConnection.Response {
        try connections[endpointIndex(request)].request(request.method, request.path, headers: request.allHeaders, body: request.body)
    }

    func roll() -> Int { Int(rng.next() >> 2) }

    func error(_ key: String) {
        result.errors[key, default: 0] += 1
        shared.errors.add(1, ordering: .relaxed)
    }

    func failure(_ key: String) {
        result.failures[key, default: 0] += 1
        shared.failures.add(1, ordering: .relaxed)
    }

    func transport(_ op: LoadOp, _ e: any Error) {
        result.transportErrors += 1
        result.errors["\(op.rawValue):transport", default: 0] += 1
        result.lastTransportError = "\(e)"
        shared.errors.add(1, ordering: .relaxed)
    }

    func startRequest(_ user: String, affinity: Int) -> LoadRequest {
        LoadRequest(method: "POST", path: "/v1/login/start", key: config.frontendKey, json: [("user", user)], affinity: affinity)
    }

    func finishRequest(_ challenge: String, code: String, affinity: Int) -> LoadRequest {
        LoadRequest(method: "POST", path: "/v1/login/finish", key: config.frontendKey, json: [("challenge", challenge), ("method", "totp"), ("code", code)], affinity: affinity)
    }

    /// login/start on the blocking connection (seeding); the challenge when the answer is `second_step`.
    func startLogin(_ user: String, affinity: Int) throws -> (Int, String?) {
        let reply = try send(startRequest(user, affinity: affinity))
        guard reply.status == 200 else { return (reply.status, nil) }
        return (200, reply.secondStepChallenge)
    }

    /// login/finish on the blocking connection (seeding).
    func finish(_ challenge: String, code: String, affinity: Int) throws -> LoadConnection.Response {
        try send(finishRequest(challenge, code: code, affinity: affinity))
    }

    /// The first step of one operation of kind `op`.
    func begin(_ op: LoadOp) -> LoadStep {
        shared.ops.add(1, ordering: .relaxed)
        switch op {
        case .auth: return auth()
        case .valid: return valid()
        case .wrong: return wrong()
        case .replay: return replay()
        case .check: return check()
        }
    }

    func auth() -> LoadStep {
        let start = monotonicNanos()
        guard let token = shared.randomSession(roll()) else {
            result.kinds[.auth]!.record(ok: false, since: start)
            error("auth:no_session")
            return .done
        }
        return .send(LoadRequest(method: "GET", path: "/v1/auth", key: config.verifyKey, headers: [("Gatehouse-Session", token)])) { [self] answer in
            switch answer {
            case .success(let reply):
                result.kinds[.auth]!.record(ok: reply.status == 204, since: start)
                if reply.status == 401 {
                    failure("session_refused")
                } else if reply.status != 204 {
                    error("auth:\(reply.status)")
                }
            case .failure(let e):
                result.kinds[.auth]!.record(ok: false, since: start)
                transport(.auth, e)
            }
            return .done
        }
    }

    /// login/start for a code operation, then `then` with the challenge; on anything but a
    /// challenge the operation is recorded as failed. `end` runs when the operation ends early.
    func withChallenge(for index: Int, kind: LoadOp, since start: UInt64, end: @escaping () -> Void = {}, then: @escaping (String) -> LoadStep) -> LoadStep {
        .send(startRequest(shared.users[index].name, affinity: index)) { [self] answer in
            switch answer {
            case .success(let reply):
                if reply.status == 200, let challenge = reply.secondStepChallenge { return then(challenge) }
                result.kinds[kind]!.record(ok: false, since: start)
                error("\(kind.rawValue):start_\(reply.status)")
            case .failure(let e):
                result.kinds[kind]!.record(ok: false, since: start)
                transport(kind, e)
            }
            end()
            return .done
        }
    }

    func valid() -> LoadStep {
        guard let pick = shared.reserveValid(roll()) else {
            // Every valid-pool user has spent the current and next step: answer with a session check.
            result.skipped["valid_skipped", default: 0] += 1
            return auth()
        }
        let start = monotonicNanos()
        let release = { [shared] in shared.release(pick.index) }
        return withChallenge(for: pick.index, kind: .valid, since: start, end: release) { [self] challenge in
            submitValidCode(.valid, index: pick.index, reservedStep: pick.step, challenge: challenge, since: start, end: release)
        }
    }

    /// One code check alone: a valid code on a challenge opened before the run.
    func check() -> LoadStep {
        guard let pick = shared.reserveCheck(roll()) else {
            // Every pre-opened challenge is used (or every user spent its steps): a session check.
            result.skipped["check_skipped", default: 0] += 1
            return auth()
        }
        let start = monotonicNanos()
        return submitValidCode(.check, index: pick.index, reservedStep: pick.step, challenge: pick.challenge, since: start) { [shared] in
            shared.release(pick.index)
        }
    }

    /// Submits the user's code for the reserved step (or the window's oldest, if time moved on)
    /// on `challenge` and records the answer under `kind`: only 200 is right; a throttle, or a 503
    /// with --tolerate-unavailable, is an error; anything else is a refused valid code. `end`
    /// runs when the answer (or the transport error) is in.
    func submitValidCode(_ kind: LoadOp, index: Int, reservedStep: Int64, challenge: String, since start: UInt64, end: @escaping () -> Void) -> LoadStep {
        // The step may have moved on while login/start ran: stay inside the ±1 window.
        let step = max(reservedStep, loadStep() - 1)
        shared.markSubmitted(index, step: step)
        let code = shared.users[index].code(step: step)
        return .send(finishRequest(challenge, code: code, affinity: index)) { [self] answer in
            defer { end() }
            guard case .success(let reply) = answer else {
                if case .failure(let e) = answer {
                    result.kinds[kind]!.record(ok: false, since: start)
                    transport(kind, e)
                }
                return .done
            }
            result.kinds[kind]!.record(ok: reply.status == 200, since: start)
            switch reply.status {
            case 200:
                shared.accepted(index, code: code, step: step, session: reply.sessionToken)
            case 429:
                result.skipped["\(kind.rawValue)_throttled", default: 0] += 1
                error("\(kind.rawValue):429")
            case 503 where config.tolerateUnavailable:
                error("\(kind.rawValue):unavailable")
            default:
                failure("\(kind.rawValue)_refused")
                error("\(kind.rawValue):\(reply.status)")
            }
            return .done
        }
    }

    func wrong() -> LoadStep {
        let pool = shared.wrongPool
        let index = pool.lowerBound + roll() % pool.count
        let user = shared.users[index]
        let start = monotonicNanos()
        return withChallenge(for: index, kind: .wrong, since: start) { [self] challenge in
            // A code that is none of the codes in a ±2 window around now.
            let current = loadStep()
            let live = Set((current - 2...current + 2).map { user.code(step: $0) })
            var code = "000000"
            for _ in 0..<100 {
                code = HOTP.format(UInt32(rng.next() % 1_000_000), digits: 6)
                if !live.contains(code) { break }
            }
            return submitRefusedCode(.wrong, index: index, challenge: challenge, code: code, since: start)
        }
    }

    /// Submits a code that must be refused (a wrong or replayed one) and records the answer under
    /// `kind`: 401 `invalid_code` or a throttle is right, an acceptance is a correctness failure
    /// (`accepted` then runs). `end` runs when the answer (or the transport error) is in.
    func submitRefusedCode(_ kind: LoadOp, index: Int, challenge: String, code: String, since start: UInt64, accepted: @escaping () -> Void = {}, end: @escaping () -> Void = {}) -> LoadStep {
        .send(finishRequest(challenge, code: code, affinity: index)) { [self] answer in
            defer { end() }
            switch answer {
            case .success(let reply):
                let expected = (reply.status == 401 && reply.problemCode == "invalid_code") || reply.status == 429
                result.kinds[kind]!.record(ok: expected, since: start)
                if reply.status == 200 {
                    failure("\(kind.rawValue)_accepted")
                    accepted()
                } else if !expected {
                    error("\(kind.rawValue):\(reply.status)")
                }
            case .failure(let e):
                result.kinds[kind]!.record(ok: false, since: start)
                transport(kind, e)
            }
            return .done
        }
    }

    func replay() -> LoadStep {
        guard let pick = shared.reserveReplay(roll()) else {
            result.skipped["replay_skipped", default: 0] += 1
            return auth()
        }
        let start = monotonicNanos()
        let release = { [shared] in shared.release(pick.index) }
        return withChallenge(for: pick.index, kind: .replay, since: start, end: release) { [self] challenge in
            submitRefusedCode(.replay, index: pick.index, challenge: challenge, code: pick.code, since: start, accepted: { [shared] in
                // The server now holds a later step than we know: never use the window again.
                shared.markSubmitted(pick.index, step: loadStep() + 1)
            }, end: release)
        }
    }
}

func jsonString(_ text: String) -> String {
    var w = JSONWriter(capacity: text.utf8.count + 2)
    w.string(text)
    return String(decoding: w.bytes, as: UTF8.self)
}

// MARK: - Runner

/// Seeds, runs the workers and builds the report. Blocking: call it on a dedicated thread.
struct LoadRunner {
    let config: LoadConfig

    init(_ config: LoadConfig) { self.config = config }

    /// Starts `count` threads running `body(index)`, waits for all (bounded by `timeout` seconds).
    private func threads(_ count: Int, timeout: Double, _ body: @escaping @Sendable (Int) -> Void) throws {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        guard group.wait(timeout: .now() + timeout) == .success else {
            throw CLIError("load: worker threads did not finish within \(Int(timeout)) s")
        }
    }

    func run() throws -> LoadReport {
        let config = self.config
        let seedStart = monotonicNanos()
        // Users and secrets.
        var users: [LoadUser] = []
        users.reserveCapacity(config.users)
        for i in 0..<config.users {
            let bytes = try SystemRandom().bytes(20)
            users.append(LoadUser(name: "\(config.prefix.lowercased())-\(i)@load.example", secret: Base32.encode(bytes), totp: try TOTP(secret: bytes)))
        }
        let shared = LoadShared(users: users)

        // Import, in chunks of at most 1000 lines.
        let importer = LoadConnection(config.endpoints[0])
        for chunkStart in stride(from: 0, to: users.count, by: 1000) {
            let chunk = users[chunkStart..<min(chunkStart + 1000, users.count)]
            let text = chunk.map { u in
                "{\"user\":\(jsonString(u.name)),\"totp_secret\":\(jsonString(u.secret)),\"recovery_email\":\(jsonString("recovery+" + u.name)),\"verified\":true}"
            }.joined(separator: "\n")
            let reply: LoadConnection.Response
            do {
                reply = try importer.request("POST", "/v1/users/import", headers: [("Authorization", "Bearer \(config.adminKey)")], body: Array(text.utf8), contentType: "application/x-ndjson")
            } catch {
                throw CLIError("load: import failed: \(error)")
            }
            let imported = reply.json["imported"] as? Int ?? 0
            guard reply.status == 200, imported == chunk.count else {
                throw CLIError("load: import answered \(reply.status), imported \(imported) of \(chunk.count): \(String(decoding: reply.body.prefix(500), as: UTF8.self))")
            }
        }
        importer.close()

        // One sign-in per user: a session for the checks, and a first accepted code for replays
        // (not needed when the mix is only lone code checks).
        let seedErrors = Mutex<[String]>([])
        let seeders = min(config.concurrency, users.count)
        let weight = Dictionary(uniqueKeysWithValues: config.mix.weights.map { ($0.0.rawValue, $0.1) })
        let checksOnly = weight["check", default: 0] == config.mix.total
        try threads(checksOnly ? 0 : seeders, timeout: 120) { t in
            let worker = LoadWorker(config: config, shared: shared, index: t)
            for i in stride(from: t, to: shared.users.count, by: seeders) {
                let user = shared.users[i]
                var done = false
                for attempt in 0..<2 where !done {
                    do {
                        let (status, challenge) = try worker.startLogin(user.name, affinity: i)
                        guard let challenge else {
                            seedErrors.withLock { $0.append("login/start for \(user.name) answered \(status) without a second step") }
                            break
                        }
                        let step = loadStep() + Int64(attempt)
                        shared.markSubmitted(i, step: step)
                        let code = user.code(step: step)
                        let reply = try worker.finish(challenge, code: code, affinity: i)
                        if reply.status == 200, let token = reply.sessionToken {
                            shared.accepted(i, code: code, step: step, session: token)
                            done = true
                        } else if attempt == 1 {
                            seedErrors.withLock { $0.append("sign-in of \(user.name) answered \(reply.status)") }
                        }
                    } catch {
                        seedErrors.withLock { $0.append("sign-in of \(user.name): \(error)") }
                        break
                    }
                }
            }
        }
        // Challenges for `check` operations, opened before the clock starts.
        if weight["check", default: 0] > 0 {
            try threads(seeders, timeout: 120) { t in
                let worker = LoadWorker(config: config, shared: shared, index: t)
                for i in stride(from: shared.validPool.lowerBound + t, to: shared.validPool.upperBound, by: seeders) {
                    do {
                        let (status, challenge) = try worker.startLogin(shared.users[i].name, affinity: i)
                        guard let challenge else {
                            seedErrors.withLock { $0.append("login/start for \(shared.users[i].name) answered \(status) without a second step") }
                            break
                        }
                        shared.setChallenge(i, challenge)
                    } catch {
                        seedErrors.withLock { $0.append("login/start for \(shared.users[i].name): \(error)") }
                        break
                    }
                }
                worker.connections.forEach { $0.close() }
            }
        }
        let errors = seedErrors.withLock { $0 }
        guard errors.isEmpty else {
            throw CLIError("load: seeding failed for \(errors.count) user(s); first: \(errors[0])")
        }
        let seedSeconds = Double(monotonicNanos() - seedStart) / 1e9

        // The run.
        let results = Mutex<[LoadWorkerResult]>([])
        let done = Atomic<Bool>(false)
        let start = monotonicNanos()
        let deadline = start + UInt64(config.duration * 1e9)
        let interval = config.rate.map { UInt64(1e9 / $0) }
        if config.progress {
            let thread = Thread {
                var lastOps = 0
                var tick = 0
                // Bounded: the run lasts at most 3600 s plus the workers' 10 s socket timeouts.
                while !done.load(ordering: .relaxed), tick < 4000 {
                    usleep(1_000_000)
                    tick += 1
                    if done.load(ordering: .relaxed) { break }
                    let ops = shared.ops.load(ordering: .relaxed)
                    let elapsed = Double(monotonicNanos() - start) / 1e9
                    let line = String(format: "load: %5.0fs  ops %9d  %8.0f ops/s  errors %d  failures %d\n",
                                      elapsed, ops, Double(ops - lastOps), shared.errors.load(ordering: .relaxed), shared.failures.load(ordering: .relaxed))
                    lastOps = ops
                    FileHandle.standardError.write(Data(line.utf8))
                }
            }
            thread.start()
        }
        // The timed run: event loops, each with its share of the requests in flight.
        let loops = config.threads
        let loopErrors = Mutex<[String]>([])
        try threads(loops, timeout: config.duration + 60) { t in
            let worker = LoadWorker(config: config, shared: shared, index: t)
            let share = config.concurrency / loops + (t < config.concurrency % loops ? 1 : 0)
            do {
                let loop = try LoadEventLoop(worker: worker, slots: share)
                loop.run(deadline: deadline, interval: interval)
            } catch {
                loopErrors.withLock { $0.append("\(error)") }
            }
            let result = worker.result
            results.withLock { $0.append(result) }
        }
        if let first = loopErrors.withLock({ $0.first }) { throw CLIError("load: \(first)") }
        done.store(true, ordering: .relaxed)
        let elapsed = Double(monotonicNanos() - start) / 1e9
        var total = LoadWorkerResult()
        for r in results.withLock({ $0 }) { total.merge(r) }
        return LoadReport(config: config, result: total, elapsed: elapsed, seedSeconds: seedSeconds,
                          validPool: shared.validPool.count, wrongPool: shared.wrongPool.count)
    }
}

// MARK: - Report

struct LoadReport: Sendable {
    let config: LoadConfig
    let result: LoadWorkerResult
    let elapsed: Double
    let seedSeconds: Double
    let validPool: Int
    let wrongPool: Int

    var totalOps: Int { result.kinds.values.reduce(0) { $0 + $1.count } }
    var correctnessFailures: Int { result.failures.values.reduce(0, +) }
    var transportShare: Double { totalOps == 0 ? 1 : Double(result.transportErrors) / Double(totalOps) }
    /// No correctness failure, at most 1% transport errors, and something ran.
    var passed: Bool { correctnessFailures == 0 && transportShare <= 0.01 && totalOps > 0 }

    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9)]

    func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 1000).rounded() / 1000 }
    func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

    func json() -> String {
        var kinds: [String: Any] = [:]
        for op in LoadOp.allCases {
            let s = result.kinds[op] ?? LoadKindStats()
            var latency: [String: Any] = [:]
            for (name, p) in Self.percentiles { latency[name] = s.count > 0 ? ms(s.histogram.valueAtPercentile(p)) : 0 }
            latency["max"] = s.count > 0 ? ms(s.histogram.max) : 0
            kinds[op.rawValue] = ["count": s.count, "ok": s.ok, "ops_per_s": round3(Double(s.count) / elapsed), "latency_ms": latency]
        }
        let object: [String: Any] = [
            "urls": config.endpoints.map(\.url), "users": config.users, "valid_pool": validPool, "wrong_pool": wrongPool,
            "concurrency": config.concurrency, "duration_s": round3(elapsed), "seed_s": round3(seedSeconds),
            "rate": config.rate ?? NSNull(), "mix": Dictionary(uniqueKeysWithValues: config.mix.weights.map { ($0.0.rawValue, $0.1) }),
            "total_ops": totalOps, "throughput": round3(Double(totalOps) / elapsed), "kinds": kinds,
            "errors": result.errors, "transport_errors": result.transportErrors, "skipped": result.skipped,
            "failures": result.failures, "correctness_failures": correctnessFailures, "passed": passed,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    func text() -> String {
        var out = "gatehouse load: \(config.endpoints.count) URL(s), \(config.users) users (\(validPool) for valid codes and replays, \(wrongPool) for wrong codes), concurrency \(config.concurrency)"
        if let rate = config.rate { out += ", rate cap \(rate)/s" }
        out += String(format: "\nseeded in %.2f s; ran %.2f s\n\n", seedSeconds, elapsed)
        out += "kind        count        ok      ops/s     p50 ms     p90 ms     p99 ms   p99.9 ms     max ms\n"
        for op in LoadOp.allCases {
            let s = result.kinds[op] ?? LoadKindStats()
            let p = Self.percentiles.map { s.count > 0 ? ms(s.histogram.valueAtPercentile($0.1)) : 0 }
            out += op.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += String(format: "%9d %9d %10.1f %10.3f %10.3f %10.3f %10.3f %10.3f\n", s.count, s.ok, Double(s.count) / elapsed, p[0], p[1], p[2], p[3], s.count > 0 ? ms(s.histogram.max) : 0)
        }
        out += String(format: "total   %9d %9s %10.1f\n\n", totalOps, "", Double(totalOps) / elapsed)
        func list(_ d: [String: Int]) -> String { d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        out += "errors: \(list(result.errors))\n"
        if let last = result.lastTransportError { out += "last transport error: \(last)\n" }
        out += "skipped: \(list(result.skipped)) (answered by a session check)\n"
        out += "correctness failures: \(correctnessFailures)\(correctnessFailures > 0 ? " (\(list(result.failures)))" : "")\n"
        out += passed ? "PASS" : "FAIL"
        return out
    }
}
