import Logging
import Foundation
public import GatehouseCore
import GatehouseRedis

/// A user's stored state (hash `<prefix>:{user}:user`). Absent fields mean "never set".
public struct UserRecord: Sendable {
    public var epoch: UInt64 = 0
    /// Sealed TOTP secret (`SecretBox` envelope, purpose `totp`).
    public var totpEnvelope: String?
    public var totpSince: Int64?
    /// `totp`, `email` or nil (two-step off).
    public var method: DomainPolicy.Method?
    /// Bumped on every credential change; the code check refuses a stale one.
    public var credentialVersion: String = "0"
    public var recoveryEmail: String?
    public var recoveryVerified = false

    /// Whether two-step is on.
    public var twoStepEnabled: Bool { method != nil }

    init(fields: [String: String]) {
        epoch = fields["epoch"].flatMap { UInt64($0) } ?? 0
        totpEnvelope = fields["totp"]
        totpSince = fields["totp_since"].flatMap { Int64($0) }
        method = fields["method"].flatMap { DomainPolicy.Method(rawValue: $0) }
        credentialVersion = fields["cred_version"] ?? "0"
        recoveryEmail = fields["recovery_email"]
        recoveryVerified = fields["recovery_verified"] == "1"
    }
}

extension Gatehouse {
    func loadUser(_ user: UserID) async throws(ServiceError) -> UserRecord {
        do {
            let reply = try await redis.send(["HGETALL", userKey(user, "user")])
            return UserRecord(fields: Self.hash(reply))
        } catch {
            throw ServiceError.unavailable(error)
        }
    }

    static func hash(_ reply: RedisValue) -> [String: String] {
        guard let items = reply.array else { return [:] }
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { out[k] = v }
            i += 2
        }
        return out
    }

    /// Puts the user's TOTP into the node's cache from a record just read, unless the cache
    /// already holds this credential version. Best effort: an envelope that does not open is left
    /// for the check to report.
    func warmTOTPCache(user: UserID, record: UserRecord) {
        if let cached = totpCache.get(user.value), cached.version == record.credentialVersion { return }
        guard let envelope = record.totpEnvelope,
              let secret = try? secrets.open(envelope, user: user.value, purpose: "totp"),
              (try? TOTP(secret: secret, digits: configuration.totp.digits, period: configuration.totp.period)) != nil
        else { return }
        totpCache.put(user.value, version: record.credentialVersion, secret: secret)
    }

    /// The prepared TOTP of `user` (cache, else Redis + envelope), or nil when not enrolled.
    func totp(for user: UserID, record: UserRecord? = nil, bypassCache: Bool = false) async throws(ServiceError) -> TOTPCache.Entry? {
        if !bypassCache, let cached = totpCache.get(user.value) { return cached }
        let record = if let record { record } else { try await loadUser(user) }
        guard let envelope = record.totpEnvelope else { return nil }
        let secret: [UInt8]
        do { secret = try secrets.open(envelope, user: user.value, purpose: "totp") } catch {
            logger.error("stored TOTP secret does not open", metadata: ["user": "\(user)"])
            throw ServiceError(.unavailable, "stored credential unreadable", underlying: error)
        }
        let totp: TOTP
        do { totp = try TOTP(secret: secret, digits: configuration.totp.digits, period: configuration.totp.period) } catch {
            throw ServiceError(.unavailable, "stored credential invalid", underlying: error)
        }
        totpCache.put(user.value, version: record.credentialVersion, secret: secret)
        return TOTPCache.Entry(version: record.credentialVersion, totp: totp)
    }
}
