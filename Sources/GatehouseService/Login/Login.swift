import Logging
import Foundation
public import GatehouseCore
import GatehouseRedis

/// The answer of `login/start` and `login/finish` (SPEC §4).
public enum LoginResult: Sendable {
    case authenticated(IssuedSession)
    case secondStep(challenge: String, expiresAt: Int64, methods: [String])
    case enrollmentRequired(challenge: String, expiresAt: Int64)
}

extension Gatehouse {
    /// `POST /v1/login/start`, after the front end checked the primary password.
    public func startLogin(user: UserID, clientIP: String?, userAgent: String?) async throws(ServiceError) -> LoginResult {
        let policy = view.policy(for: user.domain)
        let record = try await loadUser(user)
        let now = self.now
        if policy.mode == .disabled || (!record.twoStepEnabled && policy.mode == .optional) {
            return .authenticated(try await issueSession(user: user, epoch: record.epoch, methods: [.password], authTime: now, clientIP: clientIP, userAgent: userAgent))
        }
        if !record.twoStepEnabled {
            let (token, expires) = try challenge(user: user, epoch: record.epoch, purpose: .enroll)
            return .enrollmentRequired(challenge: token, expiresAt: expires)
        }
        let (token, expires) = try challenge(user: user, epoch: record.epoch, purpose: .login)
        var methods: [String] = []
        if record.method == .totp, record.totpEnvelope != nil { methods.append("totp") }
        if record.method == .email { methods.append("email") }
        if (try? await redis.send(["SCARD", userKey(user, "backup")]).integer) ?? 0 > 0 { methods.append("backup_code") }
        return .secondStep(challenge: token, expiresAt: expires, methods: methods)
    }

    func challenge(user: UserID, epoch: UInt64, purpose: ChallengeClaims.Purpose) throws(ServiceError) -> (String, Int64) {
        let now = self.now
        let expires = now + configuration.lifetimes.challengeSeconds
        let claims = ChallengeClaims(common: CommonClaims(user: user.value, issuedAt: now, expiresAt: expires, epoch: epoch), challengeID: try newID(), purpose: purpose)
        do { return (try tokens.sign(claims), expires) } catch { throw ServiceError(.unavailable, "cannot sign challenge", underlying: error) }
    }

    /// Verifies a challenge token of `purpose`; expired or bad ones are `challenge_expired`.
    public func verifyChallenge(_ token: String, purpose: ChallengeClaims.Purpose) throws(ServiceError) -> (ChallengeClaims, UserID) {
        guard let claims = try? tokens.verifyChallenge(token, now: now), claims.purpose == purpose, let user = UserID(claims.common.user) else {
            throw ServiceError(.challengeExpired, "the challenge is invalid or has expired; start the login again")
        }
        if let epoch = view.epoch(of: user.value), claims.common.epoch < epoch {
            throw ServiceError(.challengeExpired, "the challenge is invalid or has expired; start the login again")
        }
        return (claims, user)
    }

    /// `POST /v1/login/finish` with an authenticator code.
    public func finishLogin(challenge: String, method: String, code: String, clientIP: String?, userAgent: String?) async throws(ServiceError) -> LoginResult {
        let (claims, user) = try verifyChallenge(challenge, purpose: .login)
        guard method == "totp" else {
            // Email and backup codes arrive with the next issue; refuse plainly rather than pretend.
            throw ServiceError(.methodNotAllowed, "method \(method) is not available for this login")
        }
        try await checkTOTP(user: user, code: code, challengeMarker: userKey(user, "challenge", claims.challengeID), clientIP: clientIP, context: "login")
        let record = try await loadUser(user)
        return .authenticated(try await issueSession(user: user, epoch: record.epoch, methods: [.password, .otp], authTime: now, clientIP: clientIP, userAgent: userAgent))
    }

    /// Checks an authenticator code for `user` through the code-check script; returns on success
    /// and throws the caller-facing error otherwise. A replay and a wrong code throw the same.
    func checkTOTP(user: UserID, code: String, challengeMarker: String, clientIP: String?, context: String, pending: TOTP? = nil) async throws(ServiceError) {
        guard let parsed = HOTP.parse(code, digits: configuration.totp.digits) else {
            throw ServiceError(.invalidRequest, "code must be exactly \(configuration.totp.digits) digits")
        }
        var bypassCache = false
        for _ in 0..<2 {
            let entry: TOTPCache.Entry?
            if let pending { entry = TOTPCache.Entry(version: "", totp: pending) } else {
                entry = try await totp(for: user, bypassCache: bypassCache)
            }
            let match = entry?.totp.validate(parsed, at: redisNow, window: configuration.totp.window)
            let keys = CodeChecker.Keys(
                userRecord: userKey(user, "user"), throttle: userKey(user, "throttle"), replayMarker: userKey(user, "totp", "last"),
                ipCounter: ipKey(clientIP, user: user), challengeMarker: challengeMarker
            )
            let outcome: CodeChecker.Outcome
            do {
                // With no enrolment there is no match and no version to check: the attempt counts
                // as a failure exactly like a wrong code, so an unenrolled user looks the same.
                outcome = try await checker.check(
                    keys: keys, credentialVersion: entry?.version ?? "", matchedStep: match?.step,
                    replayTTLSeconds: 86400, challengeTTLSeconds: Int(configuration.lifetimes.challengeSeconds) + 60
                )
            } catch {
                throw ServiceError.unavailable(error)
            }
            switch outcome {
            case .accepted:
                logger.info("second step succeeded", metadata: ["user": "\(user)", "method": "totp", "context": "\(context)"])
                return
            case .rejected(let remaining, let replay):
                logger.notice(replay ? "second step replay refused" : "second step failed", metadata: ["user": "\(user)", "method": "totp", "context": "\(context)"])
                throw ServiceError(.invalidCode, "the code is not valid", attemptsRemaining: remaining)
            case .throttled(let seconds):
                logger.notice("second step throttled", metadata: ["user": "\(user)"])
                throw ServiceError(.rateLimited, "too many failed attempts; wait before trying again", retryAfterSeconds: seconds)
            case .locked:
                logger.warning("second step locked", metadata: ["user": "\(user)"])
                throw ServiceError(.rateLimited, "second step locked after too many failures; an administrator must unlock it", retryAfterSeconds: 3600)
            case .ipLimited(let seconds):
                logger.notice("client address over its failure budget", metadata: ["user": "\(user)"])
                throw ServiceError(.rateLimited, "too many failed attempts from this address", retryAfterSeconds: seconds)
            case .consumed:
                throw ServiceError(.challengeExpired, "the challenge was already used; start the login again")
            case .stale:
                // The cached credential is older than the stored one: reload once and retry.
                totpCache.remove(user.value)
                bypassCache = true
                continue
            }
        }
        throw ServiceError(.unavailable, "credential changed during the check; try again", retryAfterSeconds: 1)
    }
}
