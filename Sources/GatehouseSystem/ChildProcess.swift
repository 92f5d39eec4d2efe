// `package`: pids (`pid_t`) are in the API.
#if canImport(Glibc)
package import Glibc
#elseif canImport(Musl)
package import Musl
#endif

/// Child processes, started with `posix_spawn` so that they can be stopped.
package enum ChildProcess {
    /// `posix_spawn` failed.
    package struct SpawnFailure: Error, CustomStringConvertible {
        /// The program.
        package let executable: String
        /// What `posix_spawn` returned (an errno value).
        package let errno: Int32
        package var description: String { "posix_spawn(\(executable)) failed: errno \(errno)" }
    }

    /// Starts `executable` with `arguments` and returns its pid; the caller waits for it.
    ///
    /// The child gets an empty signal mask and default handlers for the signals that stop or
    /// notify it: Swift's threads block most signals and a child inherits the mask, so without
    /// this a child would ignore SIGTERM.
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
}
