import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Set from a task's cancellation handler and read by the delivery thread between waits, so a
/// cancelled delivery stops within one poll slice instead of at its next timeout.
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func cancel() { self.value.store(true, ordering: .relaxed) }
    var isCancelled: Bool { self.value.load(ordering: .relaxed) }
}

/// A non-blocking TCP socket whose every wait is a `poll(2)` bounded by a deadline. Used only on a
/// delivery thread: the waits block that thread, never Swift's cooperative pool.
final class TCPSocket {
    let descriptor: Int32
    private let cancellation: CancellationFlag

    private init(descriptor: Int32, cancellation: CancellationFlag) {
        self.descriptor = descriptor
        self.cancellation = cancellation
    }

    deinit { close(self.descriptor) }

    /// Resolves `host` and connects to the first address that answers before `deadline`.
    ///
    /// Name resolution uses `getaddrinfo`, which has its own resolver timeouts and cannot be
    /// bounded here; the server is normally a literal address or a local name.
    static func connect(
        host: String, port: Int, deadline: ContinuousClock.Instant, cancellation: CancellationFlag
    ) throws(MailError) -> TCPSocket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            let reason = status == 0 ? "no address" : String(cString: gai_strerror(status))
            throw MailError(.connectionFailed, "cannot resolve the SMTP host \(host): \(reason)")
        }
        defer { freeaddrinfo(list) }
        var lastError = MailError(.connectionFailed, "no address for \(host)")
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let descriptor = socket(
                current.pointee.ai_family,
                current.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                current.pointee.ai_protocol
            )
            guard descriptor >= 0 else {
                lastError = MailError(.connectionFailed, "socket() failed: \(Self.errorText(errno))")
                continue
            }
            let socket = TCPSocket(descriptor: descriptor, cancellation: cancellation)
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(descriptor, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 {
                return socket
            }
            guard errno == EINPROGRESS else {
                lastError = MailError(.connectionFailed, "cannot connect to \(host):\(port): \(Self.errorText(errno))")
                continue
            }
            do {
                try socket.wait(for: Int16(POLLOUT), until: deadline, step: "connecting to \(host):\(port)")
            } catch {
                if error.code == .timeout || error.code == .cancelled { throw error }
                lastError = error
                continue
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &socketError, &length)
            if socketError == 0 { return socket }
            lastError = MailError(.connectionFailed, "cannot connect to \(host):\(port): \(Self.errorText(socketError))")
        }
        throw lastError
    }

    /// Waits until the socket is ready for `events` (POLLIN/POLLOUT), the deadline passes
    /// (``MailError/Code/timeout``) or the delivery is cancelled. Polls in slices of at most
    /// 100 ms so cancellation is noticed promptly.
    func wait(for events: Int16, until deadline: ContinuousClock.Instant, step: String) throws(MailError) {
        while true {
            if self.cancellation.isCancelled {
                throw MailError(.cancelled, "the delivery was cancelled while \(step)")
            }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw MailError(.timeout, "timed out \(step)")
            }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(clamping: min(100, max(1, seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000)))
            var descriptor = pollfd(fd: self.descriptor, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }  // readable, writable, or an error the next call will report
            if ready < 0 && errno != EINTR {
                throw MailError(.connectionFailed, "poll() failed \(step): \(Self.errorText(errno))")
            }
        }
    }

    /// Reads what is available (at least one byte), waiting until `deadline`.
    func read(into buffer: inout [UInt8], until deadline: ContinuousClock.Instant, step: String) throws(MailError) -> Int {
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 { return count }
            if count == 0 { throw MailError(.connectionFailed, "the server closed the connection while \(step)") }
            switch errno {
            case EAGAIN, EWOULDBLOCK: try self.wait(for: Int16(POLLIN), until: deadline, step: step)
            case EINTR: continue
            case let code: throw MailError(.connectionFailed, "reading failed while \(step): \(Self.errorText(code))")
            }
        }
    }

    /// Writes all of `bytes`, waiting until `deadline`. MSG_NOSIGNAL: a closed peer is an error,
    /// not a SIGPIPE.
    func write(_ bytes: [UInt8], until deadline: ContinuousClock.Instant, step: String) throws(MailError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(self.descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                offset += count
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK: try self.wait(for: Int16(POLLOUT), until: deadline, step: step)
            case EINTR: continue
            case let code: throw MailError(.connectionFailed, "writing failed while \(step): \(Self.errorText(code))")
            }
        }
    }

    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
