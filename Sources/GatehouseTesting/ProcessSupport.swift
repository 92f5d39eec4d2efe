public import Foundation
import GatehouseSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// TCP on 127.0.0.1 for test helpers: a port to give a server, and a blocking connected socket.
/// (This file also holds the child-process holder the server wrappers share, and ``Program``.)
public enum Loopback {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A port that was free a moment ago (bound to port 0, read back, closed).
    public static func freePort() throws(Failure) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = Self.address(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw Failure(description: "bind(127.0.0.1:0) failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Failure(description: "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A blocking socket connected to 127.0.0.1:`port` whose reads (and writes, if
    /// `sendTimeout`) give up after the timeouts; nil if it cannot connect. The caller closes it.
    public static func connect(port: Int, receiveTimeout: Duration, sendTimeout: Duration? = nil) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        func interval(_ duration: Duration) -> timeval {
            let (seconds, attoseconds) = duration.components
            return timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        }
        var receive = interval(receiveTimeout)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive, socklen_t(MemoryLayout<timeval>.size))
        if let sendTimeout {
            var send = interval(sendTimeout)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = Self.address(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    private static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

/// The child process of one test server (redis-server, a sentinel, the SMTP server), held so that
/// it is reaped exactly once and no signal reaches another process that reused its pid: the pid is
/// reaped and signalled only under one lock, and forgotten once reaped. Every wait for the exit
/// goes through ``ChildProcess`` (a dedicated thread blocked in `waitid`, no polling).
final class OwnedChild: Sendable {
    private struct State {
        var pid: pid_t?
        var status: Int32?
    }

    private let state: Mutex<State>

    /// Holds `pid` (nil: no child yet, see ``adopt(_:)``).
    init(_ pid: pid_t? = nil) {
        self.state = Mutex(State(pid: pid))
    }

    /// The backstop for an owner that goes away without stopping its child (a start that failed
    /// or was cancelled half-way): SIGKILL and reap.
    deinit {
        self.killBlocking()
    }

    /// Holds a newly started child (the previous one, if any, has been reaped).
    func adopt(_ pid: pid_t) {
        self.state.withLock { $0 = State(pid: pid) }
    }

    /// The child's pid while it runs. Once it has exited it is reaped and forgotten, so a dead
    /// server is never mistaken for a running one.
    var pid: pid_t? {
        self.state.withLock { Self.reapIfExited(&$0) }
    }

    /// The wait status of the child once it has been reaped (-1 if it was reaped elsewhere).
    var exitStatus: Int32? {
        self.state.withLock { $0.status }
    }

    /// Sends `signal` if the child runs; whether it was sent.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        self.state.withLock { state in
            guard let pid = Self.reapIfExited(&state) else { return false }
            return Glibc.kill(pid, signal) == 0
        }
    }

    /// Waits up to `timeout` for the child to exit (``ChildProcess/exited(_:within:)``) and reaps
    /// it; whether it has exited.
    func waitForExit(timeout: Duration) async -> Bool {
        guard let pid = self.pid else { return true }
        guard await ChildProcess.exited(pid, within: timeout) else { return false }
        return self.pid != pid
    }

    /// SIGCONT (in case it is paused) and SIGTERM; SIGKILL if it has not exited within `grace`,
    /// then waits up to `killTimeout` more. Whether it has exited.
    @discardableResult
    func stop(grace: Duration, killTimeout: Duration = .seconds(10)) async -> Bool {
        guard self.signal(SIGCONT) else { return true }
        self.signal(SIGTERM)
        if await self.waitForExit(timeout: grace) { return true }
        self.signal(SIGKILL)
        return await self.waitForExit(timeout: killTimeout)
    }

    /// SIGKILL, then waits up to `timeout` for the exit. Whether it has exited.
    @discardableResult
    func kill(timeout: Duration = .seconds(10)) async -> Bool {
        guard self.signal(SIGKILL) else { return true }
        return await self.waitForExit(timeout: timeout)
    }

    /// SIGKILL and reap, blocking the calling thread (``ChildProcess/killBlocking(_:)``): for
    /// `deinit` and other synchronous teardown.
    func killBlocking() {
        self.state.withLock { state in
            guard let pid = state.pid else { return }
            state.status = ChildProcess.killBlocking(pid)
            state.pid = nil
        }
    }

    private static func reapIfExited(_ state: inout State) -> pid_t? {
        guard let pid = state.pid else { return nil }
        guard let status = ChildProcess.reapIfExited(pid) else { return pid }
        state.status = status
        state.pid = nil
        return nil
    }
}

/// A program run to completion with its output captured: the command-line tests and external
/// peers (zbarimg, python3, bash scripts). Started with ``ChildProcess/spawn(_:_:environment:output:)``
/// and waited for with ``ChildProcess/waitForExit(_:timeout:)``; stdin, stdout and stderr are
/// files in a temporary directory, so no pipe can fill up and no reader thread is needed.
public enum Program {
    /// How a run ended.
    public struct Result: Sendable {
        /// The exit code, or the number of the signal that ended the program.
        public var status: Int32
        /// What it wrote to stdout (with ``run(_:_:environment:input:mergingErrors:timeout:)``'s
        /// `mergingErrors`, stderr too).
        public var output: Data
        /// What it wrote to stderr.
        public var errors: Data
        /// Whether it ran past the timeout and was stopped.
        public var timedOut: Bool

        /// ``output`` as UTF-8.
        public var stdout: String { String(decoding: self.output, as: UTF8.self) }
        /// ``errors`` as UTF-8.
        public var stderr: String { String(decoding: self.errors, as: UTF8.self) }
    }

    /// A failure to run the program at all.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `executable` with `arguments` and waits for it to exit, at most `timeout`; past that
    /// it gets SIGTERM and, 5 s later, SIGKILL (``ChildProcess/terminate(_:grace:)``).
    ///
    /// - Parameters:
    ///   - environment: the program's environment; nil passes this process's on.
    ///   - input: its stdin (empty if nil).
    ///   - mergingErrors: write stderr into ``Result/output`` too, interleaved as written.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: Data? = nil,
        mergingErrors: Bool = false,
        timeout: Duration = .seconds(60)
    ) async throws -> Result {
        var template = Array("/tmp/gatehouse-program-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw Failure(description: "cannot create a temporary directory: errno \(errno)")
        }
        let directory = String(cString: created)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inputPath = directory + "/stdin", outputPath = directory + "/stdout", errorPath = directory + "/stderr"
        guard FileManager.default.createFile(atPath: inputPath, contents: input ?? Data()) else {
            throw Failure(description: "cannot write \(inputPath)")
        }
        // Close-on-exec: only this child gets them (as its 0, 1 and 2), no other child started
        // meanwhile.
        let stdin = open(inputPath, O_RDONLY | O_CLOEXEC)
        let stdout = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let stderr = mergingErrors ? stdout : open(errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer {
            for fd in Set([stdin, stdout, stderr]) where fd >= 0 { close(fd) }
        }
        guard stdin >= 0, stdout >= 0, stderr >= 0 else {
            throw Failure(description: "cannot open the files for \(executable)'s output in \(directory): errno \(errno)")
        }
        let pid: pid_t
        do throws(ChildProcess.SpawnFailure) {
            pid = try ChildProcess.spawn(
                executable, arguments, environment: environment, output: .descriptors(input: stdin, output: stdout, error: stderr)
            )
        } catch {
            throw Failure(description: error.description)
        }
        var timedOut = false
        let status: Int32
        if let exited = await ChildProcess.waitForExit(pid, timeout: timeout) {
            status = exited
        } else {
            timedOut = true
            status = await ChildProcess.terminate(pid, grace: .seconds(5))
        }
        return Result(
            status: Self.code(status),
            output: FileManager.default.contents(atPath: outputPath) ?? Data(),
            errors: mergingErrors ? Data() : FileManager.default.contents(atPath: errorPath) ?? Data(),
            timedOut: timedOut
        )
    }

    /// A wait status as `Process.terminationStatus` gives it: the exit code if the program
    /// exited, otherwise the signal that ended it.
    static func code(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : signal
    }
}
