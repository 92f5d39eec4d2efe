#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Parks an I/O thread until a caller has work for it, a deadline passes, or (while connected
/// and idle) the socket becomes readable.
///
/// A self-pipe rather than a semaphore so the parked thread can `poll(2)` the idle connection at
/// the same time: nothing is in flight then, so a readable socket means the server closed it (or
/// broke the protocol), and the connection is replaced at once instead of at the next command.
/// Callers write to the pipe only when the state machine says the thread is parked, so a busy
/// thread costs them no system call.
final class Wakeup: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            fatalError("cannot create the Redis I/O thread's wake-up pipe: errno \(errno)")
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        self.readEnd = ends[0]
        self.writeEnd = ends[1]
    }

    deinit {
        close(self.readEnd)
        close(self.writeEnd)
    }

    /// Wakes the parked thread (a full pipe already means "wake up", so EAGAIN is fine).
    func signal() {
        var byte: UInt8 = 1
        _ = write(self.writeEnd, &byte, 1)
    }

    /// Waits until signalled, `socket` is readable or closed, or `timeoutNanoseconds` has passed
    /// (`nil`: no limit). Returns whether the socket needs attention.
    func wait(socket: Int32?, timeoutNanoseconds: UInt64?) -> Bool {
        var descriptors = [pollfd(fd: self.readEnd, events: Int16(POLLIN), revents: 0)]
        if let socket {
            descriptors.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0))
        }
        let timeout: Int32 = timeoutNanoseconds.map { Int32(clamping: ($0 + 999_999) / 1_000_000) } ?? -1
        // EINTR just returns early; the caller's loop re-evaluates its state.
        _ = poll(&descriptors, nfds_t(descriptors.count), timeout)
        if descriptors[0].revents != 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while read(self.readEnd, &drain, drain.count) > 0 {}
        }
        return descriptors.count > 1 && descriptors[1].revents != 0
    }
}
