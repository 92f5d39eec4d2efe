import Logging
import Foundation
public import GatehouseCore
import GatehouseRedis

/// A freshly issued session.
public struct IssuedSession: Sendable {
    public var token: String
    public var id: String
    public var expiresAt: Int64
}

/// What `/v1/auth` and `/v1/sessions/verify` learn about a good session.
public struct VerifiedSession: Sendable {
    public var claims: SessionClaims
}

extension Gatehouse {
    /// A session about to be issued: everything but the epoch, which the code-check script
    /// returns (so a sign-in's session record is written by the same script, in the same round
    /// trip, and the token is signed after it).
    struct PreparedSession: Sendable {
        var user: UserID
        var id: String
        var methods: AuthMethods
        var authTime: Int64
        var issuedAt: Int64
        var expiresAt: Int64
        /// The record for the user's session list (`GET /v1/me/sessions`).
        var recordJSON: String
    }

    func prepareSession(user: UserID, methods: AuthMethods, authTime: Int64, clientIP: String?, userAgent: String?) throws(ServiceError) -> PreparedSession {
        let policy = view.policy(for: user.domain)
        let now = self.now
        let expires = min(now + Int64(policy.sessionHours) * 3600, authTime + configuration.lifetimes.sessionAbsoluteSeconds)
        // Written as bytes, keys in byte order (the text JSONText gives for the same object):
        // every sign-in builds one.
        var record = JSONWriter(capacity: 128 + (userAgent?.utf8.count ?? 0))
        record.raw("{\"amr\":"); record.strings(methods.strings)
        record.raw(",\"client_ip\":"); record.optionalString(clientIP)
        record.raw(",\"created_at\":"); record.integer(now)
        record.raw(",\"expires_at\":"); record.integer(expires)
        record.raw(",\"user_agent\":"); record.optionalString(userAgent)
        record.raw("}")
        return PreparedSession(
            user: user, id: try newSessionID(), methods: methods, authTime: authTime,
            issuedAt: now, expiresAt: expires, recordJSON: String(decoding: record.bytes, as: UTF8.self)
        )
    }

    /// Signs a prepared session with the user's epoch.
    func signSession(_ session: PreparedSession, epoch: UInt64) throws(ServiceError) -> IssuedSession {
        let claims = SessionClaims(
            common: CommonClaims(user: session.user.value, issuedAt: session.issuedAt, expiresAt: session.expiresAt, epoch: epoch),
            sessionID: session.id, authTime: session.authTime, methods: session.methods
        )
        do {
            return IssuedSession(token: try tokens.sign(claims), id: session.id, expiresAt: session.expiresAt)
        } catch {
            throw ServiceError(.unavailable, "cannot sign session", underlying: error)
        }
    }

    /// Issues a session token (and records it for the user's session list).
    func issueSession(user: UserID, epoch: UInt64, methods: AuthMethods, authTime: Int64, clientIP: String?, userAgent: String?) async throws(ServiceError) -> IssuedSession {
        let prepared = try prepareSession(user: user, methods: methods, authTime: authTime, clientIP: clientIP, userAgent: userAgent)
        let issued = try signSession(prepared, epoch: epoch)
        do {
            _ = try await redis.pipeline([
                RedisCommand(["HSET", userKey(user, "sessions"), prepared.id, prepared.recordJSON]),
                RedisCommand(["EXPIRE", userKey(user, "sessions"), Int(configuration.lifetimes.sessionAbsoluteSeconds)]),
            ])
        } catch {
            throw ServiceError.unavailable(error)
        }
        return issued
    }

    /// Verifies a session token with no Redis round trip: signature, claims, expiry, then the
    /// node-local revocation view. Throws `invalid_token`, or `unavailable` when the revocation
    /// feed has been down longer than the grace period.
    public func verifySession(_ token: String) throws(ServiceError) -> SessionClaims {
        let claims: SessionClaims
        do { claims = try tokens.verifySession(token, now: now) } catch {
            throw ServiceError(.invalidToken, "session token invalid")
        }
        let user = claims.common.user
        // Signed by a node, but not in the one form addresses take (or without a session id):
        // refused like any bad token.
        guard !claims.sessionID.isEmpty, UserID.isCanonical(user) else {
            throw ServiceError(.invalidToken, "session token invalid")
        }
        let domain = user.lastIndex(of: "@").map { user[user.index(after: $0)...] } ?? ""
        guard view.check(claims, domain: domain) == .valid else {
            // The caller gets the answer of any bad token (a revoked session must not be told
            // apart from a forged one); why it was refused goes to the log, with the session id
            // (not a secret) and never the token.
            logger.debug("refused a revoked session", metadata: ["sid": "\(claims.sessionID)"])
            throw ServiceError(.invalidToken, "session token invalid")
        }
        if feed.secondsSinceHealthy > Int64(configuration.revocationGraceSeconds) {
            throw ServiceError(.unavailable, "revocation feed unavailable", retryAfterSeconds: 5)
        }
        return claims
    }

    /// `POST /v1/sessions/refresh`: same session id, new expiry, never past the absolute limit.
    public func refreshSession(_ token: String) async throws(ServiceError) -> IssuedSession {
        let claims = try verifySession(token)
        guard let user = UserID(claims.common.user) else { throw ServiceError(.invalidToken, "session token invalid") }
        let policy = view.policy(for: user.domain)
        let now = self.now
        let expires = min(now + Int64(policy.sessionHours) * 3600, claims.authTime + configuration.lifetimes.sessionAbsoluteSeconds)
        guard expires > now else {
            logger.info("refused to refresh a session past its absolute limit", metadata: ["sid": "\(claims.sessionID)"])
            throw ServiceError(.invalidToken, "session token invalid")
        }
        var fresh = claims
        fresh.common.issuedAt = now
        fresh.common.expiresAt = expires
        do {
            return IssuedSession(token: try tokens.sign(fresh), id: claims.sessionID, expiresAt: expires)
        } catch {
            throw ServiceError(.unavailable, "cannot sign session", underlying: error)
        }
    }

    /// `POST /v1/sessions/revoke`: kills the session on every node (through the feed).
    /// An invalid or already-expired token is a no-op (there is nothing left to kill).
    public func revokeSession(_ token: String) async throws(ServiceError) {
        guard let claims = try? tokens.verifySession(token, now: now) else { return }
        do {
            try await feed.publish(.sessionRevoked(sid: claims.sessionID, expiresAt: claims.common.expiresAt), now: now)
            if let user = UserID(claims.common.user) {
                _ = try await redis.send(["HDEL", userKey(user, "sessions"), claims.sessionID])
            }
        } catch {
            throw ServiceError.unavailable(error)
        }
    }

    /// Raises the user's security epoch: every token issued before dies on every node.
    public func revokeAllSessions(of user: UserID) async throws(ServiceError) {
        do {
            let epoch = try await redis.send(["HINCRBY", userKey(user, "user"), "epoch", 1]).integer ?? 0
            _ = try await redis.send(["DEL", userKey(user, "sessions")])
            try await feed.publish(.epochRaised(user: user.value, epoch: UInt64(epoch)), now: now)
        } catch {
            throw ServiceError.unavailable(error)
        }
    }
}

/// A session as listed to its user.
public struct SessionInfo: Sendable {
    public var id: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var methods: [String]
    public var clientIP: String?
    public var userAgent: String?
}

extension Gatehouse {
    /// `GET /v1/me/sessions`: live sessions (expired ones are pruned on the way).
    public func sessions(of user: UserID) async throws(ServiceError) -> [SessionInfo] {
        let all: [String: String]
        do { all = Self.hash(try await redis.send(["HGETALL", userKey(user, "sessions")])) } catch { throw ServiceError.unavailable(error) }
        let now = self.now
        var live: [SessionInfo] = []
        var expired: [String] = []
        for (sid, json) in all {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { continue }
            let expires = (o["expires_at"] as? NSNumber)?.int64Value ?? 0
            if expires <= now { expired.append(sid); continue }
            live.append(SessionInfo(
                id: sid, createdAt: (o["created_at"] as? NSNumber)?.int64Value ?? 0, expiresAt: expires,
                methods: o["amr"] as? [String] ?? [], clientIP: o["client_ip"] as? String, userAgent: o["user_agent"] as? String
            ))
        }
        if !expired.isEmpty { _ = try? await redis.send(RedisCommand((["HDEL", userKey(user, "sessions")] + expired).map { $0 as any RedisArgumentConvertible })) }
        return live.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Revokes every session of `user` except `keep` (sign out everywhere else).
    public func revokeOtherSessions(of user: UserID, keep: String?) async throws(ServiceError) {
        let others = try await sessions(of: user).filter { $0.id != keep }
        do {
            for session in others {
                try await feed.publish(.sessionRevoked(sid: session.id, expiresAt: session.expiresAt), now: now)
            }
            if !others.isEmpty {
                _ = try await redis.send(RedisCommand((["HDEL", userKey(user, "sessions")] + others.map(\.id)).map { $0 as any RedisArgumentConvertible }))
            }
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "sessions_revoked", detail: String(others.count))
    }

    /// Signs out one of `user`'s own sessions by id (the settings page's "Sign out"); an id that
    /// is not one of the user's live sessions is `not_found`.
    public func revokeSession(of user: UserID, id: String) async throws(ServiceError) {
        guard let session = try await sessions(of: user).first(where: { $0.id == id }) else {
            throw ServiceError(.notFound, "no such session")
        }
        do {
            try await feed.publish(.sessionRevoked(sid: session.id, expiresAt: session.expiresAt), now: now)
            _ = try await redis.send(["HDEL", userKey(user, "sessions"), session.id])
        } catch { throw ServiceError.unavailable(error) }
        await event(user, "session_revoked")
    }

    /// `POST /v1/me/password-changed`: every remembered device, every other session and every
    /// app password dies.
    public func passwordChanged(_ principal: Principal) async throws(ServiceError) {
        guard case .session(let claims, let user) = principal else { throw ServiceError(.invalidToken, "a signed-in session is required") }
        do {
            _ = try await redis.send(RedisCommand((["DEL", userKey(user, "devices")] + appPasswordKeys(user)).map { $0 as any RedisArgumentConvertible }))
        } catch { throw ServiceError.unavailable(error) }
        try await revokeOtherSessions(of: user, keep: claims.sessionID)
        await event(user, "password_changed")
    }
}
