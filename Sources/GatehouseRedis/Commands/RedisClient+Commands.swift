/// Typed helpers for the commands Gatehouse uses. Anything else goes through
/// ``RedisClient/send(_:)-(RedisCommand)``.
extension RedisClient {
    /// `GET key`: the value's bytes, or `nil` if the key does not exist.
    public func get(_ key: String) async throws -> [UInt8]? {
        switch try await self.send(RedisCommand("GET", key)) {
        case .null: return nil
        case .bulkString(let bytes): return bytes
        case let other: throw RedisError(.unexpectedReply, "GET returned \(other)")
        }
    }

    /// `GET key` decoded as UTF-8 (invalid sequences replaced), or `nil`.
    public func getString(_ key: String) async throws -> String? {
        try await self.get(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `SET key value [NX] [EX seconds]`. Returns whether the value was set (always `true`
    /// without `nx`).
    @discardableResult
    public func set(
        _ key: String,
        _ value: some RedisArgumentConvertible,
        nx: Bool = false,
        expireSeconds: Int? = nil
    ) async throws -> Bool {
        var arguments: [any RedisArgumentConvertible] = ["SET", key, value]
        if nx { arguments.append("NX") }
        if let expireSeconds {
            guard expireSeconds > 0 else {
                throw RedisError(.invalidArgument, "SET EX needs a positive number of seconds, not \(expireSeconds)")
            }
            arguments.append("EX")
            arguments.append(expireSeconds)
        }
        switch try await self.send(RedisCommand(arguments)) {
        case .simpleString: return true
        case .null: return false
        case let other: throw RedisError(.unexpectedReply, "SET returned \(other)")
        }
    }

    /// `INCR key`: the new value.
    public func incr(_ key: String) async throws -> Int64 {
        try await self.integer(RedisCommand("INCR", key), "INCR")
    }

    /// `DEL key…`: how many keys existed.
    @discardableResult
    public func del(_ keys: [String]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        return Int(try await self.integer(RedisCommand(["DEL"] + keys), "DEL"))
    }

    /// `EXPIRE key seconds`: whether the key exists (and now has the timeout).
    @discardableResult
    public func expire(_ key: String, seconds: Int) async throws -> Bool {
        try await self.integer(RedisCommand("EXPIRE", key, seconds), "EXPIRE") == 1
    }

    /// `EXISTS key…`: how many of the keys exist.
    public func exists(_ keys: [String]) async throws -> Int {
        Int(try await self.integer(RedisCommand(["EXISTS"] + keys), "EXISTS"))
    }

    /// `PUBLISH channel message`: how many subscribers received it.
    @discardableResult
    public func publish(_ channel: String, _ message: some RedisArgumentConvertible) async throws -> Int {
        Int(try await self.integer(RedisCommand("PUBLISH", channel, message), "PUBLISH"))
    }

    /// `PING`.
    public func ping() async throws {
        _ = try await self.send(RedisCommand("PING"))
    }

    /// `TIME`: the server's clock as microseconds since the Unix epoch.
    public func time() async throws -> Int64 {
        let reply = try await self.send(RedisCommand("TIME"))
        guard case .array(let parts) = reply, parts.count == 2,
            let seconds = parts[0].integer, let micros = parts[1].integer
        else {
            throw RedisError(.unexpectedReply, "TIME returned \(reply)")
        }
        return seconds * 1_000_000 + micros
    }

    private func integer(_ command: RedisCommand, _ name: String) async throws -> Int64 {
        let reply = try await self.send(command)
        guard case .integer(let value) = reply else {
            throw RedisError(.unexpectedReply, "\(name) returned \(reply)")
        }
        return value
    }
}
