import Foundation
public import GatehouseCore
import GatehouseCrypto
import GatehouseRedis
import Logging

/// What an emailed code is for (the message text differs).
public enum CodePurpose: Sendable {
    case verifyRecoveryAddress, signIn, passwordReset
}

/// Delivers a code by mail. The SMTP implementation lives at the edge (`GatehouseMail`); a
/// deployment without SMTP gets `NoMailer`, whose every send is a clear 503.
public protocol CodeMailer: Sendable {
    /// Sends `code` to `address`; throws when delivery failed after its retries.
    func send(code: String, purpose: CodePurpose, to address: String, validMinutes: Int) async throws
}

/// The mailer when no `GATEHOUSE_SMTP_URL` is configured.
public struct NoMailer: CodeMailer {
    public init() {}
    public func send(code: String, purpose: CodePurpose, to address: String, validMinutes: Int) async throws {
        throw ServiceError(.unavailable, "mail delivery is not configured (GATEHOUSE_SMTP_URL)", retryAfterSeconds: 60)
    }
}

/// Stores a fresh email code (keyed hash, bound to `cid`, resend replaces the previous code) while
/// enforcing the per-user send budget — atomically. KEYS: 1 send counter, 2 code record.
/// ARGV: 1 hash, 2 cid, 3 TTL s, 4 sends allowed, 5 window s, 6 extra field name, 7 its value.
/// Replies: `{"ok"}` or `{"limited", ttl}`.
enum EmailCodeStoreScript {
    static let script = RedisScript(#"""
local sends = tonumber(redis.call('GET', KEYS[1]) or '0')
if sends >= tonumber(ARGV[4]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {'limited', ttl}
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5])) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'h', ARGV[1], 'cid', ARGV[2], 'tries', 0)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], ARGV[6], ARGV[7]) end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return {'ok'}
"""#)
}

extension Gatehouse {
    static let emailCodeMinutes = 10
    static let emailSendsPerWindow = 3
    static let emailSendWindowSeconds = 900

    /// "j***@example.org".
    public static func maskAddress(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@"), at != address.startIndex else { return "***" }
        return String(address[address.startIndex]) + "***" + address[at...]
    }

    func sixDigitCode() throws(ServiceError) -> String {
        do { return HOTP.format(try random.uniform(below: 1_000_000), digits: 6) } catch {
            throw ServiceError(.unavailable, "random source failed", underlying: error)
        }
    }

    /// Stores a code under `record` (bound to `cid`) within the send budget, mails it, and on a
    /// failed delivery removes it again (a failed delivery answers 503 and leaves nothing behind;
    /// the send still counts against the budget, so failures cannot be used to spam).
    func storeAndMail(user: UserID, record: String, cid: String, purpose: CodePurpose, to address: String, extra: (String, String)? = nil) async throws(ServiceError) -> Int64 {
        let code = try sixDigitCode()
        let ttl = Self.emailCodeMinutes * 60
        let reply: RedisValue
        do {
            // Reset mails have a send budget of their own: they never starve sign-in codes.
            reply = try await redis.eval(
                EmailCodeStoreScript.script, keys: [userKey(user, purpose == .passwordReset ? "reset-sends" : "email-sends"), record],
                arguments: [emailCodeHash(code), cid, ttl, Self.emailSendsPerWindow, Self.emailSendWindowSeconds, extra?.0 ?? "", extra?.1 ?? ""]
            )
        } catch { throw ServiceError.unavailable(error) }
        if reply.array?.first?.string == "limited" {
            throw ServiceError(.rateLimited, "at most \(Self.emailSendsPerWindow) codes per 15 minutes", retryAfterSeconds: Int(reply.array?[1].integer ?? 60))
        }
        do {
            try await mailer.send(code: code, purpose: purpose, to: address, validMinutes: Self.emailCodeMinutes)
        } catch {
            _ = try? await redis.send(["DEL", record])
            logger.warning("code mail not delivered", metadata: ["user": "\(user)", "error": "\(type(of: error))"])
            if let error = error as? ServiceError { throw error }
            throw ServiceError(.unavailable, "the code could not be mailed; try again shortly", retryAfterSeconds: 30, underlying: error)
        }
        return now + Int64(ttl)
    }

    /// How an emailed code is stored and compared: keyed, and apart from other keyed hashes.
    func emailCodeHash(_ code: String) -> String { keyedHash("email:" + code) }

    /// An emailed code is six digits; anything else is refused before Redis is asked.
    static func requireEmailCodeFormat(_ code: String) throws(ServiceError) {
        guard HOTP.parse(code, digits: 6) != nil else { throw ServiceError(.invalidRequest, "code must be exactly 6 digits") }
    }

    /// Checks an emailed code stored under `record` (by ``storeAndMail(user:record:cid:purpose:to:extra:)``)
    /// and bound to `challengeID` — a login's challenge id, `recovery` or `reset` — through the
    /// code-check script; at most 5 tries per code. Returns the user's epoch on success and throws
    /// the caller-facing error otherwise.
    @discardableResult
    func checkEmailCode(
        user: UserID, code: String, record: String, challengeID: String, challengeMarker: String, clientIP: String?,
        context: String, signIn: SignIn? = nil, budget: Budget = .secondStep
    ) async throws(ServiceError) -> UInt64 {
        try Self.requireEmailCodeFormat(code)
        let outcome = try await runCheck(
            user: user, record: record, credentialVersion: "",
            candidate: .emailCode(hash: emailCodeHash(code), challengeID: challengeID, triesPerCode: 5),
            challengeMarker: challengeMarker, clientIP: clientIP, method: .email, signIn: signIn, budget: budget
        )
        return try conclude(outcome, user: user, method: .email, context: context)
    }

    // MARK: Recovery address

    /// `PUT /v1/me/recovery-email {"email"}`: mails a code to the new address.
    public func setRecoveryEmail(_ principal: Principal, address text: String) async throws(ServiceError) -> Int64 {
        let user = principal.user
        try requireTwoStepAllowed(user)
        try requireFreshSignIn(principal)
        guard let address = UserID(text) else { throw ServiceError(.invalidRequest, "email must be an email address") }
        guard address != user else { throw ServiceError(.invalidRequest, "the recovery address must be another mailbox") }
        let expires = try await storeAndMail(
            user: user, record: userKey(user, "recovery-pending"), cid: "recovery", purpose: .verifyRecoveryAddress,
            to: address.value, extra: ("address", address.value)
        )
        await event(user, "recovery_email_code_sent", detail: Self.maskAddress(address.value))
        return expires
    }

    /// `POST /v1/me/recovery-email/confirm {"code"}`.
    public func confirmRecoveryEmail(_ principal: Principal, code: String, clientIP: String?) async throws(ServiceError) -> String {
        let user = principal.user
        // The format first: a malformed code is a 400 whether or not an address is waiting.
        try Self.requireEmailCodeFormat(code)
        let address: String?
        do { address = try await redis.send(["HGET", userKey(user, "recovery-pending"), "address"]).string } catch { throw ServiceError.unavailable(error) }
        guard let address else { throw ServiceError(.invalidCode, "no recovery address is waiting for confirmation (codes last 10 minutes)") }
        try await checkEmailCode(
            user: user, code: code, record: userKey(user, "recovery-pending"), challengeID: "recovery",
            challengeMarker: userKey(user, "recovery-confirmed", try newID()), clientIP: clientIP, context: "recovery-address"
        )
        do { _ = try await redis.send(["HSET", userKey(user, "user"), "recovery_email", address, "recovery_verified", "1"]) } catch {
            throw ServiceError.unavailable(error)
        }
        await event(user, "recovery_email_verified", detail: Self.maskAddress(address))
        return address
    }

    // MARK: Email codes as the second step

    /// `POST /v1/me/two-step {"method":"email"}`: two-step on with mailed codes.
    public func enableEmailTwoStep(_ principal: Principal, clientIP: String?, userAgent: String?) async throws(ServiceError) -> TwoStepEnabled {
        let user = principal.user
        let policy = view.policy(for: user.domain)
        guard policy.mode != .disabled else { throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)") }
        guard policy.methods.contains(.email) else { throw ServiceError(.methodNotAllowed, "the domain does not allow emailed codes") }
        try requireFreshSignIn(principal)
        let record = try await loadUser(user)
        guard record.recoveryVerified, record.recoveryEmail != nil else {
            throw ServiceError(.recoveryEmailRequired, "a verified recovery email is required before two-step can be turned on")
        }
        var enabled = try await enableTwoStep(user: user, method: .email, extraFields: [])
        if case .challenge = principal {
            enabled.session = try await issueSession(user: user, epoch: record.epoch, methods: [.password, .email], authTime: now, clientIP: clientIP, userAgent: userAgent)
        }
        return enabled
    }

    /// `POST /v1/login/email-code {"challenge"}`: mails a sign-in code bound to this login.
    public func sendLoginCode(challenge: String) async throws(ServiceError) -> (sentTo: String, expiresAt: Int64) {
        let (claims, user) = try verifyChallenge(challenge, purpose: .login)
        let record = try await loadUser(user)
        guard Self.offersEmailCodes(record: record, policy: view.policy(for: user.domain)), let address = record.recoveryEmail else {
            throw ServiceError(.methodNotAllowed, "emailed codes are not a second step of this account")
        }
        let expires = try await storeAndMail(user: user, record: userKey(user, "email-code"), cid: claims.challengeID, purpose: .signIn, to: address)
        return (Self.maskAddress(address), expires)
    }

    // MARK: Recovery (password reset)

    /// `POST /v1/recovery/start {"user"}`: answers at once, the same for every user; the lookup
    /// and the mail happen afterwards, so timing reveals nothing.
    public func startRecovery(user: UserID) {
        Task {
            do throws(ServiceError) {
                let record = try await loadUser(user)
                guard let address = record.recoveryEmail, record.recoveryVerified else { return }
                _ = try await storeAndMail(user: user, record: userKey(user, "reset-code"), cid: "reset", purpose: .passwordReset, to: address)
                await event(user, "recovery_code_sent", detail: Self.maskAddress(address))
            } catch {
                logger.notice("recovery code not sent", metadata: ["user": "\(user)", "reason": "\(error.code.name)"])
            }
        }
    }

    /// `POST /v1/recovery/finish {"user","code"}` → a single-use reset token (15 min).
    public func finishRecovery(user: UserID, code: String, clientIP: String?) async throws(ServiceError) -> (token: String, expiresAt: Int64) {
        // Anyone who knows an address can try reset codes: they count against the reset budget,
        // never the sign-in throttle.
        try await checkEmailCode(
            user: user, code: code, record: userKey(user, "reset-code"), challengeID: "reset",
            challengeMarker: userKey(user, "reset-done", try newID()), clientIP: clientIP, context: "recovery", budget: .passwordReset
        )
        let jti = try newID()
        let expires = now + configuration.lifetimes.resetSeconds
        let record = try await loadUser(user)
        let token: String
        do {
            token = try tokens.sign(ResetClaims(common: CommonClaims(user: user.value, issuedAt: now, expiresAt: expires, epoch: record.epoch), tokenID: jti))
            _ = try await redis.send(["SET", userKey(user, "reset", jti), "1", "EX", Int(configuration.lifetimes.resetSeconds)])
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "recovery_verified", clientIP: clientIP)
        return (token, expires)
    }

    /// `POST /v1/recovery/consume {"reset_token"}`: the user the first time, 401 after.
    public func consumeReset(_ token: String) async throws(ServiceError) -> UserID {
        guard let claims = try? tokens.verifyReset(token, now: now), let user = UserID(claims.common.user) else {
            throw ServiceError(.invalidToken, "reset token invalid or expired")
        }
        let removed: Int64
        do { removed = try await redis.send(["DEL", userKey(user, "reset", claims.tokenID)]).integer ?? 0 } catch { throw ServiceError.unavailable(error) }
        guard removed == 1 else {
            // The same answer as a forged or expired token; the reuse goes to the log.
            logger.notice("refused a password-reset token used before", metadata: ["user": "\(user)"])
            throw ServiceError(.invalidToken, "reset token invalid or expired")
        }
        await event(user, "recovery_consumed")
        return user
    }
}
