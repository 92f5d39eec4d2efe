import Testing

import GatehouseRedis

/// Tests with no server: encoding, parsing, keys, ids, SHA-1 and the connection state machine.
@Suite("GatehouseRedis units")
struct UnitTests {
    @Test func commandEncodingIsRESP2AndBinarySafe() {
        let command = RedisCommand("SET", "k", [0, 13, 10, 255] as [UInt8], 42, Int64(-7))
        let expectedBytes =
            Array("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n".utf8) + [0, 13, 10, 255]
            + Array("\r\n$2\r\n42\r\n$2\r\n-7\r\n".utf8)
        #expect(command.bytes == expectedBytes)
        #expect(command.argumentCount == 5)
    }

    @Test func integerArgumentsAtTheLimits() {
        let command = RedisCommand("X", Int64.min, Int64.max, 0)
        let text = String(decoding: command.bytes, as: UTF8.self)
        #expect(text == "*4\r\n$1\r\nX\r\n$20\r\n-9223372036854775808\r\n$19\r\n9223372036854775807\r\n$1\r\n0\r\n")
    }

    @Test(arguments: [
        ("redis://localhost", RedisURL(endpoint: .tcp(host: "localhost", port: 6379))),
        ("redis://127.0.0.1:7000/3", RedisURL(endpoint: .tcp(host: "127.0.0.1", port: 7000), database: 3)),
        ("redis://:pw@h:1/2", RedisURL(endpoint: .tcp(host: "h", port: 1), password: "pw", database: 2)),
        ("redis://pw@h", RedisURL(endpoint: .tcp(host: "h", port: 6379), password: "pw")),
        ("redis://alice:p%40ss@h:6380", RedisURL(endpoint: .tcp(host: "h", port: 6380), user: "alice", password: "p@ss")),
        ("redis://[::1]:6400/1", RedisURL(endpoint: .tcp(host: "::1", port: 6400), database: 1)),
        ("unix:///run/redis.sock", RedisURL(endpoint: .unix(path: "/run/redis.sock"))),
        ("unix:///run/redis.sock?db=4&password=x", RedisURL(endpoint: .unix(path: "/run/redis.sock"), password: "x", database: 4)),
        ("unix://bob:pw@/tmp/r.sock?db=1", RedisURL(endpoint: .unix(path: "/tmp/r.sock"), user: "bob", password: "pw", database: 1)),
    ])
    func validURLs(_ text: String, _ expected: RedisURL) throws {
        #expect(try RedisURL(text) == expected)
    }

    @Test(arguments: [
        "http://h", "redis://h:0", "redis://h:70000", "redis://h/x", "redis://h:1?user=alice",
        "unix://relative.sock", "unix:///s?db=x", "redis://h?nonsense=1", "redis://h:1/-1", "redis://u:p%zz@h",
    ])
    func invalidURLs(_ text: String) {
        #expect(throws: RedisError.self) { try RedisURL(text) }
        do {
            _ = try RedisURL(text)
        } catch {
            #expect(error.code == .invalidURL)
        }
    }

    @Test func urlDescriptionHidesThePassword() throws {
        let url = try RedisURL("redis://alice:topsecret@h:1/2")
        #expect(url.description == "redis://alice:***@h:1/2")
        do {
            _ = try RedisURL("redis://alice:topsecret@h:bad")
            Issue.record("a bad port parsed")
        } catch {
            #expect(!error.message.contains("topsecret"))
        }
    }

    @Test func userKeysCarryTheLowerCasedHashTag() throws {
        let keys = RedisKeys(prefix: "gh")
        #expect(try keys.user("Alice@Example.org", "totp") == "gh:{alice@example.org}:totp")
        #expect(try keys.user("bob@example.org", "device", "d1") == "gh:{bob@example.org}:device:d1")
        #expect(try keys.userTag("X@Y") == "{x@y}")
        #expect(keys.global("policy", "example.org") == "gh:policy:example.org")
    }

    @Test(arguments: ["", "a}b@example.org", "{evil}@example.org", "x{@y"])
    func userKeysRejectBracesAndEmpty(_ user: String) {
        #expect(throws: RedisError.self) { try RedisKeys(prefix: "gh").user(user, "totp") }
    }

    @Test func streamIDsParseAndOrder() throws {
        let id = try #require(RedisStreamID("1700000000000-5"))
        #expect(id == RedisStreamID(milliseconds: 1_700_000_000_000, sequence: 5))
        #expect(RedisStreamID("42") == RedisStreamID(milliseconds: 42, sequence: 0))
        #expect(RedisStreamID("1-2-3") == nil)
        #expect(RedisStreamID("x-1") == nil)
        #expect(RedisStreamID(milliseconds: 1, sequence: 9) < RedisStreamID(milliseconds: 2, sequence: 0))
        #expect(RedisStreamID.before(milliseconds: 1000) == RedisStreamID(milliseconds: 999, sequence: .max))
        #expect(RedisStreamID.before(milliseconds: 1000) < RedisStreamID(milliseconds: 1000, sequence: 0))
        #expect(id.description == "1700000000000-5")
    }

    /// FIPS 180 / RFC 3174 vectors, plus lengths around the 55/56/64-byte padding boundaries.
    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        ("The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
        (String(repeating: "a", count: 64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
    ])
    func sha1Vectors(_ input: String, _ digest: String) {
        #expect(RedisScript(input).sha1 == digest)
    }

    @Test func valueAccessors() {
        #expect(RedisValue.bulkString(Array("12".utf8)).integer == 12)
        #expect(RedisValue.integer(5).string == "5")
        #expect(RedisValue.null.isNull)
        #expect(RedisValue.array([.null]).array == [.null])
        #expect(RedisValue.simpleString("OK").bytes == Array("OK".utf8))
        #expect(RedisValue.error("ERR x").string == nil)
    }
}

/// The connection state machine on its own: `Waiter` is a plain Int, times are made up.
@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<Int>
    let second: UInt64 = 1_000_000_000

    func connectedMachine() -> Machine {
        var machine = Machine(queueTimeoutNanoseconds: second)
        guard case .connect = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("a new machine should connect first")
            return machine
        }
        machine.connected()
        return machine
    }

    @Test func parkedThreadIsWokenOnceAndTakesEverythingQueued() {
        var machine = self.connectedMachine()
        guard case .park(until: nil) = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("an idle connection should park")
            return
        }
        guard case .wakeIOThread = machine.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 1, now: 0) else {
            Issue.record("the first command should wake the parked thread")
            return
        }
        guard case .none = machine.enqueue(id: 2, bytes: [2], replyCount: 1, waiter: 2, now: 0) else {
            Issue.record("a second command must not signal again")
            return
        }
        guard case .write(let commands, let replies) = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("queued commands should be written")
            return
        }
        #expect(commands == [[1], [2]])
        #expect(replies == 2)
    }

    @Test func repliesGoToCallersInOrderAndMultiReplyRequestsGetAnArray() {
        var machine = self.connectedMachine()
        _ = machine.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = machine.enqueue(id: 2, bytes: [2, 2], replyCount: 2, waiter: 20, now: 0)
        _ = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        let first = machine.replyReceived(.integer(1))
        #expect(first?.0 == 10 && first?.1 == .integer(1))
        #expect(machine.replyReceived(.integer(2)) == nil)
        let third = machine.replyReceived(.integer(3))
        #expect(third?.0 == 20 && third?.1 == .array([.integer(2), .integer(3)]))
        #expect(machine.inFlight.isEmpty)
    }

    @Test func batchLimitsSplitTheQueue() {
        var machine = self.connectedMachine()
        for id in 1...5 { _ = machine.enqueue(id: UInt64(id), bytes: [UInt8](repeating: 0, count: 10), replyCount: 1, waiter: id, now: 0) }
        guard case .write(let first, _) = machine.nextStep(now: 0, maxBatchCommands: 3, maxBatchBytes: 1 << 20).step,
            case .write(let second, _) = machine.nextStep(now: 0, maxBatchCommands: 3, maxBatchBytes: 15).step
        else {
            Issue.record("expected two batches")
            return
        }
        #expect(first.count == 3)
        #expect(second.count == 1)  // 15 bytes fit one 10-byte command
        #expect(machine.queued.count == 1)
    }

    @Test func cancelledInFlightCallerKeepsItsSlotSoItsReplyIsDropped() {
        var machine = self.connectedMachine()
        _ = machine.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = machine.enqueue(id: 2, bytes: [2], replyCount: 1, waiter: 20, now: 0)
        _ = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        #expect(machine.cancel(id: 1) == 10)
        #expect(machine.cancel(id: 1) == nil)  // idempotent
        #expect(machine.replyReceived(.simpleString("for 1")) == nil)  // dropped, not given to 2
        let second = machine.replyReceived(.simpleString("for 2"))
        #expect(second?.0 == 20 && second?.1 == .simpleString("for 2"))
    }

    @Test func cancelledQueuedCallerIsRemoved() {
        var machine = self.connectedMachine()
        _ = machine.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = machine.enqueue(id: 2, bytes: [2], replyCount: 1, waiter: 20, now: 0)
        #expect(machine.cancel(id: 1) == 10)
        guard case .write(let commands, _) = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("expected a batch")
            return
        }
        #expect(commands == [[2]])
    }

    @Test func lostConnectionFailsInFlightKeepsQueuedUntilTheirDeadline() {
        var machine = self.connectedMachine()
        _ = machine.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = machine.enqueue(id: 2, bytes: [2], replyCount: 1, waiter: 20, now: 0)
        _ = machine.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        _ = machine.enqueue(id: 3, bytes: [3], replyCount: 1, waiter: 30, now: 0)
        let lost = machine.connectionLost(RedisError(.connectionLost, "gone"), retryAt: 0)
        #expect(lost.map(\.waiter) == [10, 20])
        #expect(lost.map(\.wasOldest) == [true, false])
        #expect(machine.queued.map(\.waiter) == [30])

        // Reconnect fails; the queued command waits, then expires at its deadline.
        guard case .connect = machine.nextStep(now: 1, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("expected an immediate reconnect")
            return
        }
        machine.connectFailed(RedisError(.connectionUnavailable, "refused"), retryAt: 10 * second)
        let waiting = machine.nextStep(now: 2, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        guard case .park(until: let until) = waiting.step else {
            Issue.record("expected a park")
            return
        }
        #expect(until == second)  // the queued command's deadline comes before the retry
        #expect(waiting.failed.isEmpty)
        let expired = machine.nextStep(now: second, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        #expect(expired.failed.map(\.0) == [30])
        #expect(expired.failed.first?.1.code == .connectionUnavailable)
    }

    @Test func closingDrainsWhenConnectedAndFailsQueuedWhenNot() {
        var up = self.connectedMachine()
        _ = up.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = up.close()
        guard case .fail(20, let error) = up.enqueue(id: 2, bytes: [2], replyCount: 1, waiter: 20, now: 0) else {
            Issue.record("a closed connection must refuse commands")
            return
        }
        #expect(error.code == .clientClosed)
        guard case .write = up.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("queued work is still written after close")
            return
        }
        _ = up.replyReceived(.null)
        guard case .exit = up.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20).step else {
            Issue.record("expected exit once drained")
            return
        }

        var down = Machine(queueTimeoutNanoseconds: second)
        _ = down.enqueue(id: 1, bytes: [1], replyCount: 1, waiter: 10, now: 0)
        _ = down.close()
        let step = down.nextStep(now: 0, maxBatchCommands: 100, maxBatchBytes: 1 << 20)
        guard case .exit = step.step else {
            Issue.record("expected exit")
            return
        }
        #expect(step.failed.map(\.0) == [10])
        #expect(step.failed.first?.1.code == .clientClosed)
    }
}
