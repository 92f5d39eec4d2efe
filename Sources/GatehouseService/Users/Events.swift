import Foundation
import GatehouseCore
import GatehouseRedis
import Logging

/// One security event (`GET /v1/me/events`).
public struct SecurityEvent: Sendable {
    public var type: String
    public var at: Int64
    public var clientIP: String?
    public var detail: String?
}

extension Gatehouse {
    /// How many events a user's log keeps.
    static let eventsKept = 500
    /// The user's event log: `<prefix>:{<user>}:eventlog`, a list, newest first, one JSON object
    /// per event (`type`, `at`, and `ip` and `detail` when known), trimmed to ``eventsKept``.
    /// A list, not a stream: a stream's first node takes about 4.7 KiB of Redis's memory however
    /// few entries it holds, a list of one event about 200 bytes, and most users have a few.
    public static let eventLogName = "eventlog"

    /// One event as stored in the log (the code-check script writes the same object).
    struct StoredEvent: Codable {
        var type: String
        var at: Int64
        var ip: String?
        var detail: String?
    }

    /// Records a security event in the user's capped log and logs it. Best effort: an event
    /// that cannot be stored is logged, and never fails the operation it describes.
    func event(_ user: UserID, _ type: String, clientIP: String? = nil, detail: String? = nil) async {
        logger.info("security event", metadata: ["user": "\(user)", "event": "\(type)", "detail": "\(detail ?? "")"])
        let key = userKey(user, Self.eventLogName)
        do {
            let json = try JSONEncoder().encode(StoredEvent(type: type, at: now, ip: clientIP, detail: detail))
            _ = try await redis.pipeline([
                RedisCommand(["LPUSH", key, String(decoding: json, as: UTF8.self)]),
                RedisCommand(["LTRIM", key, "0", String(Self.eventsKept - 1)]),
            ])
        } catch {
            logger.warning("security event not stored", metadata: ["user": "\(user)", "event": "\(type)"])
        }
    }

    /// Newest first.
    public func events(of user: UserID, limit: Int = 100) async throws(ServiceError) -> [SecurityEvent] {
        guard limit > 0 else { return [] }
        let reply: RedisValue
        do { reply = try await redis.send(["LRANGE", userKey(user, Self.eventLogName), "0", String(limit - 1)]) } catch { throw ServiceError.unavailable(error) }
        guard let items = reply.array else { return [] }
        let decoder = JSONDecoder()
        return items.compactMap { item in
            guard let text = item.string, let stored = try? decoder.decode(StoredEvent.self, from: Data(text.utf8)) else { return nil }
            return SecurityEvent(type: stored.type, at: stored.at, clientIP: stored.ip, detail: stored.detail)
        }
    }
}
