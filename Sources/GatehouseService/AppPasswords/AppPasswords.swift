import Foundation
import GatehouseCrypto
public import GatehouseCore
import GatehouseRedis
import Logging

/// An app password as listed (never the password itself).
public struct AppPasswordInfo: Sendable {
    public var id: String
    public var label: String
    public var services: [String]
    public var createdAt: Int64
    public var lastUsedAt: Int64?
    public var lastUsedIP: String?
    public var lastUsedService: String?
}

/// A newly created app password: the only time the password is shown (unless revealable).
public struct CreatedAppPassword: Sendable {
    public var id: String
    public var label: String
    public var services: [String]
    public var password: String
    public var createdAt: Int64
}

/// `POST /v1/mail/authenticate`'s answer.
public enum MailAuthResult: Sendable, Equatable {
    case ok(appPasswordID: String)
    case usePrimary
    case denied
}

/// The mail-server check in one round trip (mail servers check on every connection).
/// KEYS: 1 user record, 2 index (keyed hash → "id|svc,svc"), 3 last-use hash, 4 failure counter
/// for this user and client address. ARGV: 1 candidate hash, 2 service, 3 now, 4 ip, 5 failure
/// limit, 6 window s. Replies: `{"use_primary"}`, `{"rate_limited", ttl}`, `{"ok", id, ip_changed}`,
/// `{"denied"}`.
enum MailAuthScript {
    static let script = RedisScript(#"""
if not redis.call('HGET', KEYS[1], 'method') then return {'use_primary'} end
local fails = tonumber(redis.call('GET', KEYS[4]) or '0')
if fails >= tonumber(ARGV[5]) then
  local ttl = redis.call('TTL', KEYS[4])
  if ttl < 1 then ttl = 1 end
  return {'rate_limited', ttl}
end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if entry then
  local bar = string.find(entry, '|', 1, true)
  local id = string.sub(entry, 1, bar - 1)
  local services = ',' .. string.sub(entry, bar + 1) .. ','
  if string.find(services, ',' .. ARGV[2] .. ',', 1, true) then
    local previous = redis.call('HGET', KEYS[3], id)
    local changed = 1
    if previous and cjson.decode(previous).ip == ARGV[4] then changed = 0 end
    local use = {at = tonumber(ARGV[3]), service = ARGV[2]}
    if ARGV[4] ~= '' then use.ip = ARGV[4] end
    redis.call('HSET', KEYS[3], id, cjson.encode(use))
    return {'ok', id, changed}
  end
end
if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6])) end
return {'denied'}
"""#)
}

extension Gatehouse {
    /// At most this many app passwords per user.
    static let maximumAppPasswords = 50
    /// The services an app password may be scoped to.
    public static let mailServices = MailService.allCases.map(\.rawValue)

    static func normalizeAppPassword(_ text: String) -> String {
        text.lowercased().filter { $0 != " " && $0 != "-" }
    }

    /// Creates one: 24 lowercase letters (≥ 112 bits) shown in groups of 4, stored as a keyed
    /// hash (plus sealed, when the domain allows revealing it again).
    public func createAppPassword(user: UserID, label: AppPasswordLabel, services: [MailService]) async throws(ServiceError) -> CreatedAppPassword {
        try requireTwoStepAllowed(user)
        // Without two-step the mail servers take the primary password; an app password made now
        // would silently outlive a later "turn on" and keep mail open to a password-only login.
        guard try await loadUser(user).twoStepEnabled else { throw ServiceError(.notEnrolled, "app passwords exist once two-step is on") }
        let existing: Int
        do { existing = Int(try await redis.send(["HLEN", userKey(user, "app-passwords")]).integer ?? 0) } catch { throw ServiceError.unavailable(error) }
        guard existing < Self.maximumAppPasswords else { throw ServiceError(.invalidRequest, "at most \(Self.maximumAppPasswords) app passwords") }
        let created = try makeAppPassword(user: user, label: label.value, services: services.map(\.rawValue))
        do { _ = try await redis.pipeline(created.commands) } catch { throw ServiceError.unavailable(error) }
        await event(user, "app_password_created", detail: label.value)
        return created.value
    }

    /// Builds the password and the Redis commands that store it.
    func makeAppPassword(user: UserID, label: String, services: [String]) throws(ServiceError) -> (value: CreatedAppPassword, commands: [RedisCommand]) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var raw: [UInt8] = []
        for _ in 0..<24 {
            do { raw.append(letters[Int(try random.uniform(below: 26))]) } catch { throw ServiceError(.unavailable, "random source failed", underlying: error) }
        }
        let password = String(decoding: raw, as: UTF8.self)
        let display = stride(from: 0, to: 24, by: 4).map { i in String(decoding: raw[i..<i + 4], as: UTF8.self) }.joined(separator: " ")
        let id = try newID()
        let now = self.now
        var record: [String: Any] = ["label": label, "services": services, "created_at": now]
        if view.policy(for: user.domain).appPasswordReveal {
            do { record["sealed"] = try secrets.seal(Array(password.utf8), user: user.value, purpose: "app-password") } catch {
                throw ServiceError(.unavailable, "cannot seal app password", underlying: error)
            }
        }
        let json = JSONText.string(record)
        let commands = [
            RedisCommand(["HSET", userKey(user, "app-passwords"), id, json]),
            RedisCommand(["HSET", userKey(user, "app-password-index"), keyedHash(password), id + "|" + services.joined(separator: ",")]),
        ]
        return (CreatedAppPassword(id: id, label: label, services: services, password: display, createdAt: now), commands)
    }

    /// `GET /v1/me/app-passwords`.
    public func appPasswords(of user: UserID) async throws(ServiceError) -> [AppPasswordInfo] {
        let records: [String: String], uses: [String: String]
        do {
            let replies = try await redis.pipeline([
                RedisCommand(["HGETALL", userKey(user, "app-passwords")]),
                RedisCommand(["HGETALL", userKey(user, "app-password-use")]),
            ])
            records = Self.hash(replies[0])
            uses = Self.hash(replies[1])
        } catch { throw ServiceError.unavailable(error) }
        return records.compactMap { id, json -> AppPasswordInfo? in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return nil }
            let use = uses[id].flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            return AppPasswordInfo(
                id: id, label: o["label"] as? String ?? "", services: o["services"] as? [String] ?? [],
                createdAt: (o["created_at"] as? NSNumber)?.int64Value ?? 0,
                lastUsedAt: (use?["at"] as? NSNumber)?.int64Value, lastUsedIP: use?["ip"] as? String, lastUsedService: use?["service"] as? String
            )
        }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// `DELETE /v1/me/app-passwords/{id}`.
    public func deleteAppPassword(user: UserID, id: String) async throws(ServiceError) {
        do {
            let index = Self.hash(try await redis.send(["HGETALL", userKey(user, "app-password-index")]))
            guard let hash = index.first(where: { $0.value.hasPrefix(id + "|") })?.key else { throw ServiceError(.notFound, "no such app password") }
            _ = try await redis.pipeline([
                RedisCommand(["HDEL", userKey(user, "app-passwords"), id]),
                RedisCommand(["HDEL", userKey(user, "app-password-index"), hash]),
                RedisCommand(["HDEL", userKey(user, "app-password-use"), id]),
            ])
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "app_password_revoked", detail: id)
    }

    /// `GET /v1/me/app-passwords/{id}/reveal`: only where the policy allows it and within 10
    /// minutes of a second step.
    public func revealAppPassword(_ principal: Principal, id: String) async throws(ServiceError) -> String {
        guard case .session(let claims, let user) = principal else { throw ServiceError(.reauthenticationRequired, "a signed-in session is required") }
        guard view.policy(for: user.domain).appPasswordReveal else {
            throw ServiceError(.reauthenticationRequired, "this domain does not allow revealing app passwords")
        }
        guard claims.methods.hasSecondStep, !claims.methods.contains(.remember), now - claims.authTime <= configuration.lifetimes.reauthenticationSeconds else {
            throw ServiceError(.reauthenticationRequired, "reveal needs a second step within the last 10 minutes")
        }
        let json: String?
        do { json = try await redis.send(["HGET", userKey(user, "app-passwords"), id]).string } catch { throw ServiceError.unavailable(error) }
        guard let json, let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { throw ServiceError(.notFound, "no such app password") }
        guard let sealed = o["sealed"] as? String, let plain = try? secrets.open(sealed, user: user.value, purpose: "app-password") else {
            throw ServiceError(.reauthenticationRequired, "this app password was created when revealing was off; create a new one")
        }
        let raw = Array(plain)
        await event(user, "app_password_revealed", detail: id)
        return stride(from: 0, to: raw.count, by: 4).map { i in String(decoding: raw[i..<min(i + 4, raw.count)], as: UTF8.self) }.joined(separator: " ")
    }

    /// `POST /v1/mail/authenticate`.
    public func mailAuthenticate(user: UserID, password: String, service: MailService, clientIP: String?) async throws(ServiceError) -> MailAuthResult {
        let reply: RedisValue
        let ipPart = clientIP.flatMap(ipBudgetKey) ?? "none"
        do {
            reply = try await redis.eval(
                MailAuthScript.script,
                keys: [userKey(user, "user"), userKey(user, "app-password-index"), userKey(user, "app-password-use"), userKey(user, "mail-fails", ipPart)],
                arguments: [keyedHash(Self.normalizeAppPassword(password)), service.rawValue, String(now), clientIP ?? "", 20, 900]
            )
        } catch { throw ServiceError.unavailable(error) }
        let items = reply.array ?? []
        switch items.first?.string {
        case "use_primary": return .usePrimary
        case "ok":
            let id = items.count > 1 ? items[1].string ?? "" : ""
            if items.count > 2, items[2].integer == 1 { await event(user, "app_password_used", clientIP: clientIP, detail: service.rawValue) }
            return .ok(appPasswordID: id)
        case "rate_limited":
            throw ServiceError(.rateLimited, "too many failed mail logins", retryAfterSeconds: Int(items.count > 1 ? items[1].integer ?? 60 : 60))
        case "denied":
            logger.notice("mail login denied", metadata: ["user": "\(user)", "service": "\(service.rawValue)"])
            return .denied
        default:
            throw ServiceError(.unavailable, "unexpected answer from the state store")
        }
    }
}
