import Logging
import Foundation
public import GatehouseCore
import GatehouseRedis

/// The answer of `login/start` and `login/finish`.
public enum LoginResult: Sendable {
    case authenticated(IssuedSession, remember: IssuedRemember?)
    case secondStep(challenge: String, expiresAt: Int64, methods: [SecondStepMethod])
    case enrollmentRequired(challenge: String, expiresAt: Int64)
}

/// What a sign-in challenge can be finished with, for the second-step page.
public struct SecondStepOptions: Sendable {
    public var user: UserID
    public var methods: [SecondStepMethod]
    /// The masked recovery address, when emailed codes are offered.
    public var emailSentTo: String?
    /// The domain's `remember_device_days` (0: remember-me is off).
    public var rememberDays: Int
}

extension Gatehouse {
    /// `POST /v1/login/start`, after the front end checked the primary password.
    public func startLogin(user: UserID, clientIP: String?, userAgent: String?, rememberToken: String? = nil) async throws(ServiceError) -> LoginResult {
        let policy = view.policy(for: user.domain)
        // The user record and the number of unused backup codes in one round trip.
        let record: UserRecord
        let backupCodes: Int
        let passkeys: Int
        do {
            let replies = try await redis.pipeline([
                RedisCommand(["HGETALL", userKey(user, "user")]), RedisCommand(["SCARD", userKey(user, "backup")]),
                RedisCommand(["HLEN", userKey(user, "passkeys")]),
            ])
            guard replies.count == 3, replies[0].array != nil else {
                throw RedisError(.unexpectedReply, "login/start: unexpected replies to HGETALL/SCARD/HLEN")
            }
            record = UserRecord(fields: Self.hash(replies[0]))
            backupCodes = Int(replies[1].integer ?? 0)
            passkeys = Int(replies[2].integer ?? 0)
        } catch {
            throw ServiceError.unavailable(error)
        }
        let now = self.now
        if let rememberToken, policy.mode != .disabled, record.twoStepEnabled,
           let device = try await useRememberToken(rememberToken, user: user, record: record, policy: policy, clientIP: clientIP, userAgent: userAgent) {
            let session = try await issueSession(user: user, epoch: record.epoch, methods: [.password, .remember], authTime: now, clientIP: clientIP, userAgent: userAgent)
            return .authenticated(session, remember: device)
        }
        if policy.mode == .disabled || (!record.twoStepEnabled && policy.mode == .optional) {
            return .authenticated(try await issueSession(user: user, epoch: record.epoch, methods: [.password], authTime: now, clientIP: clientIP, userAgent: userAgent), remember: nil)
        }
        if !record.twoStepEnabled {
            let (token, expires) = try challenge(user: user, epoch: record.epoch, purpose: .enroll)
            return .enrollmentRequired(challenge: token, expiresAt: expires)
        }
        let (token, expires) = try challenge(user: user, epoch: record.epoch, purpose: .login)
        var methods: [SecondStepMethod] = []
        if record.method == .totp, record.totpEnvelope != nil {
            methods.append(.totp)
            // The finish that usually follows on this node then needs no read of its own (a
            // finish on another node reads the record once and caches it there).
            warmTOTPCache(user: user, record: record)
        }
        if Self.offersEmailCodes(record: record, policy: policy) { methods.append(.email) }
        if passkeys > 0, policy.methods.contains(.passkey) { methods.append(.passkey) }
        if backupCodes > 0 { methods.append(.backupCode) }
        return .secondStep(challenge: token, expiresAt: expires, methods: methods)
    }

    /// Whether a sign-in offers codes mailed to the recovery address: when they are the account's
    /// second step, or — "check your Authenticator App or your Recovery Email" — when the domain
    /// allows the email method and the account has a verified recovery address.
    static func offersEmailCodes(record: UserRecord, policy: DomainPolicy) -> Bool {
        guard record.recoveryEmail != nil, record.recoveryVerified else { return false }
        return record.method == .email || policy.methods.contains(.email)
    }

    /// What the second-step page offers for a sign-in challenge: the methods `login/start`
    /// listed, where emailed codes go (masked), and whether "Remember this device" may be offered.
    public func secondStepOptions(challenge: String) async throws(ServiceError) -> SecondStepOptions {
        let (_, user) = try verifyChallenge(challenge, purpose: .login)
        let policy = view.policy(for: user.domain)
        let record = try await loadUser(user)
        let backupCodes: Int, passkeys: Int
        do {
            let replies = try await redis.pipeline([RedisCommand(["SCARD", userKey(user, "backup")]), RedisCommand(["HLEN", userKey(user, "passkeys")])])
            backupCodes = Int(replies.first?.integer ?? 0)
            passkeys = Int(replies.last?.integer ?? 0)
        } catch { throw ServiceError.unavailable(error) }
        var methods: [SecondStepMethod] = []
        if record.method == .totp, record.totpEnvelope != nil { methods.append(.totp) }
        let email = Self.offersEmailCodes(record: record, policy: policy)
        if email { methods.append(.email) }
        if passkeys > 0, policy.methods.contains(.passkey) { methods.append(.passkey) }
        if backupCodes > 0 { methods.append(.backupCode) }
        return SecondStepOptions(
            user: user, methods: methods, emailSentTo: email ? record.recoveryEmail.map(Self.maskAddress) : nil,
            rememberDays: policy.rememberDeviceDays
        )
    }

    func challenge(user: UserID, epoch: UInt64, purpose: ChallengeClaims.Purpose) throws(ServiceError) -> (String, Int64) {
        let now = self.now
        let expires = now + configuration.lifetimes.challengeSeconds
        let claims = ChallengeClaims(common: CommonClaims(user: user.value, issuedAt: now, expiresAt: expires, epoch: epoch), challengeID: try newID(), purpose: purpose)
        do { return (try tokens.sign(claims), expires) } catch { throw ServiceError(.unavailable, "cannot sign challenge", underlying: error) }
    }

    /// Verifies a challenge token of `purpose`; expired or bad ones are `challenge_expired`.
    public func verifyChallenge(_ token: String, purpose: ChallengeClaims.Purpose) throws(ServiceError) -> (ChallengeClaims, UserID) {
        guard let claims = try? tokens.verifyChallenge(token, now: now), claims.purpose == purpose, let user = UserID(signed: claims.common.user) else {
            throw ServiceError(.challengeExpired, "the challenge is invalid or has expired; start the login again")
        }
        if let epoch = view.epoch(of: user.value), claims.common.epoch < epoch {
            throw ServiceError(.challengeExpired, "the challenge is invalid or has expired; start the login again")
        }
        return (claims, user)
    }

    /// `POST /v1/login/finish`: an authenticator code, an emailed code or a backup code.
    public func finishLogin(challenge: String, method: SecondStepMethod, code: String, remember: Bool, clientIP: String?, userAgent: String?) async throws(ServiceError) -> LoginResult {
        let (claims, user) = try verifyChallenge(challenge, purpose: .login)
        let marker = userKey(user, "challenge", claims.challengeID)
        let amr: AuthMethods
        switch method {
        case .totp: amr = [.password, .otp]
        case .backupCode: amr = [.password, .backup]
        case .email: amr = [.password, .email]
        case .passkey: throw ServiceError(.invalidRequest, "method passkey takes a passkey assertion (the passkey member), not a code")
        }
        // One round trip: the script checks the code and, on success, records the session and
        // the event and returns the user's epoch, with which the token is signed afterwards.
        let prepared = try prepareSession(user: user, methods: amr, authTime: now, clientIP: clientIP, userAgent: userAgent)
        let signIn = SignIn(session: prepared)
        let epoch: UInt64
        switch method {
        case .totp:
            epoch = try await checkTOTP(user: user, code: code, challengeMarker: marker, clientIP: clientIP, context: "login", signIn: signIn)
        case .backupCode:
            epoch = try await checkBackupCode(user: user, code: code, challengeMarker: marker, clientIP: clientIP, signIn: signIn)
        case .email:
            // Codes are only ever mailed where `offersEmailCodes` allows it, bound to this
            // challenge; for any other account there is nothing to match.
            epoch = try await checkEmailCode(
                user: user, code: code, record: userKey(user, "email-code"), challengeID: claims.challengeID,
                challengeMarker: marker, clientIP: clientIP, context: "login", signIn: signIn
            )
        case .passkey:
            preconditionFailure("refused above")
        }
        return try await completeSignIn(prepared, user: user, epoch: epoch, remember: remember, clientIP: clientIP, userAgent: userAgent)
    }

    /// `POST /v1/login/finish` for a caller outside Swift concurrency (the HTTP edge's event
    /// loop): the same sign-in, with the same answers, as
    /// ``finishLogin(challenge:method:code:remember:clientIP:userAgent:)``.
    ///
    /// The common case — an authenticator code, no remembered device, the user's secret in the
    /// node's cache, the address budget checked by the script itself — is the script's one
    /// round trip with `completion` where the Redis client hands the reply over (the caller's
    /// event loop, or the pool's I/O thread), and no task. Anything else
    /// (another method, a remembered device, a cache miss, a credential that changed since it
    /// was cached) runs the async sign-in in a task, which calls `completion` when done.
    public func finishLogin(
        challenge: String, method: SecondStepMethod, code: String, remember: Bool, clientIP: String?, userAgent: String?,
        completion: @escaping @Sendable (Result<LoginResult, ServiceError>) -> Void
    ) {
        @Sendable func inTask() {
            Task {
                do throws(ServiceError) {
                    completion(.success(try await finishLogin(
                        challenge: challenge, method: method, code: code, remember: remember, clientIP: clientIP, userAgent: userAgent
                    )))
                } catch {
                    completion(.failure(error))
                }
            }
        }
        guard method == .totp, !remember else { return inTask() }
        let user: UserID, prepared: PreparedSession?, candidate: CodeChecker.Candidate, version: String
        let keys: CodeChecker.Keys, effects: CodeChecker.Effects
        do throws(ServiceError) {
            let (claims, challengeUser) = try verifyChallenge(challenge, purpose: .login)
            user = challengeUser
            let parsed = try parseTOTPCode(code)
            guard let entry = totpCache.get(user.value) else { return inTask() }
            (candidate, version) = (totpCandidate(parsed, entry), entry.version)
            // A code that matches no step cannot succeed (the script refuses it whatever else it
            // finds), so a wrong code — what an attacker sends — costs no session id and no record.
            let matched = if case .totp(matchedStep: .some) = candidate { true } else { false }
            prepared = matched ? try prepareSession(user: user, methods: [.password, .otp], authTime: now, clientIP: clientIP, userAgent: userAgent) : nil
            (keys, effects) = checkArguments(
                user: user, record: userKey(user, "totp", "last"), challengeMarker: userKey(user, "challenge", claims.challengeID),
                clientIP: clientIP, method: .totp, signIn: prepared.map(SignIn.init(session:)), budget: .secondStep
            )
        } catch {
            return completion(.failure(error))
        }
        guard checker.runsInOneCall(keys) else { return inTask() }
        checker.check(
            keys: keys, credentialVersion: version, candidate: candidate,
            challengeTTLSeconds: Self.challengeMarkerTTLSeconds(configuration), effects: effects
        ) { result in
            switch result {
            case .failure(let error):
                completion(.failure(ServiceError.unavailable(error)))
            case .success(.stale):
                // The script changed nothing: the async sign-in reloads the secret and checks again.
                self.totpCache.remove(user.value)
                inTask()
            case .success(let outcome):
                completion(Result { () throws(ServiceError) -> LoginResult in
                    let epoch = try self.conclude(outcome, user: user, method: .totp, context: "login")
                    // Accepted means matched, and a matched code has its session.
                    guard let prepared else { throw ServiceError(.unavailable, "code accepted without a match; try again", retryAfterSeconds: 1) }
                    return .authenticated(try self.signSession(prepared, epoch: epoch), remember: nil)
                })
            }
        }
    }

    /// After an accepted second step: the session token (signed with the epoch the check
    /// returned) and, when asked for, a remembered device.
    func completeSignIn(_ prepared: PreparedSession, user: UserID, epoch: UInt64, remember: Bool, clientIP: String?, userAgent: String?) async throws(ServiceError) -> LoginResult {
        let session = try signSession(prepared, epoch: epoch)
        var device: IssuedRemember?
        if remember {
            device = try await rememberDevice(user: user, epoch: epoch, clientIP: clientIP, userAgent: userAgent)
        }
        return .authenticated(session, remember: device)
    }

    /// Checks an authenticator code for `user` through the code-check script; returns on success
    /// and throws the caller-facing error otherwise. A replay and a wrong code throw the same.
    @discardableResult
    func checkTOTP(user: UserID, code: String, challengeMarker: String, clientIP: String?, context: String, pending: TOTP? = nil, signIn: SignIn? = nil) async throws(ServiceError) -> UInt64 {
        let parsed = try parseTOTPCode(code)
        var bypassCache = false
        for _ in 0..<2 {
            let entry: TOTPCache.Entry?
            if let pending { entry = TOTPCache.Entry(version: "", totp: pending) } else {
                entry = try await totp(for: user, bypassCache: bypassCache)
            }
            // With no enrolment there is no match and no version to check: the attempt counts
            // as a failure exactly like a wrong code, so an unenrolled user looks the same.
            let outcome = try await runCheck(
                user: user, record: userKey(user, "totp", "last"), credentialVersion: entry?.version ?? "",
                candidate: totpCandidate(parsed, entry), challengeMarker: challengeMarker, clientIP: clientIP,
                method: .totp, signIn: signIn
            )
            if outcome == .stale {
                // The cached credential is older than the stored one: reload once and retry.
                totpCache.remove(user.value)
                bypassCache = true
                continue
            }
            return try conclude(outcome, user: user, method: .totp, context: context)
        }
        throw ServiceError(.unavailable, "credential changed during the check; try again", retryAfterSeconds: 1)
    }

    /// An authenticator code as its number, or the caller-facing error for anything else.
    func parseTOTPCode(_ code: String) throws(ServiceError) -> UInt32 {
        guard let parsed = HOTP.parse(code, digits: configuration.totp.digits) else {
            throw ServiceError(.invalidRequest, "code must be exactly \(configuration.totp.digits) digits")
        }
        return parsed
    }

    /// What the script checks for an authenticator code: the step `entry`'s secret shows it at
    /// (by Redis's clock), or none.
    func totpCandidate(_ parsed: UInt32, _ entry: TOTPCache.Entry?) -> CodeChecker.Candidate {
        .totp(matchedStep: entry?.totp.validate(parsed, at: redisNow, window: configuration.totp.window)?.step)
    }

    /// Checks (and spends) a backup code.
    @discardableResult
    func checkBackupCode(user: UserID, code: String, challengeMarker: String, clientIP: String?, signIn: SignIn? = nil) async throws(ServiceError) -> UInt64 {
        let normalized = Self.normalizeBackupCode(code)
        guard normalized.utf8.count == 10, normalized.utf8.allSatisfy({ Self.backupAlphabet.contains($0) }) else {
            throw ServiceError(.invalidRequest, "a backup code is 10 characters, xxxxx-xxxxx")
        }
        let outcome = try await runCheck(
            user: user, record: userKey(user, "backup"), credentialVersion: "",
            candidate: .backupCode(hash: keyedHash(normalized)), challengeMarker: challengeMarker, clientIP: clientIP,
            method: .backupCode, signIn: signIn
        )
        let epoch = try conclude(outcome, user: user, method: .backupCode, context: "login")
        Task { await self.event(user, "backup_code_used", clientIP: clientIP) }
        return epoch
    }

    /// How long a completed challenge's marker lives: past the challenge's own expiry.
    public static func challengeMarkerTTLSeconds(_ configuration: GatehouseConfiguration) -> Int {
        Int(configuration.lifetimes.challengeSeconds) + 60
    }

    /// A sign-in the code check completes: the session the script records on success.
    struct SignIn: Sendable {
        var session: PreparedSession
    }

    /// Runs the code-check script. The script also writes the attempt's security event
    /// (`second_step_failed`/`_replay`/`_throttled`, with `method` as detail) and, for a
    /// sign-in, the session record and `second_step_succeeded`.
    ///
    /// `throttle` names the failure budget the attempt counts against: the user's second-step
    /// throttle by default; password-reset codes have one of their own (``Budget``), so that
    /// nobody can push a user's sign-in into waits or a lock without their password.
    func runCheck(
        user: UserID, record: String, credentialVersion: String, candidate: CodeChecker.Candidate,
        challengeMarker: String, clientIP: String?, method: SecondStepMethod, signIn: SignIn? = nil, budget: Budget = .secondStep
    ) async throws(ServiceError) -> CodeChecker.Outcome {
        let (keys, effects) = checkArguments(
            user: user, record: record, challengeMarker: challengeMarker, clientIP: clientIP, method: method, signIn: signIn, budget: budget
        )
        do {
            return try await checker.check(
                keys: keys, credentialVersion: credentialVersion, candidate: candidate,
                challengeTTLSeconds: Self.challengeMarkerTTLSeconds(configuration), effects: effects
            )
        } catch {
            throw ServiceError.unavailable(error)
        }
    }

    /// The keys and effects of one code check (``runCheck(user:record:credentialVersion:candidate:challengeMarker:clientIP:method:signIn:budget:)``).
    func checkArguments(
        user: UserID, record: String, challengeMarker: String, clientIP: String?, method: SecondStepMethod, signIn: SignIn?, budget: Budget
    ) -> (CodeChecker.Keys, CodeChecker.Effects) {
        let keys = CodeChecker.Keys(
            userRecord: userKey(user, "user"), throttle: userKey(user, budget.throttleKey), modeRecord: record,
            ipCounter: ipKey(clientIP, user: user), challengeMarker: challengeMarker,
            sessions: userKey(user, "sessions"), events: userKey(user, Self.eventLogName)
        )
        var effects = CodeChecker.Effects()
        effects.eventDetail = method.rawValue
        effects.clientIP = clientIP
        effects.eventsKept = Self.eventsKept
        if let signIn {
            effects.session = (signIn.session.id, signIn.session.recordJSON)
            effects.sessionListTTLSeconds = Int(configuration.lifetimes.sessionAbsoluteSeconds)
            effects.successEvent = "second_step_succeeded"
        }
        return (keys, effects)
    }

    /// The per-user failure budgets of code checks.
    enum Budget {
        /// Sign-in, enrolment and settings codes: the throttle of `docs/api.md` (waits, then a lock).
        case secondStep
        /// Password-reset codes: the same rules on a counter of their own.
        case passwordReset

        var throttleKey: String {
            switch self {
            case .secondStep: "throttle"
            case .passwordReset: "reset-throttle"
            }
        }
    }

    /// A refused second step's notice line, unless the node already wrote ``failureLog``'s share
    /// of them in this window (then only counted; the next line written says how many were not).
    func logFailure(_ message: @autoclosure () -> Logger.Message, _ metadata: @autoclosure () -> Logger.Metadata) {
        guard logger.logLevel <= .notice else { return }
        let (write, leftOut) = failureLog.take()
        guard write else { return }
        var metadata = metadata()
        if leftOut > 0 { metadata["left_out"] = "\(leftOut)" }
        logger.notice(message(), metadata: metadata)
    }

    /// Turns a script outcome into success or the caller-facing error, logging a security event.
    /// Returns the user's epoch on success.
    @discardableResult
    func conclude(_ outcome: CodeChecker.Outcome, user: UserID, method: SecondStepMethod, context: String) throws(ServiceError) -> UInt64 {
        // Built only when a line is logged (an autoclosure below): most outcomes log at a level
        // below the configured one, and this runs on every code check.
        func meta() -> Logger.Metadata { ["user": "\(user)", "method": "\(method.rawValue)", "context": "\(context)"] }
        switch outcome {
        case .accepted(let epoch):
            logger.info("second step succeeded", metadata: meta())
            return epoch
        case .rejected(let remaining, let replay):
            // The script wrote the security event; the log line is within the failure budget.
            logFailure(replay ? "second step replay refused" : "second step failed", meta())
            throw ServiceError(.invalidCode, "the code is not valid", attemptsRemaining: remaining)
        case .throttled(let seconds):
            logFailure("second step throttled", meta())
            throw ServiceError(.rateLimited, "too many failed attempts; wait before trying again", retryAfterSeconds: seconds)
        case .locked:
            logger.warning("code checks locked", metadata: meta())
            throw ServiceError(.rateLimited, "locked after too many failures; an administrator must unlock it", retryAfterSeconds: 3600)
        case .ipLimited(let seconds):
            logFailure("client address over its failure budget", meta())
            throw ServiceError(.rateLimited, "too many failed attempts from this address", retryAfterSeconds: seconds)
        case .consumed:
            throw ServiceError(.challengeExpired, "the challenge was already used; start the login again")
        case .stale:
            throw ServiceError(.unavailable, "credential changed during the check; try again", retryAfterSeconds: 1)
        }
    }
}
