import Foundation
import GatehouseCrypto
public import GatehouseCore
public import GatehouseRedis
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

/// The answer to a mail server's check (`POST /v1/mail/authenticate`, `GET /v1/mail/auth-http`).
public enum MailAuthResult: Sendable, Equatable {
    /// One of the user's app passwords, for this service.
    case ok(appPasswordID: String)
    /// The user has no two-step: the mail server checks its own (primary) password.
    case usePrimary
    /// Two-step is on and the password is not an app password for this service.
    case denied(MailRefusal)
}

/// Why and how a mail login was refused.
public struct MailRefusal: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// Not one of the user's app passwords: often the old primary password.
        case notAnAppPassword
        /// An app password of the user, scoped to other services.
        case otherService
    }

    public var reason: Reason
    /// Whether this same password was already refused for this user from this address in the
    /// current window: a mail client repeating a stale password, not a guesser.
    public var repeated: Bool
    /// Seconds a proxy should hold the refusal before answering (nginx's `Auth-Wait`): longer
    /// for each new password from an address than for a repeated one.
    public var waitSeconds: Int
}

/// The mail-server check in one round trip (mail servers check on every connection).
///
/// A valid app password is accepted before any throttle is looked at: it has ≥ 112 bits, so no
/// one gets in by guessing, and a stale or hostile client at any address can never lock the
/// user's real clients out. Refusals are counted per user and client address: each *distinct*
/// wrong password (a keyed hash, kept for the window) counts as a guess; once `limit` guesses
/// are spent the address gets `rate_limited` until the window ends. A password already refused
/// from that address (a phone retrying the old primary password) only counts as a repeat: it is
/// answered `denied` again, held a little, and never exhausts the guess budget. The first repeat
/// of a password is reported once per user and password (`stale` = 1) so the user can be told.
///
/// KEYS: 1 user record, 2 index (keyed hash → "id|svc,svc"), 3 last-use hash, 4 refusal counts
/// for this user and address (hash: distinct, repeats), 5 refused password hashes for this user
/// and address (set), 6 passwords already reported as stale for this user (set).
/// ARGV: 1 candidate hash, 2 service, 3 now, 4 ip, 5 guess limit, 6 window s, 7 stale-report
/// memory s, 8 cap of the stale-report set.
/// Replies: `{"use_primary"}`, `{"ok", id, ip_changed}`, `{"rate_limited", ttl}`,
/// `{"denied", other_service, repeats, distinct, stale}`.
///
/// ``invocation(prefix:user:passwordHash:service:now:clientIP:)`` is the one place KEYS and
/// ARGV are put in order: ``Gatehouse/mailAuthenticate(user:password:service:clientIP:)`` calls
/// the script with it, and `gatehouse debug mail-auth-args` prints it for `benchmarks/mail.sh`'s
/// `redis-benchmark` reference.
public enum MailAuthScript {
    public static let script = RedisScript(#"""
if not redis.call('HGET', KEYS[1], 'method') then return {'use_primary'} end
local other = 0
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
  other = 1
end
local distinct = tonumber(redis.call('HGET', KEYS[4], 'distinct') or '0')
local repeated = redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1
if distinct >= tonumber(ARGV[5]) and not repeated then
  local ttl = redis.call('TTL', KEYS[4])
  if ttl < 1 then ttl = 1 end
  return {'rate_limited', ttl}
end
local repeats = 0
local stale = 0
if repeated then
  repeats = redis.call('HINCRBY', KEYS[4], 'repeats', 1)
  if redis.call('SISMEMBER', KEYS[6], ARGV[1]) == 0 and redis.call('SCARD', KEYS[6]) < tonumber(ARGV[8]) then
    redis.call('SADD', KEYS[6], ARGV[1])
    redis.call('EXPIRE', KEYS[6], tonumber(ARGV[7]))
    stale = 1
  end
else
  distinct = redis.call('HINCRBY', KEYS[4], 'distinct', 1)
  redis.call('SADD', KEYS[5], ARGV[1])
end
if redis.call('TTL', KEYS[4]) < 0 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6])) end
if redis.call('TTL', KEYS[5]) < 0 then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[6])) end
return {'denied', other, repeats, distinct, stale}
"""#)

    /// KEYS and ARGV of one check of `user`'s password (its keyed hash, ``passwordHash(_:secrets:)``)
    /// for `service` at `now` (Unix seconds) from `clientIP`. `prefix` is the Redis key prefix
    /// (`GATEHOUSE_REDIS_PREFIX`, normally `gh`).
    public static func invocation(
        prefix: String, user: UserID, passwordHash: String, service: MailService, now: Int64, clientIP: String?
    ) -> (keys: [String], arguments: [String]) {
        // Refusals are counted per user and address (IPv6 by /64); without an address, in one
        // bucket per user.
        let address = clientIP.flatMap(ipBudgetKey) ?? "none"
        let keys = [
            Gatehouse.userKey(prefix: prefix, user, "user"), Gatehouse.userKey(prefix: prefix, user, "app-password-index"),
            Gatehouse.userKey(prefix: prefix, user, "app-password-use"), Gatehouse.userKey(prefix: prefix, user, "mail-fails", address),
            Gatehouse.userKey(prefix: prefix, user, "mail-refused", address), Gatehouse.userKey(prefix: prefix, user, "mail-stale"),
        ]
        let arguments = [
            passwordHash, service.rawValue, String(now), clientIP ?? "",
            String(Gatehouse.mailGuessLimit), String(Gatehouse.mailWindowSeconds), String(Gatehouse.mailStaleMemorySeconds),
            String(Gatehouse.mailStaleMemoryCap),
        ]
        return (keys, arguments)
    }

    /// ARGV[1]: the keyed hash (HMAC-SHA-256 with the data key's pepper, hex) of the password as
    /// an app password is stored: lower case, without spaces and dashes.
    public static func passwordHash(_ password: String, secrets: SecretBox) -> String {
        Gatehouse.keyedHash(Gatehouse.normalizeAppPassword(password), pepper: secrets.pepper)
    }
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

    /// Distinct wrong passwords one address may try for one user per window before it gets
    /// `rate_limited` (repeats of a password already refused never count).
    static let mailGuessLimit = 10
    /// The window of the mail-login counts, seconds.
    static let mailWindowSeconds = 900
    /// How long a password reported as stale is not reported again, seconds.
    static let mailStaleMemorySeconds = 7 * 86_400
    /// At most this many stale passwords are remembered per user.
    static let mailStaleMemoryCap = 100

    /// How long a proxy holds a refusal: a new wrong password from an address waits 2, 4, 8, 16,
    /// then 30 s; a repeated one 2 s, growing by a second per 25 repeats up to 15 s.
    static func mailWait(distinct: Int, repeats: Int) -> Int {
        if repeats > 0 { return min(15, 2 + repeats / 25) }
        return min(30, 1 << min(distinct, 5))
    }

    /// `POST /v1/mail/authenticate` and `GET /v1/mail/auth-http`: whether `password` opens
    /// `service` for `user`. Refusals are counted per user and client address (without an
    /// address, in one bucket per user: a valid app password still gets in, see ``MailAuthScript``).
    public func mailAuthenticate(user: UserID, password: String, service: MailService, clientIP: String?) async throws(ServiceError) -> MailAuthResult {
        let call = mailCall(user: user, password: password, service: service, clientIP: clientIP)
        let reply: RedisValue
        do {
            reply = try await redis.eval(MailAuthScript.script, keys: call.keys, arguments: call.arguments)
        } catch { throw ServiceError.unavailable(error) }
        let decision = mailDecision(reply, user: user, service: service, clientIP: clientIP)
        if let type = decision.event { await event(user, type, clientIP: clientIP, detail: service.rawValue) }
        return try decision.result.get()
    }

    /// The same check for a caller outside Swift concurrency (the HTTP edge's event loop):
    /// `completion` gets the answer where the Redis client hands the reply over (this event
    /// loop, or the pool's I/O thread), or, when the check
    /// records a security event first, from a task once the event is written.
    public func mailAuthenticate(
        user: UserID, password: String, service: MailService, clientIP: String?,
        completion: @escaping @Sendable (Result<MailAuthResult, ServiceError>) -> Void
    ) {
        let call = mailCall(user: user, password: password, service: service, clientIP: clientIP)
        redis.eval(MailAuthScript.script, keys: call.keys, arguments: call.arguments) { result in
            let reply: RedisValue
            switch result {
            case .success(let value): reply = value
            case .failure(let error):
                completion(.failure(ServiceError.unavailable(error)))
                return
            }
            let decision = self.mailDecision(reply, user: user, service: service, clientIP: clientIP)
            if let type = decision.event {
                Task {
                    await self.event(user, type, clientIP: clientIP, detail: service.rawValue)
                    completion(decision.result)
                }
            } else {
                completion(decision.result)
            }
        }
    }

    private func mailCall(user: UserID, password: String, service: MailService, clientIP: String?) -> (keys: [String], arguments: [String]) {
        MailAuthScript.invocation(
            prefix: keys.prefix, user: user, passwordHash: MailAuthScript.passwordHash(password, secrets: secrets),
            service: service, now: now, clientIP: clientIP
        )
    }

    /// The script's reply as an answer, and the security event to record before answering.
    private func mailDecision(
        _ reply: RedisValue, user: UserID, service: MailService, clientIP: String?
    ) -> (result: Result<MailAuthResult, ServiceError>, event: String?) {
        let items = reply.array ?? []
        func integer(_ index: Int) -> Int { index < items.count ? Int(items[index].integer ?? 0) : 0 }
        switch items.first?.string {
        case "use_primary": return (.success(.usePrimary), nil)
        case "ok":
            let id = items.count > 1 ? items[1].string ?? "" : ""
            return (.success(.ok(appPasswordID: id)), integer(2) == 1 ? "app_password_used" : nil)
        case "rate_limited":
            logger.notice("mail login throttled", metadata: ["user": "\(user)", "service": "\(service.rawValue)"])
            return (.failure(ServiceError(
                .rateLimited, "too many different wrong passwords for this user from this address", retryAfterSeconds: max(1, integer(1))
            )), nil)
        case "denied":
            let repeats = integer(2), distinct = integer(3)
            logger.notice("mail login denied", metadata: ["user": "\(user)", "service": "\(service.rawValue)", "repeated": "\(repeats > 0)"])
            let refusal = MailRefusal(
                reason: integer(1) == 1 ? .otherService : .notAnAppPassword, repeated: repeats > 0,
                waitSeconds: Self.mailWait(distinct: distinct, repeats: repeats)
            )
            return (.success(.denied(refusal)), integer(4) == 1 ? "mail_stale_password" : nil)
        default:
            return (.failure(ServiceError(.unavailable, "unexpected answer from the state store")), nil)
        }
    }
}
