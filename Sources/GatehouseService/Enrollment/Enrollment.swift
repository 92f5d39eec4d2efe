import Logging
import Foundation
public import GatehouseCore
import GatehouseCrypto
import GatehouseRedis

/// Who a self-service call is for: a signed-in session, or (while enrolling under an enforced
/// policy) the login challenge standing in for it.
public enum Principal: Sendable {
    case session(SessionClaims, UserID)
    case challenge(ChallengeClaims, UserID)

    public var user: UserID {
        switch self {
        case .session(_, let u), .challenge(_, let u): u
        }
    }
}

/// `POST /v1/me/totp`'s answer.
public struct PendingTOTP: Sendable {
    public var secret: String
    public var otpauthURI: String
    public var qrSVG: String
    public var expiresAt: Int64
}

/// What turning two-step on returns.
public struct TwoStepEnabled: Sendable {
    public var method: DomainPolicy.Method
    public var backupCodes: [String]
    public var appPassword: (id: String, label: String, password: String)
    /// Present when the enrolment completed a login (under a challenge).
    public var session: IssuedSession?
}

extension Gatehouse {
    /// Resolves the caller of a self-service endpoint.
    public func principal(sessionToken: String?, challengeToken: String?) throws(ServiceError) -> Principal {
        if let sessionToken {
            let claims = try verifySession(sessionToken)
            guard let user = UserID(claims.common.user) else { throw ServiceError(.invalidToken, "session token invalid") }
            return .session(claims, user)
        }
        if let challengeToken {
            guard let claims = try? tokens.verifyChallenge(challengeToken, now: now), claims.purpose == .enroll, let user = UserID(claims.common.user) else {
                throw ServiceError(.invalidToken, "challenge token invalid or expired")
            }
            return .challenge(claims, user)
        }
        throw ServiceError(.invalidToken, "a Gatehouse-Session (or, while enrolling, Gatehouse-Challenge) is required")
    }

    /// Self-service for two-step settings is closed when the domain disables two-step.
    func requireTwoStepAllowed(_ user: UserID) throws(ServiceError) {
        guard view.policy(for: user.domain).mode != .disabled else {
            throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)")
        }
    }

    /// Factor changes need a fresh sign-in (auth_time under 10 minutes) or an enrolment challenge.
    func requireFreshSignIn(_ principal: Principal) throws(ServiceError) {
        switch principal {
        case .challenge: return
        case .session(let claims, _):
            guard now - claims.authTime <= configuration.lifetimes.reauthenticationSeconds else {
                throw ServiceError(.reauthenticationRequired, "sign in again (or enter a current code) to change two-step settings")
            }
        }
    }

    /// `POST /v1/me/totp`: a pending secret for 10 minutes.
    public func startTOTPEnrollment(_ principal: Principal) async throws(ServiceError) -> PendingTOTP {
        let user = principal.user
        let policy = view.policy(for: user.domain)
        guard policy.mode != .disabled else { throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)") }
        guard policy.methods.contains(.totp) else { throw ServiceError(.methodNotAllowed, "the domain does not allow authenticator apps") }
        try requireFreshSignIn(principal)
        let secret: [UInt8]
        do { secret = try OTPSecret.generate(random: random) } catch { throw ServiceError(.unavailable, "random source failed", underlying: error) }
        let uri = OTPAuthURI(issuer: configuration.issuer, account: user.value, secret: secret, digits: configuration.totp.digits, period: configuration.totp.period).uri
        let svg: String
        do { svg = try QRCode(encoding: uri).svg() } catch { throw ServiceError(.unavailable, "cannot render QR code", underlying: error) }
        let sealed: String
        do { sealed = try secrets.seal(secret, user: user.value, purpose: "totp-pending") } catch { throw ServiceError(.unavailable, "cannot seal secret", underlying: error) }
        let pendingID = try newID()
        let ttl = configuration.lifetimes.enrollmentPendingSeconds
        do {
            _ = try await redis.send(["HSET", userKey(user, "totp", "pending"), "secret", sealed, "id", pendingID])
            _ = try await redis.send(["EXPIRE", userKey(user, "totp", "pending"), Int(ttl)])
        } catch { throw ServiceError.unavailable(error) }
        logger.info("authenticator enrolment started", metadata: ["user": "\(user)"])
        return PendingTOTP(secret: Base32.encode(secret), otpauthURI: uri, qrSVG: svg, expiresAt: now + ttl)
    }

    /// The authenticator enrolment started and not yet confirmed (within its 10 minutes), as it
    /// was shown: the enrolment page shows the same QR code again after a mistyped code.
    public func pendingTOTPEnrollment(_ principal: Principal) async throws(ServiceError) -> PendingTOTP? {
        let user = principal.user
        let replies: [RedisValue]
        do {
            replies = try await redis.pipeline([
                RedisCommand(["HGET", userKey(user, "totp", "pending"), "secret"]), RedisCommand(["TTL", userKey(user, "totp", "pending")]),
            ])
        } catch { throw ServiceError.unavailable(error) }
        guard replies.count == 2, let sealed = replies[0].string, let ttl = replies[1].integer, ttl > 0,
              let secret = try? secrets.open(sealed, user: user.value, purpose: "totp-pending")
        else { return nil }
        let uri = OTPAuthURI(issuer: configuration.issuer, account: user.value, secret: secret, digits: configuration.totp.digits, period: configuration.totp.period).uri
        let svg: String
        do { svg = try QRCode(encoding: uri).svg() } catch { throw ServiceError(.unavailable, "cannot render QR code", underlying: error) }
        return PendingTOTP(secret: Base32.encode(secret), otpauthURI: uri, qrSVG: svg, expiresAt: now + ttl)
    }

    /// `POST /v1/me/totp/confirm`: checks a code from the pending secret and turns two-step on.
    public func confirmTOTPEnrollment(_ principal: Principal, code: String, clientIP: String?, userAgent: String?) async throws(ServiceError) -> TwoStepEnabled {
        let user = principal.user
        let policy = view.policy(for: user.domain)
        guard policy.mode != .disabled else { throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)") }
        let record = try await loadUser(user)
        guard record.recoveryVerified, record.recoveryEmail != nil else {
            throw ServiceError(.recoveryEmailRequired, "a verified recovery email is required before two-step can be turned on")
        }
        let pending: [String: String]
        do { pending = Self.hash(try await redis.send(["HGETALL", userKey(user, "totp", "pending")])) } catch { throw ServiceError.unavailable(error) }
        guard let sealed = pending["secret"], let pendingID = pending["id"],
              let secret = try? secrets.open(sealed, user: user.value, purpose: "totp-pending"),
              let totp = try? TOTP(secret: secret, digits: configuration.totp.digits, period: configuration.totp.period)
        else {
            throw ServiceError(.notEnrolled, "no authenticator enrolment is pending (it lasts 10 minutes); start again")
        }
        try await checkTOTP(user: user, code: code, challengeMarker: userKey(user, "totp", "pending", pendingID), clientIP: clientIP, context: "enroll", pending: totp)
        let final: String
        do { final = try secrets.seal(secret, user: user.value, purpose: "totp") } catch { throw ServiceError(.unavailable, "cannot seal secret", underlying: error) }
        var enabled = try await enableTwoStep(user: user, method: .totp, extraFields: ["totp", final, "totp_since", String(now)])
        _ = try? await redis.send(["DEL", userKey(user, "totp", "pending")])
        if case .challenge = principal {
            enabled.session = try await issueSession(user: user, epoch: record.epoch, methods: [.password, .otp], authTime: now, clientIP: clientIP, userAgent: userAgent)
        }
        logger.info("two-step enabled", metadata: ["user": "\(user)", "method": "totp"])
        return enabled
    }

    /// Writes the method, bumps the credential version, and makes the backup codes and the
    /// IMAP/POP/SMTP app password that turning two-step on brings (as SmarterMail does).
    func enableTwoStep(user: UserID, method: DomainPolicy.Method, extraFields: [String]) async throws(ServiceError) -> TwoStepEnabled {
        let backup = try newBackupCodes(for: user)
        let app = try makeAppPassword(user: user, label: "IMAP/POP/SMTP", services: Self.mailServices)
        var fields: [any RedisArgumentConvertible] = ["HSET", userKey(user, "user"), "method", method.rawValue]
        for f in extraFields { fields.append(f) }
        // Switching to emailed codes retires the authenticator secret; app passwords made before
        // (there should be none) do not outlive the switch either.
        var cleanup: [RedisCommand] = [RedisCommand((["DEL"] + appPasswordKeys(user)).map { $0 as any RedisArgumentConvertible })]
        if method == .email { cleanup.append(RedisCommand(["HDEL", userKey(user, "user"), "totp", "totp_since"])) }
        do {
            // MULTI/EXEC: the method, backup codes and app password land together or not at all.
            try await transaction(cleanup + [
                RedisCommand(fields),
                RedisCommand(["HINCRBY", userKey(user, "user"), "cred_version", 1]),
            ] + backup.commands + app.commands)
            try await feed.publish(.credentialsChanged(user: user.value), now: now)
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "two_step_enabled", detail: method.rawValue)
        return TwoStepEnabled(method: method, backupCodes: backup.codes, appPassword: (app.value.id, app.value.label, app.value.password), session: nil)
    }

    /// `DELETE /v1/me/two-step {"code"}`: turns two-step off after a current code.
    public func disableTwoStep(_ principal: Principal, code: String, clientIP: String?) async throws(ServiceError) {
        let user = principal.user
        let policy = view.policy(for: user.domain)
        guard policy.mode != .disabled else { throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)") }
        guard policy.mode != .enforced else { throw ServiceError(.forbidden, "\(user.domain) enforces two-step authentication; it cannot be turned off") }
        let record = try await loadUser(user)
        guard record.twoStepEnabled else { throw ServiceError(.notEnrolled, "two-step is not on") }
        let marker = userKey(user, "disable", try newID())
        // A current authenticator code, or a backup code (xxxxx-xxxxx) for a lost phone.
        if code.utf8.count == 6, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), record.method == .totp {
            try await checkTOTP(user: user, code: code, challengeMarker: marker, clientIP: clientIP, context: "disable")
        } else {
            try await checkBackupCode(user: user, code: code, challengeMarker: marker, clientIP: clientIP)
        }
        try await removeSecondStep(user: user)
        logger.info("two-step disabled", metadata: ["user": "\(user)"])
    }

    /// Removes TOTP, backup codes, passkeys and app passwords; bumps the credential version.
    func removeSecondStep(user: UserID) async throws(ServiceError) {
        do {
            try await transaction([
                RedisCommand(["HDEL", userKey(user, "user"), "method", "totp", "totp_since"]),
                RedisCommand(["HINCRBY", userKey(user, "user"), "cred_version", 1]),
                // Passkeys are a second step beside the others: they go with them.
                RedisCommand(["DEL", userKey(user, "backup"), userKey(user, "totp", "pending"), userKey(user, "passkeys"), userKey(user, "passkey-counts")] + appPasswordKeys(user)),
            ])
            try await feed.publish(.credentialsChanged(user: user.value), now: now)
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "two_step_disabled")
    }

    /// Runs `commands` as one MULTI/EXEC transaction on one connection (one write, one round
    /// trip); throws if Redis refused any of them.
    func transaction(_ commands: [RedisCommand]) async throws {
        let replies = try await redis.pipeline([RedisCommand(["MULTI"])] + commands + [RedisCommand(["EXEC"])])
        guard let exec = replies.last, case .array(let results) = exec, results.count == commands.count else {
            throw RedisError(.unexpectedReply, "transaction was not executed")
        }
        if let failure = results.first(where: { if case .error = $0 { return true } else { return false } }) {
            throw RedisError(.serverError, "transaction step failed: \(failure)")
        }
    }

    func appPasswordKeys(_ user: UserID) -> [String] {
        [userKey(user, "app-passwords"), userKey(user, "app-password-index"), userKey(user, "app-password-use")]
    }

    /// `POST /v1/me/backup-codes`: a new set; the old one dies.
    public func regenerateBackupCodes(_ principal: Principal) async throws(ServiceError) -> [String] {
        let user = principal.user
        try requireTwoStepAllowed(user)
        try requireFreshSignIn(principal)
        guard try await loadUser(user).twoStepEnabled else { throw ServiceError(.notEnrolled, "two-step is not on") }
        let backup = try newBackupCodes(for: user)
        // MULTI/EXEC: a login meanwhile sees the old set or the new one, never none.
        do { try await transaction(backup.commands) } catch { throw ServiceError.unavailable(error) }
        await event(user, "backup_codes_regenerated")
        return backup.codes
    }

    // MARK: Backup codes

    static let backupAlphabet = Array("23456789abcdefghjkmnpqrstuvwxyz".utf8)  // no 0/1/i/l/o

    /// A fresh set of backup codes for `user` and the commands that replace the stored set with
    /// it (keyed hashes of the normalised codes); the caller runs them in its transaction.
    func newBackupCodes(for user: UserID) throws(ServiceError) -> (codes: [String], commands: [RedisCommand]) {
        let codes = try makeBackupCodes()
        let key = userKey(user, "backup")
        let hashes = codes.map { keyedHash(Self.normalizeBackupCode($0)) as any RedisArgumentConvertible }
        return (codes, [RedisCommand(["DEL", key]), RedisCommand(["SADD", key] + hashes)])
    }

    func makeBackupCodes() throws(ServiceError) -> [String] {
        var codes: [String] = []
        for _ in 0..<10 {
            var chars: [UInt8] = []
            for i in 0..<10 {
                if i == 5 { chars.append(UInt8(ascii: "-")) }
                let index: UInt32
                do { index = try random.uniform(below: UInt32(Self.backupAlphabet.count)) } catch {
                    throw ServiceError(.unavailable, "random source failed", underlying: error)
                }
                chars.append(Self.backupAlphabet[Int(index)])
            }
            codes.append(String(decoding: chars, as: UTF8.self))
        }
        return codes
    }

    static func normalizeBackupCode(_ code: String) -> String {
        code.lowercased().filter { $0 != "-" && $0 != " " }
    }

}
