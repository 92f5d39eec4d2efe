import GatehouseSystem
import Synchronization

/// Runs one delivery on its own OS thread. An SMTP conversation blocks on the network for up to
/// its timeouts; on Swift's cooperative pool that would starve every other task of a thread
/// (the pool has one per core). Deliveries are rare and ``DeliveryGate`` bounds how many run at
/// once, so a thread each is cheaper to reason about than a pool.
enum DeliveryThread {
    /// Runs `body` on a new detached thread with SIGPIPE blocked (``OSThread/detached(_:)``:
    /// libssl writes with write(2), so a closed connection would otherwise raise SIGPIPE).
    static func run(_ body: @escaping @Sendable () -> Void) throws(MailError) {
        do throws(OSThread.StartFailure) {
            try OSThread.detached(body)
        } catch {
            throw MailError(.connectionFailed, "cannot start a mail delivery thread: \(error)")
        }
    }
}

/// An async semaphore bounding concurrent deliveries (and so delivery threads). Waiters queue in
/// order and wait without holding a thread; a cancelled waiter leaves the queue at once.
final class DeliveryGate: Sendable {
    private struct State {
        var available: Int
        var nextID = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    private let state: Mutex<State>

    init(limit: Int) {
        self.state = Mutex(State(available: max(1, limit)))
    }

    /// Takes a permit, waiting for one if all are taken. Throws ``MailError/Code/cancelled`` if
    /// the task is cancelled first.
    func acquire() async throws(MailError) {
        let id: Int? = self.state.withLock { state in
            if state.available > 0 {
                state.available -= 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let cancelled = self.state.withLock { state in
                    if Task.isCancelled { return true }
                    state.waiters.append((id, continuation))
                    return false
                }
                if cancelled { continuation.resume(returning: false) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0) }
            }
            waiter?.continuation.resume(returning: false)
        }
        guard granted else {
            throw MailError(.cancelled, "the delivery was cancelled while waiting for a free delivery slot")
        }
    }

    /// Returns a permit, handing it straight to the longest waiter if there is one.
    func release() {
        let waiter = self.state.withLock { state -> (id: Int, continuation: CheckedContinuation<Bool, Never>)? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: true)
    }
}
