import Synchronization

/// "This thread has ended", for async callers to wait on: the I/O thread of a connection and the
/// map thread of a cluster router each signal theirs once, as their last act.
final class ThreadExit: Sendable {
    private let state = Mutex<(exited: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Marks the thread ended and resumes everyone waiting (once; later calls change nothing).
    func signal() {
        let waiters = self.state.withLock { state in
            state.exited = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once ``signal()`` has been called (at once if it has).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.state.withLock { state in
                if state.exited { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
