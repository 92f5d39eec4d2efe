import GatehouseCrypto

/// A Lua script run with `EVALSHA`, named by the SHA-1 of its source (computed locally with
/// libcrypto through GatehouseCrypto, as Redis computes it).
///
/// ``RedisClient/eval(_:keys:arguments:)`` sends `EVALSHA` first; on `NOSCRIPT` (the server
/// restarted, failed over, or ran `SCRIPT FLUSH`) it loads the script with `SCRIPT LOAD` and
/// retries once. In the steady state a script costs one round trip.
///
/// Keep instances in `static let`s: computing the SHA-1 is the only work `init` does.
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String
    /// The lower-case hex SHA-1 of ``source``: the name Redis knows the script by.
    public let sha1: String

    /// Creates a script from its Lua source.
    public init(_ source: String) {
        self.source = source
        self.sha1 = Self.hexDigits(Digest.hash(.sha1, source.utf8))
    }

    private static func hexDigits(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}

extension RedisClient {
    /// Runs `script` with `EVALSHA`, loading it first if the server does not know it.
    ///
    /// Every key the script touches must be in `keys` (Redis Cluster routes by them); for a
    /// user's keys build them with ``RedisKeys/user(_:_:)`` so they share one hash slot.
    ///
    /// - Returns: the script's reply. A Lua error (`redis.error_reply`, a runtime error) throws
    ///   ``RedisError`` with ``RedisError/Code/serverError``.
    public func eval(
        _ script: RedisScript,
        keys: [String] = [],
        arguments: [any RedisArgumentConvertible] = []
    ) async throws -> RedisValue {
        var command: [any RedisArgumentConvertible] = ["EVALSHA", script.sha1, keys.count]
        command.reserveCapacity(3 + keys.count + arguments.count)
        for key in keys { command.append(key) }
        command.append(contentsOf: arguments)
        let encoded = RedisCommand(command)
        do {
            return try await self.send(encoded)
        } catch let error as RedisError where error.serverErrorPrefix == "NOSCRIPT" {
            try await self.load(script)
            return try await self.send(encoded)
        }
    }

    /// ``eval(_:keys:arguments:)`` for a caller outside Swift concurrency: `completion` gets
    /// the reply or the error on the connection's I/O thread (it must only hand it on). After a
    /// `NOSCRIPT` (the script did not run) the load and the retry run in a task, and
    /// `completion` is called from there.
    public func eval(
        _ script: RedisScript,
        keys: [String],
        arguments: [any RedisArgumentConvertible],
        completion: @escaping @Sendable (Result<RedisValue, any Error>) -> Void
    ) {
        var command: [any RedisArgumentConvertible] = ["EVALSHA", script.sha1, keys.count]
        command.reserveCapacity(3 + keys.count + arguments.count)
        for key in keys { command.append(key) }
        command.append(contentsOf: arguments)
        let encoded = RedisCommand(command)
        self.send(encoded) { result in
            if case .failure(let error as RedisError) = result, error.serverErrorPrefix == "NOSCRIPT" {
                Task {
                    do {
                        try await self.load(script)
                        completion(.success(try await self.send(encoded)))
                    } catch {
                        completion(.failure(error))
                    }
                }
            } else {
                completion(result)
            }
        }
    }

    /// `SCRIPT LOAD`s `script`, checking that the server names it as this client does.
    public func load(_ script: RedisScript) async throws {
        let reply = try await self.send(RedisCommand("SCRIPT", "LOAD", script.source))
        guard reply.string == script.sha1 else {
            throw RedisError(.unexpectedReply, "SCRIPT LOAD returned \(reply), expected \(script.sha1)")
        }
    }
}
