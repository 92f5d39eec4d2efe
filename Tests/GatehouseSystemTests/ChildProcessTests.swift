import GatehouseSystem
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// ``ChildProcess``: the one place children are started, waited for (a dedicated thread blocked
/// in `waitid`) and reaped. Bounds are generous: the machine may be loaded.
@Suite("ChildProcess", .timeLimit(.minutes(1)))
struct ChildProcessTests {
    /// The exit code of a wait status, nil if a signal ended the process.
    static func exitCode(_ status: Int32) -> Int32? { status & 0x7f == 0 ? (status >> 8) & 0xff : nil }
    /// The signal that ended the process, nil if it exited.
    static func signal(_ status: Int32) -> Int32? { status & 0x7f == 0 ? nil : status & 0x7f }

    @Test("waitForExit returns the wait status of a child that exits, and reaps it")
    func exitStatus() async throws {
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "exit 3"])
        let status = try #require(await ChildProcess.waitForExit(pid, timeout: .seconds(30)))
        #expect(Self.exitCode(status) == 3)
        #expect(ChildProcess.reapIfExited(pid) == -1, "reaped once, then no longer a child")
    }

    @Test("waitForExit gives up at the timeout and leaves the child running; kill ends and reaps it")
    func timeout() async throws {
        let pid = try ChildProcess.spawn("/bin/sleep", ["30"])
        let start = ContinuousClock.now
        #expect(await ChildProcess.waitForExit(pid, timeout: .milliseconds(200)) == nil)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(200) && waited < .seconds(10), "\(waited)")
        #expect(ChildProcess.reapIfExited(pid) == nil, "still running")
        #expect(Self.signal(await ChildProcess.kill(pid)) == SIGKILL)
        #expect(ChildProcess.reapIfExited(pid) == -1)
    }

    @Test("exited leaves the child unreaped: a zombie until reapIfExited")
    func exitedDoesNotReap() async throws {
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "exit 5"])
        #expect(await ChildProcess.exited(pid, within: .seconds(30)))
        let status = try #require(ChildProcess.reapIfExited(pid))
        #expect(Self.exitCode(status) == 5)
    }

    @Test("terminate: SIGTERM ends a well-behaved child before the grace period is over")
    func terminate() async throws {
        let pid = try ChildProcess.spawn("/bin/sleep", ["30"])
        let start = ContinuousClock.now
        let status = await ChildProcess.terminate(pid, grace: .seconds(20))
        #expect(Self.signal(status) == SIGTERM)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("terminate: a child that ignores SIGTERM is SIGKILLed after the grace period")
    func terminateKillsAfterGrace() async throws {
        // An ignored signal stays ignored across exec. The shell says when its trap is set: one
        // line on a pipe, read (blocking, for the moment it takes) before the SIGTERM.
        var pipeEnds: [Int32] = [-1, -1]
        try #require(pipe(&pipeEnds) == 0)
        for fd in pipeEnds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(null) }
        let pid = try ChildProcess.spawn(
            "/bin/sh", ["-c", "trap '' TERM; echo ready; exec /bin/sleep 30"],
            output: .descriptors(input: null, output: pipeEnds[1], error: pipeEnds[1])
        )
        close(pipeEnds[1])
        var line = [UInt8](repeating: 0, count: 6)
        let count = read(pipeEnds[0], &line, line.count)
        close(pipeEnds[0])
        #expect(String(decoding: line.prefix(max(count, 0)), as: UTF8.self) == "ready\n")
        let start = ContinuousClock.now
        let status = await ChildProcess.terminate(pid, grace: .milliseconds(300))
        let waited = ContinuousClock.now - start
        #expect(Self.signal(status) == SIGKILL)
        #expect(waited >= .milliseconds(300) && waited < .seconds(10), "\(waited)")
    }

    @Test("the blocking variants: the same bounds for synchronous code")
    func blocking() throws {
        let exiting = try ChildProcess.spawn("/bin/sh", ["-c", "exit 4"])
        #expect(ChildProcess.waitForExitBlocking(exiting, timeout: .seconds(30)).flatMap(Self.exitCode) == 4)
        let running = try ChildProcess.spawn("/bin/sleep", ["30"])
        let start = ContinuousClock.now
        #expect(ChildProcess.waitForExitBlocking(running, timeout: .milliseconds(200)) == nil)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(200) && waited < .seconds(10), "\(waited)")
        #expect(Self.signal(ChildProcess.killBlocking(running)) == SIGKILL)
    }

    @Test("spawn with descriptors: the child writes to the file it was given")
    func descriptors() async throws {
        var template = Array("/tmp/gatehouse-child-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer {
            close(fd)
            unlink(path)
        }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(null) }
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "echo out; echo err >&2"], output: .descriptors(input: null, output: fd, error: fd))
        #expect(await ChildProcess.waitForExit(pid, timeout: .seconds(30)).flatMap(Self.exitCode) == 0)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = pread(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self) == "out\nerr\n")
    }
}
