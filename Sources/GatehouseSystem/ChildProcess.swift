// `package`: pids (`pid_t`) are in the API.
#if canImport(Glibc)
package import Glibc
#elseif canImport(Musl)
package import Musl
#endif
import Synchronization

/// Child processes: started with `posix_spawn` so that they can be stopped, and waited for on a
/// dedicated thread (a blocking `waitid`), never by polling on Swift's cooperative pool.
///
/// Every wait for a child's exit goes through here. Waiting (``exited(_:within:)``) leaves the
/// child unreaped: a zombie keeps its pid, so a signal sent meanwhile cannot reach another
/// process. The caller reaps each child exactly once, through ``waitForExit(_:timeout:)``,
/// ``terminate(_:grace:)``, ``kill(_:)``, ``killBlocking(_:)`` or ``reapIfExited(_:)``.
package enum ChildProcess {
    /// `posix_spawn` failed.
    package struct SpawnFailure: Error, CustomStringConvertible {
        /// The program.
        package let executable: String
        /// What `posix_spawn` returned (an errno value).
        package let errno: Int32
        package var description: String { "posix_spawn(\(executable)) failed: errno \(errno)" }
    }

    /// Where a child's stdin, stdout and stderr go.
    package enum Output: Sendable {
        /// This process's own three.
        case inherited
        /// stdout and stderr appended to this file (created 0600); stdin `/dev/null`.
        case file(String)
        /// These open descriptors of this process, duplicated onto 0, 1 and 2 in the child (open
        /// them close-on-exec, so that no other child inherits them).
        case descriptors(input: Int32, output: Int32, error: Int32)
    }

    /// Starts `executable` with `arguments` and returns its pid; the caller waits for it and
    /// reaps it through this type.
    ///
    /// The child gets descriptors 0, 1 and 2 only, an empty signal mask and default handlers for
    /// the signals that stop or notify it: Swift's threads block most signals and a child
    /// inherits the mask, so without this a child would ignore SIGTERM.
    ///
    /// - Parameters:
    ///   - environment: the child's environment; nil passes this process's on.
    ///   - output: where its standard streams go.
    package static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: Output = .inherited
    ) throws(SpawnFailure) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch output {
        case .inherited:
            break
        case .file(let path):
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        case .descriptors(let input, let output, let error):
            posix_spawn_file_actions_adddup2(&actions, input, 0)
            posix_spawn_file_actions_adddup2(&actions, output, 1)
            posix_spawn_file_actions_adddup2(&actions, error, 2)
        }
        // Nothing else of this process's: a descriptor opened without close-on-exec (a listening
        // socket, a connection) would otherwise live on in the child and every process it
        // starts, accepting connections for a server that has stopped.
        _ = Self.addCloseFrom?(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            argv.forEach { free($0) }
            envp?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = if let envp {
            posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        } else {
            posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        }
        guard rc == 0 else { throw SpawnFailure(executable: executable, errno: rc) }
        return pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later, Debian 12 has 2.36),
    /// looked up at run time: its header declares it only under `_GNU_SOURCE`, which Swift's Glibc
    /// module does not define.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
    }()

    // MARK: Waiting and reaping

    /// Sends SIGTERM, waits up to `grace` for the child to exit, then SIGKILLs it; reaps it and
    /// returns its wait status.
    ///
    /// The caller's cancellation neither cuts the grace period short nor skips the SIGKILL. The
    /// SIGKILL goes to the unreaped child (running or a zombie), never to a process that reused
    /// its pid.
    package static func terminate(_ pid: pid_t, grace: Duration) async -> Int32 {
        send(SIGTERM, to: pid)
        return await wait(pid, limit: grace)
    }

    /// Waits for the child to exit by itself, SIGKILLs it if it still runs after `limit`; reaps
    /// it and returns its wait status. For a child that is expected to finish (a client run to
    /// completion), bounded.
    package static func wait(_ pid: pid_t, limit: Duration) async -> Int32 {
        if await !exited(pid, within: limit) {
            send(SIGKILL, to: pid)
            _ = await exited(pid, within: nil)
        }
        return reap(pid)
    }

    /// Sends SIGKILL, waits for the exit (a killed process exits at once), reaps the child and
    /// returns its wait status.
    package static func kill(_ pid: pid_t) async -> Int32 {
        send(SIGKILL, to: pid)
        _ = await exited(pid, within: nil)
        return reap(pid)
    }

    /// ``kill(_:)`` for synchronous code (a `deinit`, a `defer`): SIGKILL, then a blocking
    /// `waitpid` on the calling thread, which a killed process ends at once.
    @discardableResult
    package static func killBlocking(_ pid: pid_t) -> Int32 {
        send(SIGKILL, to: pid)
        return reap(pid)
    }

    /// Waits up to `timeout` for the child to exit; then reaps it and returns its wait status.
    /// Returns nil if it still runs at the deadline: it is then neither signalled nor reaped.
    package static func waitForExit(_ pid: pid_t, timeout: Duration) async -> Int32? {
        guard await exited(pid, within: timeout) else { return nil }
        return reap(pid)
    }

    /// ``waitForExit(_:timeout:)`` for synchronous code: the same dedicated thread waits in
    /// `waitid`, and the calling thread blocks on a condition variable until it reports the exit
    /// or the deadline passes.
    package static func waitForExitBlocking(_ pid: pid_t, timeout: Duration) -> Int32? {
        guard exitedBlocking(pid, within: timeout) else { return nil }
        return reap(pid)
    }

    /// Returns once the child has exited (or is not a child of this process), or once `timeout`
    /// has passed (nil: no limit); whether it has exited. Leaves it unreaped.
    ///
    /// A thread of its own blocks in `waitid(WNOWAIT)` until the exit; a timer in a detached task
    /// ends the wait at the deadline, so the caller's cancellation does not cut it short. After a
    /// timeout the thread stays blocked until the child exits or is reaped.
    package static func exited(_ pid: pid_t, within timeout: Duration?) async -> Bool {
        let outcome = Outcome()
        guard watch(pid, onExit: { outcome.resolve(true) }) else {
            return await polled(pid, until: timeout.map { ContinuousClock.now + $0 })
        }
        let timer = timeout.map { timeout in
            Task.detached {
                try? await Task.sleep(for: timeout)
                outcome.resolve(false)
            }
        }
        let exited = await outcome.value
        timer?.cancel()
        return exited
    }

    /// Reaps the child if it has exited and returns its wait status; nil while it runs. Never
    /// blocks. A pid that is not (or no longer) a child of this process counts as exited, with
    /// status -1.
    package static func reapIfExited(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { return status }
            if rc == 0 { return nil }
            if errno != EINTR { return -1 }
        }
    }

    // MARK: Internals

    /// Starts a thread that blocks in `waitid(WNOWAIT)` until the child exits (or is not a child
    /// of this process), then calls `onExit`; false if no thread could be started.
    private static func watch(_ pid: pid_t, onExit: @escaping @Sendable () -> Void) -> Bool {
        do throws(OSThread.StartFailure) {
            try OSThread.detached {
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
                onExit()
            }
            return true
        } catch {
            return false
        }
    }

    private static func exitedBlocking(_ pid: pid_t, within timeout: Duration) -> Bool {
        let latch = Latch()
        guard watch(pid, onExit: { latch.open() }) else {
            // No thread to spare: check every 50 ms until the deadline.
            let deadline = ContinuousClock.now + timeout
            while !hasExited(pid) {
                guard ContinuousClock.now < deadline else { return false }
                usleep(50_000)
            }
            return true
        }
        return latch.wait(for: timeout)
    }

    /// The fallback when no thread can be started: checks every 50 ms until the deadline (nil:
    /// none). The pause runs in a detached task so that a cancelled caller still pauses between
    /// checks.
    private static func polled(_ pid: pid_t, until deadline: ContinuousClock.Instant?) async -> Bool {
        while !hasExited(pid) {
            if let deadline, ContinuousClock.now >= deadline { return false }
            _ = await Task.detached { try? await Task.sleep(for: .milliseconds(50)) }.value
        }
        return true
    }

    /// Whether the child has exited (or is not a child of this process), without reaping it or
    /// blocking.
    private static func hasExited(_ pid: pid_t) -> Bool {
        while true {
            // Linux zeroes `info` when nothing has exited yet.
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == -1 {
                if errno == EINTR { continue }
                return true
            }
            return info.si_signo != 0
        }
    }

    /// Reaps an exited child (blocking until it exits) and returns its wait status, -1 if `pid`
    /// is not a child of this process.
    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return -1 }
        }
        return status
    }

    /// A Bool settled once (the first `resolve` wins) and awaited by any number of tasks.
    private final class Outcome: Sendable {
        private enum State {
            case pending([CheckedContinuation<Bool, Never>])
            case resolved(Bool)
        }

        private let state = Mutex(State.pending([]))

        func resolve(_ value: Bool) {
            let waiting: [CheckedContinuation<Bool, Never>] = self.state.withLock { state in
                guard case .pending(let waiting) = state else { return [] }
                state = .resolved(value)
                return waiting
            }
            for continuation in waiting { continuation.resume(returning: value) }
        }

        var value: Bool {
            get async {
                await withCheckedContinuation { continuation in
                    let resolved: Bool? = self.state.withLock { state in
                        switch state {
                        case .pending(let waiting):
                            state = .pending(waiting + [continuation])
                            return nil
                        case .resolved(let value):
                            return value
                        }
                    }
                    if let resolved { continuation.resume(returning: resolved) }
                }
            }
        }
    }

    /// A one-way gate that threads block on (a condition variable on the monotonic clock).
    private final class Latch: @unchecked Sendable {
        // @unchecked: `isOpen` is read and written only with `mutex` held.
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var isOpen = false

        init() {
            pthread_mutex_init(self.mutex, nil)
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(self.condition, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(self.condition)
            pthread_mutex_destroy(self.mutex)
            self.condition.deallocate()
            self.mutex.deallocate()
        }

        func open() {
            pthread_mutex_lock(self.mutex)
            self.isOpen = true
            pthread_cond_broadcast(self.condition)
            pthread_mutex_unlock(self.mutex)
        }

        /// Blocks until the latch opens or `timeout` passes; whether it opened.
        func wait(for timeout: Duration) -> Bool {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let (seconds, attoseconds) = timeout.components
            var nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
            deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
            nanoseconds %= 1_000_000_000
            deadline.tv_nsec = nanoseconds
            pthread_mutex_lock(self.mutex)
            defer { pthread_mutex_unlock(self.mutex) }
            while !self.isOpen {
                if pthread_cond_timedwait(self.condition, self.mutex, &deadline) == ETIMEDOUT { return self.isOpen }
            }
            return true
        }
    }
}

/// `kill(2)` (named apart from ``ChildProcess/kill(_:)``).
private func send(_ signal: Int32, to pid: pid_t) {
    _ = kill(pid, signal)
}