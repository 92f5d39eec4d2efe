package import DequeModule

/// The state of one connection, as a value with no I/O: the callers' queue, the commands in
/// flight and the link's phase. ``RedisConnection`` keeps it in a `Mutex`; both the callers'
/// tasks and the connection's I/O thread change it, and each method returns what the caller of
/// the method must do once the lock is released (resume a continuation, wake the thread, …).
///
/// Generic over `Waiter` (a continuation in production) so it can be unit-tested without
/// threads or sockets. Times are monotonic nanoseconds, passed in.
package struct ConnectionStateMachine<Waiter> {
    package struct Queued {
        package var id: UInt64
        package var bytes: [UInt8]
        package var replyCount: Int
        package var waiter: Waiter
        package var enqueuedAt: UInt64
    }

    package struct InFlight {
        package var id: UInt64
        package var replyCount: Int
        /// `nil` once the caller was cancelled: its replies are read and dropped.
        package var waiter: Waiter?
        package var replies: [RedisValue] = []
    }

    package enum Link: Equatable {
        /// Not connected; the I/O thread connects at `retryAt` (0 means now).
        case disconnected(retryAt: UInt64)
        /// Connected and ready for batches.
        case connected
    }

    package private(set) var link: Link = .disconnected(retryAt: 0)
    package private(set) var queued: Deque<Queued> = []
    package private(set) var inFlight: Deque<InFlight> = []
    package private(set) var closing = false
    /// The last connect or I/O error, reported to callers whose command could not be sent.
    package private(set) var lastError: RedisError?
    private var ioThreadParked = false
    private let queueTimeout: UInt64

    package init(queueTimeoutNanoseconds: UInt64) {
        self.queueTimeout = queueTimeoutNanoseconds
    }

    package var isConnected: Bool { self.link == .connected }

    // MARK: Callers

    package enum EnqueueAction {
        case none
        case wakeIOThread
        case fail(Waiter, RedisError)
    }

    package mutating func enqueue(
        id: UInt64,
        bytes: [UInt8],
        replyCount: Int,
        waiter: Waiter,
        now: UInt64
    ) -> EnqueueAction {
        if self.closing {
            return .fail(waiter, RedisError(.clientClosed, "the Redis client has been shut down"))
        }
        self.queued.append(Queued(id: id, bytes: bytes, replyCount: replyCount, waiter: waiter, enqueuedAt: now))
        if self.ioThreadParked {
            self.ioThreadParked = false
            return .wakeIOThread
        }
        return .none
    }

    /// Removes a cancelled caller. Returns its waiter to resume with a cancellation error, or
    /// `nil` if it has already been answered. A command already written stays in flight without
    /// a waiter so its reply is read and dropped, never handed to the next caller.
    package mutating func cancel(id: UInt64) -> Waiter? {
        if let index = self.queued.firstIndex(where: { $0.id == id }) {
            return self.queued.remove(at: index).waiter
        }
        if let index = self.inFlight.firstIndex(where: { $0.id == id }) {
            let waiter = self.inFlight[index].waiter
            self.inFlight[index].waiter = nil
            return waiter
        }
        return nil
    }

    package enum CloseAction {
        case none
        case wakeIOThread
    }

    /// Stops accepting commands. Queued ones still go out if the link is up; the I/O thread
    /// exits once nothing is queued or in flight.
    package mutating func close() -> CloseAction {
        guard !self.closing else { return .none }
        self.closing = true
        if self.ioThreadParked {
            self.ioThreadParked = false
            return .wakeIOThread
        }
        return .none
    }

    // MARK: I/O thread

    package enum NextStep {
        /// Connect now.
        case connect
        /// Write these commands and read `replyCount` replies.
        case write(commands: [[UInt8]], replyCount: Int)
        /// Nothing to do: sleep until woken, or until the deadline if there is one.
        case park(until: UInt64?)
        /// Closed and drained: free the context and end the thread.
        case exit
    }

    /// What the I/O thread does next, plus the callers it must fail first (queued commands
    /// that waited for a connection past their deadline, or everything once closed while
    /// disconnected).
    package mutating func nextStep(
        now: UInt64,
        maxBatchCommands: Int,
        maxBatchBytes: Int
    ) -> (step: NextStep, failed: [(Waiter, RedisError)]) {
        switch self.link {
        case .connected:
            if self.queued.isEmpty {
                if self.closing { return (.exit, []) }
                self.ioThreadParked = true
                return (.park(until: nil), [])
            }
            var commands: [[UInt8]] = []
            commands.reserveCapacity(min(self.queued.count, maxBatchCommands))
            var bytes = 0
            var replies = 0
            while let first = self.queued.first,
                commands.isEmpty || (commands.count < maxBatchCommands && bytes + first.bytes.count <= maxBatchBytes)
            {
                let request = self.queued.removeFirst()
                bytes += request.bytes.count
                replies += request.replyCount
                commands.append(request.bytes)
                self.inFlight.append(InFlight(id: request.id, replyCount: request.replyCount, waiter: request.waiter))
            }
            return (.write(commands: commands, replyCount: replies), [])

        case .disconnected(let retryAt):
            var failed: [(Waiter, RedisError)] = []
            if self.closing {
                while let request = self.queued.popFirst() {
                    failed.append((request.waiter, self.unavailableError(closing: true)))
                }
                return (.exit, failed)
            }
            while let first = self.queued.first, now >= first.enqueuedAt &+ self.queueTimeout {
                failed.append((self.queued.removeFirst().waiter, self.unavailableError(closing: false)))
            }
            if now >= retryAt {
                return (.connect, failed)
            }
            var wakeAt = retryAt
            if let first = self.queued.first {
                wakeAt = min(wakeAt, first.enqueuedAt &+ self.queueTimeout)
            }
            self.ioThreadParked = true
            return (.park(until: wakeAt), failed)
        }
    }

    /// The I/O thread woke up from a park (deadline or spurious wake).
    package mutating func unparked() {
        self.ioThreadParked = false
    }

    package mutating func connected() {
        precondition(self.inFlight.isEmpty, "commands in flight on a new connection")
        self.link = .connected
        self.lastError = nil
    }

    package mutating func connectFailed(_ error: RedisError, retryAt: UInt64) {
        self.link = .disconnected(retryAt: retryAt)
        self.lastError = error
    }

    /// One reply arrived for the oldest command in flight. Returns the caller to resume, with
    /// its reply (an array of replies for a multi-command request), or `nil` when the caller
    /// was cancelled or more replies of its request are still to come.
    package mutating func replyReceived(_ value: RedisValue) -> (Waiter, RedisValue)? {
        precondition(!self.inFlight.isEmpty, "a reply with no command in flight")
        let index = self.inFlight.startIndex
        if self.inFlight[index].replyCount == 1 {
            let request = self.inFlight.removeFirst()
            return request.waiter.map { ($0, value) }
        }
        self.inFlight[index].replies.append(value)
        guard self.inFlight[index].replies.count == self.inFlight[index].replyCount else { return nil }
        let request = self.inFlight.removeFirst()
        return request.waiter.map { ($0, .array(request.replies)) }
    }

    /// The connection failed. Every command in flight fails (it was sent, so its outcome is
    /// unknown); the first one returned is the oldest, whose reply was being read when the
    /// failure happened. Queued commands wait for the next connection, bounded by their deadline.
    /// The next connect attempt is at `retryAt`.
    package mutating func connectionLost(_ error: RedisError, retryAt: UInt64) -> [(waiter: Waiter, wasOldest: Bool)] {
        self.link = .disconnected(retryAt: retryAt)
        self.lastError = error
        var failed: [(waiter: Waiter, wasOldest: Bool)] = []
        var isOldest = true
        while let request = self.inFlight.popFirst() {
            if let waiter = request.waiter { failed.append((waiter, isOldest)) }
            isOldest = false
        }
        return failed
    }

    private func unavailableError(closing: Bool) -> RedisError {
        if closing {
            return RedisError(.clientClosed, "the Redis client was shut down before the command could be sent")
        }
        let reason = self.lastError.map { ": \($0.message)" } ?? ""
        return RedisError(
            .connectionUnavailable,
            "no Redis connection within the command timeout; the command was not sent\(reason)",
            underlying: self.lastError
        )
    }
}
