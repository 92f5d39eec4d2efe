#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Dedicated OS threads for blocking C calls (hiredis I/O, SMTP conversations over libssl,
/// waiting for a child process). A blocked call on Swift's cooperative pool would starve every other task of a
/// thread (the pool has one per core), so such calls run only on threads started here.
package enum OSThread {
    /// `pthread_create` failed (the process is out of threads or memory).
    package struct StartFailure: Error, CustomStringConvertible {
        /// What `pthread_create` returned.
        package let status: Int32
        package var description: String { "pthread_create returned \(status)" }
    }

    private final class Start {
        let body: () -> Void
        init(body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new detached thread with SIGPIPE blocked.
    ///
    /// hiredis 0.14.1 and libssl write with write(2), not send(MSG_NOSIGNAL): a write to a
    /// connection the peer has closed raises SIGPIPE, which kills the process by default. SIGPIPE
    /// is sent to the writing thread, so blocking it here turns it into a plain EPIPE error without
    /// changing the process's signal disposition.
    package static func detached(_ body: @escaping @Sendable () -> Void) throws(StartFailure) {
        let start = Unmanaged.passRetained(Start(body: body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            &attributes,
            { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                var signals = sigset_t()
                sigemptyset(&signals)
                sigaddset(&signals, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &signals, nil)
                start.body()
                return nil
            },
            start.toOpaque()
        )
        if status != 0 {
            start.release()
            throw StartFailure(status: status)
        }
    }
}
