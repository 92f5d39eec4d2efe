// `package`: pids (`pid_t`) are in the API.
#if canImport(Glibc)
package import Glibc
#elseif canImport(Musl)
package import Musl
#endif

/// Child processes: started with `posix_spawn` so that they can be stopped, and waited for on a
/// dedicated thread (a blocking `waitid`), never by polling on Swift's cooperative pool.
package enum ChildProcess {
    /// `posix_spawn` failed.
    package struct SpawnFailure: Error, CustomStringConvertible {
        /// The program.
        package let executable: String
        /// What `posix_spawn` returned (an errno value).
        package let errno: Int32
        package var description: String { "posix_spawn(\(executable)) failed: errno \(errno)" }
    }

    /// Starts `executable` with `arguments` and returns its pid; the caller waits for it
    /// (``terminate(_:grace:)``, or its own `waitpid`).
    ///
    /// The child gets descriptors 0, 1 and 2 only, an empty signal mask and default handlers for
    /// the signals that stop or notify it: Swift's threads block most signals and a child
    /// inherits the mask, so without this a child would ignore SIGTERM.
    ///
    /// - Parameters:
    ///   - environment: the child's environment; nil passes this process's on.
    ///   - output: a file that stdout and stderr are appended to (created 0600), stdin then
    ///     `/dev/null`; nil leaves all three as this process's.
    package static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: String? = nil
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
        if let output {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
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

    /// Sends SIGTERM, waits up to `grace` for the child to exit, then SIGKILLs it; reaps it and
    /// returns its wait status.
    package static func terminate(_ pid: pid_t, grace: Duration) async -> Int32 {
        kill(pid, SIGTERM)
        return await wait(pid, limit: grace)
    }

    /// Waits for the child to exit by itself, SIGKILLs it if it still runs after `limit`; reaps
    /// it and returns its wait status. For a child that is expected to finish (a client run to
    /// completion), bounded.
    package static func wait(_ pid: pid_t, limit: Duration) async -> Int32 {
        // Detached, so that the caller's cancellation neither cuts the limit short nor skips the
        // SIGKILL; cancelled below once the child has exited.
        let killer = Task.detached {
            try? await Task.sleep(for: limit)
            if !Task.isCancelled { kill(pid, SIGKILL) }
        }
        await exited(pid)
        killer.cancel()
        // The child is reaped only after the killer has finished, so a late SIGKILL reaches the
        // zombie and never another process that reused the pid.
        await killer.value
        return reap(pid)
    }

    /// Returns once `pid` has exited (or is not our child), leaving it unreaped: a zombie keeps
    /// its pid, so signals sent meanwhile cannot reach another process.
    private static func exited(_ pid: pid_t) async {
        // A blocking waitid on a dedicated thread: real waiting, no polling.
        let waiting: Bool = await withCheckedContinuation { continuation in
            do throws(OSThread.StartFailure) {
                try OSThread.detached {
                    var info = siginfo_t()
                    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
                    continuation.resume(returning: true)
                }
            } catch {
                continuation.resume(returning: false)
            }
        }
        guard !waiting else { return }
        // No thread to spare: poll instead (Linux zeroes `info` when nothing has exited yet). The
        // pause runs in a detached task so that a cancelled caller still pauses between polls.
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == -1, errno != EINTR { return }
            if info.si_signo != 0 { return }
            _ = await Task.detached { try? await Task.sleep(for: .milliseconds(50)) }.value
        }
    }

    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        return status
    }
}
