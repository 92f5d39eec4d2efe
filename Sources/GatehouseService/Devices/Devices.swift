import Foundation
public import GatehouseCore
import GatehouseRedis
import Logging

/// A freshly issued remember-device token.
public struct IssuedRemember: Sendable {
    public var token: String
    public var expiresAt: Int64
}

/// A remembered device as listed to its user.
public struct RememberedDevice: Sendable {
    public var id: String
    public var userAgent: String?
    public var createdAt: Int64
    public var lastUsedAt: Int64?
    public var lastIP: String?
}

/// Rotation of a remember token, atomically: the presented generation must be the current one;
/// an older generation means a copied token was used after the real one rotated — theft: the
/// device is deleted. KEYS: 1 devices hash. ARGV: 1 device id, 2 presented gen, 3 now, 4 ip.
/// Replies: `{"ok", new_gen}`, `{"theft"}`, `{"unknown"}`.
enum RememberScript {
    static let script = RedisScript(#"""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'unknown'} end
local device = cjson.decode(raw)
local presented = tonumber(ARGV[2])
if device.gen == presented then
  device.gen = presented + 1
  device.last_used_at = tonumber(ARGV[3])
  if ARGV[4] ~= '' then device.last_ip = ARGV[4] end
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(device))
  return {'ok', device.gen}
end
if presented < device.gen then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {'theft'}
end
return {'unknown'}
"""#)
}

extension Gatehouse {
    /// Issues a remember token for a new device (when the policy allows remember-me).
    func rememberDevice(user: UserID, epoch: UInt64, clientIP: String?, userAgent: String?) async throws(ServiceError) -> IssuedRemember? {
        let policy = view.policy(for: user.domain)
        guard policy.rememberDeviceDays > 0 else { return nil }
        let did = try newID()
        let now = self.now
        var device: [String: Any] = ["gen": 1, "created_at": now, "last_used_at": now]
        if let userAgent { device["user_agent"] = userAgent }
        if let clientIP { device["last_ip"] = clientIP }
        let json = JSONText.string(device)
        do { _ = try await redis.send(["HSET", userKey(user, "devices"), did, json]) } catch { throw ServiceError.unavailable(error) }
        await event(user, "device_remembered", clientIP: clientIP, detail: did)
        return try signRemember(user: user, epoch: epoch, deviceID: did, generation: 1, days: policy.rememberDeviceDays)
    }

    func signRemember(user: UserID, epoch: UInt64, deviceID: String, generation: UInt64, days: Int) throws(ServiceError) -> IssuedRemember {
        let expires = now + Int64(days) * 86400
        let claims = RememberClaims(common: CommonClaims(user: user.value, issuedAt: now, expiresAt: expires, epoch: epoch), deviceID: deviceID, generation: generation)
        do { return IssuedRemember(token: try tokens.sign(claims), expiresAt: expires) } catch {
            throw ServiceError(.unavailable, "cannot sign remember token", underlying: error)
        }
    }

    /// Uses a remember token at `login/start`: nil when it does not stand in for the second step
    /// (invalid, another user's, expired under the current policy, older than the user's
    /// security epoch, forgotten, or stolen — the last one revokes the device).
    func useRememberToken(_ token: String, user: UserID, record: UserRecord, policy: DomainPolicy, clientIP: String?, userAgent: String?) async throws(ServiceError) -> IssuedRemember? {
        guard let claims = try? tokens.verifyRemember(token, now: now), claims.common.user == user.value else { return nil }
        // Checked against the policy and epoch in force now, not those of issue time.
        guard policy.rememberDeviceDays > 0, now < claims.common.issuedAt + Int64(policy.rememberDeviceDays) * 86400,
              claims.common.epoch >= record.epoch else { return nil }
        let reply: RedisValue
        do {
            reply = try await redis.eval(
                RememberScript.script, keys: [userKey(user, "devices")],
                arguments: [claims.deviceID, String(claims.generation), String(now), clientIP ?? ""]
            )
        } catch { throw ServiceError.unavailable(error) }
        switch reply.array?.first?.string {
        case "ok":
            let generation = UInt64(reply.array?[1].integer ?? 0)
            await event(user, "device_used", clientIP: clientIP, detail: claims.deviceID)
            return try signRemember(user: user, epoch: record.epoch, deviceID: claims.deviceID, generation: generation, days: policy.rememberDeviceDays)
        case "theft":
            logger.warning("remember token reused after rotation: device revoked", metadata: ["user": "\(user)"])
            await event(user, "device_theft_detected", clientIP: clientIP, detail: claims.deviceID)
            return nil
        default:
            return nil
        }
    }

    /// `GET /v1/me/devices`.
    public func devices(of user: UserID) async throws(ServiceError) -> [RememberedDevice] {
        let all: [String: String]
        do { all = Self.hash(try await redis.send(["HGETALL", userKey(user, "devices")])) } catch { throw ServiceError.unavailable(error) }
        return all.sorted { $0.key < $1.key }.compactMap { id, json in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return nil }
            return RememberedDevice(
                id: id, userAgent: o["user_agent"] as? String, createdAt: (o["created_at"] as? NSNumber)?.int64Value ?? 0,
                lastUsedAt: (o["last_used_at"] as? NSNumber)?.int64Value, lastIP: o["last_ip"] as? String
            )
        }
    }

    /// `DELETE /v1/me/devices/{id}` (nil: all).
    public func forgetDevices(of user: UserID, id: String?) async throws(ServiceError) {
        do {
            if let id {
                let removed = try await redis.send(["HDEL", userKey(user, "devices"), id]).integer ?? 0
                guard removed == 1 else { throw ServiceError(.notFound, "no such device") }
            } else {
                _ = try await redis.send(["DEL", userKey(user, "devices")])
            }
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "device_revoked", detail: id ?? "all")
    }
}
