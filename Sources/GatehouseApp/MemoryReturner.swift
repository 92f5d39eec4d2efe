import CMalloc
import ServiceLifecycle

/// Gives memory freed inside the process back to the system every 30 s (glibc's `malloc_trim`).
///
/// glibc keeps freed memory in its arenas for reuse; after a burst (a generation of the TOTP
/// cache dropped, a load of connections closed) a node would otherwise stay at its high-water
/// mark for good. Trimming walks the free lists once per interval: well under a millisecond on
/// a node's heap, nothing per request.
struct MemoryReturner: Service {
    var interval: Duration = .seconds(30)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                _ = malloc_trim(0)
            }
        }
    }
}
