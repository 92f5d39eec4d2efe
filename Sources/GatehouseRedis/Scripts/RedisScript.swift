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
    /// Runs `script` with `EVALSHA`; if the server does not know it (`NOSCRIPT`: a restarted or
    /// failed-over server, or a cluster master that never ran it), once more with `EVAL` and the
    /// source, which runs it and leaves it cached on that server. The `EVAL` goes wherever the
    /// `EVALSHA` went (on a cluster, to the master of the first key), so every master learns
    /// the script the first time one of its keys needs it.
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
        do {
            return try await self.send(Self.evalCommand(script, sha: true, keys: keys, arguments: arguments))
        } catch let error as RedisError where error.serverErrorPrefix == "NOSCRIPT" {
            return try await self.send(Self.evalCommand(script, sha: false, keys: keys, arguments: arguments))
        }
    }

    /// ``eval(_:keys:arguments:)`` for a caller outside Swift concurrency: `completion` gets
    /// the reply or the error on the connection's I/O thread (it must only hand it on),
    /// including after a `NOSCRIPT` and the `EVAL` that follows it.
    public func eval(
        _ script: RedisScript,
        keys: [String],
        arguments: [any RedisArgumentConvertible],
        completion: @escaping @Sendable (Result<RedisValue, any Error>) -> Void
    ) {
        self.send(Self.evalCommand(script, sha: true, keys: keys, arguments: arguments)) { result in
            if case .failure(let error as RedisError) = result, error.serverErrorPrefix == "NOSCRIPT" {
                self.send(Self.evalCommand(script, sha: false, keys: keys, arguments: arguments), completion: completion)
            } else {
                completion(result)
            }
        }
    }

    private static func evalCommand(
        _ script: RedisScript, sha: Bool, keys: [String], arguments: [any RedisArgumentConvertible]
    ) -> RedisCommand {
        var command: [any RedisArgumentConvertible] = sha ? ["EVALSHA", script.sha1, keys.count] : ["EVAL", script.source, keys.count]
        command.reserveCapacity(3 + keys.count + arguments.count)
        for key in keys { command.append(key) }
        command.append(contentsOf: arguments)
        return RedisCommand(command)
    }

    /// `SCRIPT LOAD`s `script` (on a cluster, on every master), checking that the server names
    /// it as this client does. Not needed before ``eval(_:keys:arguments:)``, which loads on
    /// demand; it saves the first caller on each server one `EVAL` of the source.
    public func load(_ script: RedisScript) async throws {
        let command = RedisCommand("SCRIPT", "LOAD", script.source)
        let replies = if let router = self.clusterRouter { try await router.broadcast(command.bytes) } else { [try await self.send(command)] }
        for reply in replies where reply.string != script.sha1 {
            throw RedisError(.unexpectedReply, "SCRIPT LOAD returned \(reply), expected \(script.sha1)")
        }
    }
}
