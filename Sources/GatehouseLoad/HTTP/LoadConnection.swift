import Glibc

/// A minimal blocking keep-alive HTTP/1.1 client over one TCP socket, for the seeding (the timed
/// run uses ``LoadEventLoop`` or ``LoadNIOLoop``); owned by one thread (not Sendable).
/// Every send and receive is bounded by a 10 s socket timeout.
final class LoadConnection {
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

    func request(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]? = nil, contentType: String = "application/json") throws(LoadError) -> LoadResponse {
        // Written into one reused buffer: the generator shares the machine with the node.
        Self.encode(method, path, endpoint: endpoint, headers: headers, body: body, contentType: contentType, into: &outgoing)
        for attempt in 0..<2 {
            let reused = fd >= 0
            do {
                if fd < 0 { try connect() }
                try sendAll(outgoing)
                return try readResponse(method: method)
            } catch {
                close()
                // A kept-alive connection the server closed while idle: the request never reached it.
                if reused, error.code == .staleConnection, attempt == 0 { continue }
                throw error
            }
        }
        throw LoadError.transport("unreachable")
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

    private func connect() throws(LoadError) {
        let s = try endpoint.openSocket(nonBlocking: false)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = endpoint.connect(s)
        guard rc == 0 else {
            let e = errno
            Glibc.close(s)
            throw LoadError.transport("connect \(endpoint.url): \(String(cString: strerror(e)))")
        }
        fd = s
        buffer.removeAll(keepingCapacity: true)
    }

    private func sendAll(_ bytes: [UInt8]) throws(LoadError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw LoadError.transport("send: \(String(cString: strerror(e)))", stale: e == EPIPE || e == ECONNRESET)
            }
            sent += n
        }
    }

    /// Reads more bytes into `buffer`; returns false at end of stream.
    private func fill() throws(LoadError) -> Bool {
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { throw LoadError.transport("timed out waiting for \(endpoint.url)") }
            throw LoadError.transport("recv: \(String(cString: strerror(e)))", stale: e == ECONNRESET && buffer.isEmpty)
        }
    }

    private func readResponse(method: String) throws(LoadError) -> LoadResponse {
        for _ in 0..<1_000_000 {
            if let parsed = try LoadResponseParser.parse(buffer, method: method, atEOF: false) {
                return take(parsed)
            }
            let wasEmpty = buffer.isEmpty
            guard try fill() else {
                if let parsed = try LoadResponseParser.parse(buffer, method: method, atEOF: true) { return take(parsed) }
                throw LoadError.transport(wasEmpty ? "connection closed before the response" : "connection closed mid-response", stale: wasEmpty)
            }
        }
        throw LoadError.transport("response did not end")
    }

    private func take(_ parsed: LoadResponseParser.Parsed) -> LoadResponse {
        buffer.removeFirst(parsed.consumed)
        if parsed.close { close() }
        return parsed.response
    }
}

