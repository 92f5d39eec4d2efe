import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one blocking hiredis `redisContext`. Every hiredis call of the module is in this folder,
/// and no hiredis type leaves it: replies are copied into ``RedisValue`` and freed at once.
///
/// Not `Sendable`: a context belongs to the one I/O thread that created it.
final class HiredisContext {
    private let context: UnsafeMutablePointer<redisContext>
    /// The reply being assembled from what the socket gave: how many of its bytes, against the
    /// size limit (see `readReply`).
    private var assembly = ReplyAssembly()

    private init(_ context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        // close(2) alone drops only this process's reference to the socket: if a child process
        // inherited it (hiredis 0.14.1 creates sockets without SOCK_CLOEXEC, so a spawn on
        // another thread before `connect` below marks it close-on-exec gets a copy), the
        // connection stays open until that child exits and the server never sees it end.
        // shutdown(2) acts on the socket itself, so a connection dropped after a timeout or a
        // protocol error ends for the server at once.
        _ = shutdown(self.context.pointee.fd, Int32(SHUT_RDWR))
        redisFree(self.context)
    }

    /// Connects (blocking, bounded by `connectTimeout`) and sets the socket's send/receive
    /// timeout to `ioTimeout`, so that no later read or write blocks longer than that.
    static func connect(
        to endpoint: RedisURL.Endpoint,
        connectTimeout: Duration,
        ioTimeout: Duration
    ) throws(RedisError) -> HiredisContext {
        let timeout = timeval(connectTimeout)
        let raw: UnsafeMutablePointer<redisContext>?
        switch endpoint {
        case .tcp(let host, let port): raw = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path): raw = redisConnectUnixWithTimeout(path, timeout)
        case .sentinel:
            // The connection resolves the master through the sentinels (SentinelResolver) and
            // connects to the `.tcp` address they name.
            throw RedisError(.invalidArgument, "a Sentinel endpoint must be resolved to a master before connecting")
        case .cluster:
            // The cluster router connects to each master's `.tcp` address from its slot map.
            throw RedisError(.invalidArgument, "a Cluster endpoint must be resolved to one node before connecting")
        }
        guard let raw else {
            throw RedisError(.connectionUnavailable, "hiredis could not allocate a context")
        }
        if raw.pointee.err != 0 {
            let message = errorString(raw)
            redisFree(raw)
            throw RedisError(.connectionUnavailable, "cannot connect to \(endpoint): \(message)")
        }
        // From here the class owns `raw` and frees it on every path, thrown errors included.
        let context = HiredisContext(raw)
        // Keep the socket out of child processes started later (see `deinit` for the window
        // before this line).
        _ = fcntl(raw.pointee.fd, F_SETFD, fcntl(raw.pointee.fd, F_GETFD) | FD_CLOEXEC)
        guard redisSetTimeout(raw, timeval(ioTimeout)) == REDIS_OK else {
            throw RedisError(.connectionUnavailable, "cannot set the socket timeout: \(errorString(raw))")
        }
        return context
    }

    /// Copies one RESP-encoded command into hiredis's output buffer (no I/O).
    func append(_ command: [UInt8]) throws(RedisError) {
        let status = command.withUnsafeBytes { bytes in
            redisAppendFormattedCommand(self.context, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard status == REDIS_OK else { throw self.currentError(during: "buffering a command") }
    }

    /// Writes the whole output buffer (blocking; each write bounded by the I/O timeout).
    func flush() throws(RedisError) {
        var done: Int32 = 0
        repeat {
            guard redisBufferWrite(self.context, &done) == REDIS_OK else {
                throw self.currentError(during: "writing")
            }
        } while done == 0
    }

    /// Reads one reply (blocking, each read bounded by the I/O timeout).
    ///
    /// hiredis 0.14.1 has no limit on a reply's size (`reader->maxbuf` only trims an idle
    /// buffer), so this loop does the reading that `redisGetReply` would do, and ``ReplyAssembly``
    /// counts the bytes fed to the reader since the previous reply ended: more than `maxBytes`
    /// and the connection is given up.
    func readReply(maxBytes: Int) throws(RedisError) -> RedisValue {
        let reader = self.context.pointee.reader!
        while true {
            if let value = try self.assembly.next(from: reader, maxBytes: maxBytes) { return value }
            let before = reader.pointee.len
            guard redisBufferRead(self.context) == REDIS_OK else {
                throw self.currentError(during: "reading")
            }
            self.assembly.received(reader.pointee.len - before)
        }
    }

    /// Sends `commands` as one pipeline and reads their replies; for the connect handshake.
    func roundTrip(_ commands: [RedisCommand], maxBytes: Int) throws(RedisError) -> [RedisValue] {
        for command in commands { try self.append(command.bytes) }
        try self.flush()
        var replies: [RedisValue] = []
        for _ in commands { replies.append(try self.readReply(maxBytes: maxBytes)) }
        return replies
    }

    /// The socket, for the I/O thread's `poll(2)` while idle.
    var fileDescriptor: Int32 { self.context.pointee.fd }

    /// Why an idle connection's socket became readable: reads what is there (without blocking:
    /// poll said it is ready) and describes it.
    func idleConnectionError() -> RedisError {
        guard redisBufferRead(self.context) == REDIS_OK else {
            return self.currentError(during: "idle")
        }
        return RedisError(.protocolError, "the server sent data nobody asked for")
    }

    private func currentError(during activity: String) -> RedisError {
        // Read errno first: building the message below may call into libc.
        let savedErrno = errno
        let message = Self.errorString(self.context)
        switch self.context.pointee.err {
        case REDIS_ERR_IO where savedErrno == EAGAIN || savedErrno == EWOULDBLOCK:
            // The socket's SO_RCVTIMEO/SO_SNDTIMEO expired.
            return RedisError(.timeout, "no progress within the command timeout while \(activity)")
        case REDIS_ERR_IO:
            return RedisError(.connectionLost, "I/O error while \(activity): \(message)")
        case REDIS_ERR_EOF:
            return RedisError(.connectionLost, "the server closed the connection while \(activity)")
        case REDIS_ERR_PROTOCOL:
            return RedisError(.protocolError, "protocol error while \(activity): \(message)")
        default:
            return RedisError(.connectionLost, "error while \(activity): \(message)")
        }
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

extension timeval {
    fileprivate init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

/// Turns what hiredis's reader has buffered into replies, one at a time, and counts the bytes of
/// the reply being assembled: the one place that takes replies out of hiredis, for the
/// connections (``HiredisContext/readReply(maxBytes:)``) and for ``RESPReader``.
struct ReplyAssembly {
    /// Bytes fed to the reader that belong to the reply being assembled: the whole reply as it is
    /// on the wire, the elements hiredis has already turned into objects included. It can
    /// overshoot the limit by one read (16 KiB from a socket).
    private(set) var bytesTowardReply = 0

    /// `count` more bytes were fed to the reader.
    mutating func received(_ count: Int) {
        self.bytesTowardReply += count
    }

    /// The next complete reply in `reader`'s buffer, or nil when more bytes are needed. Throws
    /// ``RedisError/Code/replyTooLarge`` when the reply being assembled has passed `maxBytes`,
    /// and ``RedisError/Code/protocolError`` when the bytes are not RESP2.
    mutating func next(from reader: UnsafeMutablePointer<redisReader>, maxBytes: Int) throws(RedisError) -> RedisValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
            let message = withUnsafeBytes(of: reader.pointee.errstr) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            // hiredis's reader fails only on bytes that are not RESP2, or on memory.
            throw reader.pointee.err == REDIS_ERR_PROTOCOL
                ? RedisError(.protocolError, "protocol error while parsing a reply: \(message)")
                : RedisError(.connectionLost, "error while parsing a reply: \(message)")
        }
        guard let reply else {
            if self.bytesTowardReply > maxBytes {
                throw RedisError(
                    .replyTooLarge,
                    "a reply exceeded \(maxBytes) bytes (\(self.bytesTowardReply) read so far); closing the connection"
                )
            }
            return nil
        }
        defer { freeReplyObject(reply) }
        // Bytes already buffered after this reply belong to the next one.
        self.bytesTowardReply = reader.pointee.len - reader.pointee.pos
        return RedisValue(reply.assumingMemoryBound(to: redisReply.self))
    }
}

extension RedisValue {
    /// Copies a hiredis reply tree into Swift values. hiredis guarantees `str` is valid for `len`
    /// bytes and `element` for `elements` entries.
    init(_ reply: UnsafePointer<redisReply>) {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            self = .bulkString(Array(UnsafeRawBufferPointer(start: node.str, count: node.len)))
        case REDIS_REPLY_STATUS:
            self = .simpleString(String(decoding: UnsafeRawBufferPointer(start: node.str, count: node.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: UnsafeRawBufferPointer(start: node.str, count: node.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(node.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                elements.append(RedisValue(node.element[index]!))
            }
            self = .array(elements)
        default:  // REDIS_REPLY_NIL, and nothing else exists in RESP2
            self = .null
        }
    }
}
