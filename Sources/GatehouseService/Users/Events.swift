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
    /// How many events a user's capped stream keeps.
    static let eventsKept = 500

    /// Records a security event in the user's capped stream and logs it. Best effort: an event
    /// that cannot be stored is logged, and never fails the operation it describes.
    func event(_ user: UserID, _ type: String, clientIP: String? = nil, detail: String? = nil) async {
        var fields = [RedisStreamField("type", type), RedisStreamField("at", String(now))]
        if let clientIP { fields.append(RedisStreamField("ip", clientIP)) }
        if let detail { fields.append(RedisStreamField("detail", detail)) }
        logger.info("security event", metadata: ["user": "\(user)", "event": "\(type)", "detail": "\(detail ?? "")"])
        do {
            _ = try await redis.xadd(userKey(user, "events"), fields: fields, trim: .maxLength(Self.eventsKept, approximate: true))
        } catch {
            logger.warning("security event not stored", metadata: ["user": "\(user)", "event": "\(type)"])
        }
    }

    /// Newest first.
    public func events(of user: UserID, limit: Int = 100) async throws(ServiceError) -> [SecurityEvent] {
        let reply: RedisValue
        do { reply = try await redis.send(["XREVRANGE", userKey(user, "events"), "+", "-", "COUNT", limit]) } catch { throw ServiceError.unavailable(error) }
        guard let items = reply.array else { return [] }
        return items.compactMap { item in
            guard let entry = try? RedisStreamEntry(reply: item), let type = entry["type"] else { return nil }
            return SecurityEvent(type: type, at: entry["at"].flatMap { Int64($0) } ?? 0, clientIP: entry["ip"], detail: entry["detail"])
        }
    }

}
