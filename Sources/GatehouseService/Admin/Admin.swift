import Logging
import Foundation
public import GatehouseCore
import GatehouseRedis

/// `GET /v1/me`'s data.
public struct MeStatus: Sendable {
    public var user: UserID
    public var record: UserRecord
    public var backupCodesRemaining: Int
    public var policy: DomainPolicy
    /// App passwords (never the passwords or their hashes).
    public var appPasswords: [AppPasswordInfo]
    /// Remembered devices.
    public var devices: [RememberedDevice]
}

/// `GET /v1/users/{user}`'s data.
public struct AdminUserStatus: Sendable {
    public var me: MeStatus
    public var failures: Int
    public var locked: Bool
    public var throttledUntilMilliseconds: Int64?
}

/// One line's result of an import.
public struct ImportLineResult: Sendable {
    public var line: Int
    public var user: String?
    public var ok: Bool
    public var error: String?
}

extension Gatehouse {
    /// `GET /v1/me`.
    public func status(of user: UserID) async throws(ServiceError) -> MeStatus {
        let record = try await loadUser(user)
        let backup: Int
        do { backup = Int(try await redis.send(["SCARD", userKey(user, "backup")]).integer ?? 0) } catch { throw ServiceError.unavailable(error) }
        let apps = try await appPasswords(of: user)
        let devices = try await devices(of: user)
        return MeStatus(user: user, record: record, backupCodesRemaining: backup, policy: view.policy(for: user.domain), appPasswords: apps, devices: devices)
    }

    /// `GET /v1/users/{user}` (admin): status plus throttle state.
    public func adminStatus(of user: UserID) async throws(ServiceError) -> AdminUserStatus {
        let me = try await status(of: user)
        let throttle: [String: String]
        do { throttle = Self.hash(try await redis.send(["HGETALL", userKey(user, "throttle")])) } catch { throw ServiceError.unavailable(error) }
        return AdminUserStatus(
            me: me, failures: Int(throttle["fails"] ?? "0") ?? 0, locked: throttle["locked"] == "1",
            throttledUntilMilliseconds: throttle["next_at"].flatMap { Int64($0) }
        )
    }

    /// `POST /v1/users/{user}/unlock`: clears the failure count, wait and lock.
    public func unlock(_ user: UserID) async throws(ServiceError) {
        do { _ = try await redis.send(["DEL", userKey(user, "throttle"), userKey(user, "reset-throttle")]) } catch { throw ServiceError.unavailable(error) }
        logger.notice("second step unlocked by an administrator", metadata: ["user": "\(user)"])
    }

    /// `DELETE /v1/users/{user}/two-step` (lost phone): removes TOTP, backup codes, app passwords,
    /// remembered devices and every session.
    public func adminReset(_ user: UserID) async throws(ServiceError) {
        try await removeSecondStep(user: user)
        do { _ = try await redis.send(["DEL", userKey(user, "devices"), userKey(user, "throttle")]) } catch { throw ServiceError.unavailable(error) }
        try await revokeAllSessions(of: user)
        logger.notice("two-step reset by an administrator", metadata: ["user": "\(user)"])
    }

    // MARK: Policy

    /// `GET /v1/domains/{domain}/policy`.
    public func policy(of domain: DomainName) -> DomainPolicy { view.policy(for: domain.value) }

    /// `PUT /v1/domains/{domain}/policy`: checks it (``DomainPolicy/validate()``), stores it and
    /// tells every node.
    public func setPolicy(_ policy: DomainPolicy, for domain: DomainName) async throws(ServiceError) {
        try policy.validate()
        do {
            _ = try await redis.send(["HSET", keys.global("policies"), domain.value, PolicyCodec.encode(policy)])
            try await feed.publish(.policyChanged(domain: domain.value, policy: policy), now: now)
        } catch { throw ServiceError.unavailable(error) }
        logger.notice("domain policy changed", metadata: ["domain": "\(domain.value)", "mode": "\(policy.mode.rawValue)"])
    }

    // MARK: Import

    /// `POST /v1/users/import`: NDJSON `{"user","totp_secret"?,"recovery_email"?,"verified"?}`.
    /// Each line is checked on its own; bad lines are reported and skipped, good ones land.
    public func importUsers(ndjson: String) async -> [ImportLineResult] {
        var results: [ImportLineResult] = []
        var lineNumber = 0
        for raw in ndjson.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            do throws(ServiceError) {
                let user = try await importLine(line)
                results.append(ImportLineResult(line: lineNumber, user: user.value, ok: true))
            } catch {
                results.append(ImportLineResult(line: lineNumber, user: nil, ok: false, error: error.detail))
            }
        }
        return results
    }

    private struct ImportRecord: Decodable {
        var user: String
        var totp_secret: String?
        var recovery_email: String?
        var verified: Bool?
    }

    private func importLine(_ line: String) async throws(ServiceError) -> UserID {
        let data = Data(line.utf8)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ServiceError(.invalidRequest, "not a JSON object")
        }
        let allowed: Set<String> = ["user", "totp_secret", "recovery_email", "verified"]
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) { throw ServiceError(.invalidRequest, "unknown field \(unknown)") }
        // JSONDecoder is strict about types (a number is not a boolean, null is not a string).
        guard let record = try? JSONDecoder().decode(ImportRecord.self, from: data) else {
            throw ServiceError(.invalidRequest, "fields have the wrong types (user, totp_secret, recovery_email: strings; verified: boolean)")
        }
        guard let user = UserID(record.user) else { throw ServiceError(.invalidRequest, "user must be an email address") }
        var fields: [String] = []
        var credentialChanged = false
        if let text = record.totp_secret {
            guard let secret = OTPSecret.parse(base32: text) else {
                throw ServiceError(.invalidRequest, "totp_secret must be base32 of 10 to 128 bytes")
            }
            let sealed: String
            do { sealed = try secrets.seal(secret, user: user.value, purpose: "totp") } catch { throw ServiceError(.unavailable, "cannot seal secret", underlying: error) }
            fields += ["totp", sealed, "method", "totp", "totp_since", String(now)]
            credentialChanged = true
        }
        if let email = record.recovery_email {
            guard let address = UserID(email) else { throw ServiceError(.invalidRequest, "recovery_email must be an email address") }
            fields += ["recovery_email", address.value, "recovery_verified", record.verified == true ? "1" : "0"]
        } else if record.verified != nil {
            throw ServiceError(.invalidRequest, "verified needs recovery_email")
        }
        guard !fields.isEmpty else { throw ServiceError(.invalidRequest, "nothing to import for this user") }
        do {
            var commands = [RedisCommand((["HSET", userKey(user, "user")] + fields).map { $0 as any RedisArgumentConvertible })]
            if credentialChanged { commands.append(RedisCommand(["HINCRBY", userKey(user, "user"), "cred_version", 1])) }
            _ = try await redis.pipeline(commands)
            if credentialChanged { try await feed.publish(.credentialsChanged(user: user.value), now: now) }
        } catch { throw ServiceError.unavailable(error) }
        return user
    }
}
