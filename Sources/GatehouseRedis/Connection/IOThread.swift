import GatehouseSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts the OS threads that own hiredis contexts. Blocking hiredis calls run only here, never
/// on Swift's cooperative thread pool.
enum IOThread {
    /// Runs `body` on a new detached thread with SIGPIPE blocked (``OSThread/detached(_:)``:
    /// hiredis 0.14.1 writes with write(2), so a closed connection would otherwise raise SIGPIPE).
    /// `name` is for the failure message only: Glibc's module does not expose
    /// `pthread_setname_np` without `_GNU_SOURCE`, so the thread itself is unnamed.
    static func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        do throws(OSThread.StartFailure) {
            try OSThread.detached(body)
        } catch {
            fatalError("cannot start a Redis I/O thread \(name): \(error)")
        }
    }
}

