import Foundation
public import GatehouseCore
import GatehouseCrypto
import GatehouseRedis
import Logging

/// What a browser needs for `navigator.credentials.create()` (registration).
public struct PasskeyCreationOptions: Sendable {
    public var challenge: [UInt8]
    public var rpID: String
    public var rpName: String
    /// The user handle: stable per user, not the address (a keyed hash of it).
    public var userHandle: [UInt8]
    public var userName: String
    /// Credential ids already registered (base64url), for `excludeCredentials`.
    public var excludeCredentials: [String]
    public var userVerification: String
    public var timeoutSeconds: Int64
}

/// What a browser needs for `navigator.credentials.get()` (sign-in).
public struct PasskeyRequestOptions: Sendable {
    public var challenge: [UInt8]
    public var rpID: String
    /// The user's credential ids (base64url), for `allowCredentials`.
    public var allowCredentials: [String]
    public var userVerification: String
    public var timeoutSeconds: Int64
}

extension PasskeyCreationOptions {
    /// `PublicKeyCredentialCreationOptions` in WebAuthn's JSON form (binary members base64url),
    /// what the browser's script decodes for `navigator.credentials.create()`: the API's
    /// `public_key` and the settings page's script get the same text.
    public var webAuthnJSON: String {
        Self.json([
            "attestation": "none",
            "authenticatorSelection": ["residentKey": "preferred", "userVerification": userVerification],
            "challenge": Base64URL.encode(challenge),
            "excludeCredentials": excludeCredentials.map { ["id": $0, "type": "public-key"] },
            // ES256, EdDSA, RS256: what the relying party verifies.
            "pubKeyCredParams": [-7, -8, -257].map { ["alg": $0, "type": "public-key"] as [String: Any] },
            "rp": ["id": rpID, "name": rpName],
            "timeout": timeoutSeconds * 1000,
            "user": ["displayName": userName, "id": Base64URL.encode(userHandle), "name": userName],
        ])
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

extension PasskeyRequestOptions {
    /// `PublicKeyCredentialRequestOptions` in WebAuthn's JSON form, for `navigator.credentials.get()`.
    public var webAuthnJSON: String {
        PasskeyCreationOptions.json([
            "allowCredentials": allowCredentials.map { ["id": $0, "type": "public-key"] },
            "challenge": Base64URL.encode(challenge),
            "rpId": rpID,
            "timeout": timeoutSeconds * 1000,
            "userVerification": userVerification,
        ])
    }
}

/// A registered passkey as listed to its user.
public struct PasskeyInfo: Sendable {
    /// The credential id, base64url.
    public var id: String
    public var name: String
    public var createdAt: Int64
    public var lastUsedAt: Int64?
    /// The credential may be synced between devices (BE), and is backed up now (BS).
    public var backupEligible: Bool
    public var backedUp: Bool
}

/// A sign-in assertion as the browser returns it (`PublicKeyCredential` with an
/// `AuthenticatorAssertionResponse`), the binary members base64url-decoded.
public struct PasskeyAssertion: Sendable {
    /// The credential id, base64url (as listed).
    public var credentialID: String
    public var clientDataJSON: [UInt8]
    public var authenticatorData: [UInt8]
    public var signature: [UInt8]

    public init(credentialID: String, clientDataJSON: [UInt8], authenticatorData: [UInt8], signature: [UInt8]) {
        self.credentialID = credentialID
        self.clientDataJSON = clientDataJSON
        self.authenticatorData = authenticatorData
        self.signature = signature
    }
}

/// Stores a verified new credential atomically: refused when the user already has that
/// credential id or the maximum number. KEYS: 1 passkeys (hash id → record), 2 counters.
/// ARGV: 1 id, 2 record JSON, 3 sign count, 4 maximum. Replies `ok`, `exists`, `full`.
enum PasskeyStoreScript {
    static let script = RedisScript(#"""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 'ok'
"""#)
}

extension Gatehouse {
    /// At most this many passkeys per user.
    static let passkeysPerUser = 10
    /// A ceremony's challenge lives this long (the browser's timeout too).
    static let passkeyCeremonySeconds: Int64 = 300

    /// The relying party for a ceremony whose client data claims `origin`.
    func relyingParty(origin: String) -> RelyingParty {
        let settings = configuration.passkeys, publicURL = configuration.web.publicURL
        let allowed = settings.allows(origin: origin, publicURL: publicURL) ? [origin] : []
        return RelyingParty(
            id: settings.effectiveRPID(publicURL: publicURL), allowedOrigins: allowed,
            requireUserVerification: settings.requireUserVerification, signCountRegression: .reject
        )
    }

    /// The origin a ceremony's client data names (checked by the relying party afterwards).
    static func claimedOrigin(_ clientDataJSON: [UInt8]) -> String {
        (try? CollectedClientData(json: clientDataJSON))?.origin ?? ""
    }

    var userVerification: String { configuration.passkeys.requireUserVerification ? "required" : "preferred" }

    /// The user handle WebAuthn stores with a credential: 32 bytes derived from the address with
    /// the server pepper, so the authenticator never holds the address as the handle.
    func passkeyUserHandle(_ user: UserID) -> [UInt8] {
        Array(Digest.hash(.sha256, Array(keyedHash("passkey-user:" + user.value).utf8)))
    }

    func requirePasskeysAllowed(_ user: UserID) throws(ServiceError) {
        let policy = view.policy(for: user.domain)
        guard policy.mode != .disabled else { throw ServiceError(.twoStepDisabled, "two-step authentication is disabled for \(user.domain)") }
        guard policy.methods.contains(.passkey) else { throw ServiceError(.methodNotAllowed, "the domain does not allow passkeys") }
    }

    // MARK: Registration

    /// `POST /v1/me/passkeys/options`: a registration challenge (5 minutes, one at a time).
    /// Needs a signed-in session with a fresh sign-in, two-step on, and the domain allowing passkeys.
    public func startPasskeyRegistration(_ principal: Principal) async throws(ServiceError) -> PasskeyCreationOptions {
        guard case .session = principal else { throw ServiceError(.invalidToken, "a signed-in session is required") }
        let user = principal.user
        try requirePasskeysAllowed(user)
        try requireFreshSignIn(principal)
        let record = try await loadUser(user)
        guard record.method == .totp || record.method == .email else {
            throw ServiceError(.notEnrolled, "turn on two-step verification first; a passkey is added beside it")
        }
        let existing = try await passkeyRecords(of: user)
        guard existing.count < Self.passkeysPerUser else {
            throw ServiceError(.invalidRequest, "at most \(Self.passkeysPerUser) passkeys per account; remove one first")
        }
        let challenge = try newChallengeBytes()
        do {
            _ = try await redis.send(["SET", userKey(user, "passkey-reg"), Base64URL.encode(challenge), "EX", Int(Self.passkeyCeremonySeconds)])
        } catch { throw ServiceError.unavailable(error) }
        return PasskeyCreationOptions(
            challenge: challenge, rpID: configuration.passkeys.effectiveRPID(publicURL: configuration.web.publicURL),
            rpName: configuration.issuer, userHandle: passkeyUserHandle(user), userName: user.value,
            excludeCredentials: existing.map(\.info.id), userVerification: userVerification, timeoutSeconds: Self.passkeyCeremonySeconds
        )
    }

    /// `POST /v1/me/passkeys`: verifies the browser's registration response against the pending
    /// challenge (used once, right or wrong) and stores the credential.
    public func finishPasskeyRegistration(_ principal: Principal, name: String, clientDataJSON: [UInt8], attestationObject: [UInt8]) async throws(ServiceError) -> PasskeyInfo {
        guard case .session = principal else { throw ServiceError(.invalidToken, "a signed-in session is required") }
        let user = principal.user
        try requirePasskeysAllowed(user)
        let label = try Self.passkeyName(name)
        let pending: String?
        do { pending = try await redis.send(["GETDEL", userKey(user, "passkey-reg")]).string } catch { throw ServiceError.unavailable(error) }
        guard let pending, let challenge = Base64URL.decode(pending) else {
            throw ServiceError(.challengeExpired, "no passkey registration is waiting (each lasts 5 minutes); start again")
        }
        let credential: NewCredential
        do {
            credential = try relyingParty(origin: Self.claimedOrigin(clientDataJSON)).verifyRegistration(
                clientDataJSON: clientDataJSON, attestationObject: attestationObject, expectedChallenge: challenge
            )
        } catch {
            logger.notice("passkey registration refused", metadata: ["user": "\(user)", "reason": "\(error.code)"])
            throw ServiceError(.invalidRequest, "the passkey response was not accepted: \(error.code)")
        }
        let id = Base64URL.encode(credential.credentialID)
        let created = now
        let record: [String: Any] = [
            "name": label, "alg": credential.algorithm.rawValue, "key": Base64URL.encode(credential.publicKey), "created_at": created,
            "be": credential.backupEligible, "bs": credential.backedUp, "uv": credential.userVerified,
            "fmt": credential.attestationFormat,
        ]
        let json: String
        do { json = String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) } catch {
            throw ServiceError(.unavailable, "cannot encode the passkey", underlying: error)
        }
        let reply: RedisValue
        do {
            reply = try await redis.eval(
                PasskeyStoreScript.script, keys: [userKey(user, "passkeys"), userKey(user, "passkey-counts")],
                arguments: [id, json, String(credential.signCount), String(Self.passkeysPerUser)]
            )
        } catch { throw ServiceError.unavailable(error) }
        switch reply.string {
        case "ok": break
        case "exists": throw ServiceError(.invalidRequest, "this passkey is already registered")
        case "full": throw ServiceError(.invalidRequest, "at most \(Self.passkeysPerUser) passkeys per account; remove one first")
        default: throw ServiceError(.unavailable, "unexpected reply storing a passkey")
        }
        await event(user, "passkey_registered", detail: label)
        return PasskeyInfo(id: id, name: label, createdAt: created, lastUsedAt: nil, backupEligible: credential.backupEligible, backedUp: credential.backedUp)
    }

    /// `GET /v1/me/passkeys`.
    public func passkeys(of user: UserID) async throws(ServiceError) -> [PasskeyInfo] {
        try await passkeyRecords(of: user).map(\.info)
    }

    /// `DELETE /v1/me/passkeys/{id}`.
    public func deletePasskey(user: UserID, id: String) async throws(ServiceError) {
        let removed: Int64
        do {
            removed = try await redis.send(["HDEL", userKey(user, "passkeys"), id]).integer ?? 0
            _ = try await redis.send(["HDEL", userKey(user, "passkey-counts"), id, id + ":used"])
        } catch { throw ServiceError.unavailable(error) }
        guard removed == 1 else { throw ServiceError(.notFound, "no such passkey") }
        await event(user, "passkey_removed")
    }

    /// A stored credential: its listing, and the public key and algorithm for verification.
    struct PasskeyRecord {
        var info: PasskeyInfo
        var publicKey: [UInt8]
    }

    func passkeyRecords(of user: UserID) async throws(ServiceError) -> [PasskeyRecord] {
        let replies: [RedisValue]
        do {
            replies = try await redis.pipeline([
                RedisCommand(["HGETALL", userKey(user, "passkeys")]), RedisCommand(["HGETALL", userKey(user, "passkey-counts")]),
            ])
        } catch { throw ServiceError.unavailable(error) }
        guard replies.count == 2 else { throw ServiceError(.unavailable, "unexpected reply listing passkeys") }
        let stored = Self.hash(replies[0]), counters = Self.hash(replies[1])
        return stored.compactMap { id, json -> PasskeyRecord? in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
                  let key = (o["key"] as? String).flatMap(Base64URL.decode)
            else { return nil }
            let info = PasskeyInfo(
                id: id, name: o["name"] as? String ?? "Passkey", createdAt: (o["created_at"] as? NSNumber)?.int64Value ?? 0,
                lastUsedAt: counters[id + ":used"].flatMap { Int64($0) },
                backupEligible: o["be"] as? Bool ?? false, backedUp: o["bs"] as? Bool ?? false
            )
            return PasskeyRecord(info: info, publicKey: key)
        }.sorted { ($0.info.createdAt, $0.info.id) < ($1.info.createdAt, $1.info.id) }
    }

    /// 1–64 characters, no control characters; spaces trimmed.
    static func passkeyName(_ text: String) throws(ServiceError) -> String {
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...64).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) else {
            throw ServiceError(.invalidRequest, "name must be 1 to 64 characters without control characters")
        }
        return name
    }

    func newChallengeBytes() throws(ServiceError) -> [UInt8] {
        do { return try random.bytes(32) } catch { throw ServiceError(.unavailable, "random source failed", underlying: error) }
    }

    // MARK: Sign-in

    /// `POST /v1/login/passkey-options {"challenge"}`: a passkey challenge for this sign-in
    /// (bound to it, 5 minutes; a new one replaces the previous).
    public func startPasskeyLogin(challenge token: String) async throws(ServiceError) -> PasskeyRequestOptions {
        let (claims, user) = try verifyChallenge(token, purpose: .login)
        try requirePasskeysAllowed(user)
        let credentials = try await passkeyRecords(of: user)
        guard !credentials.isEmpty else { throw ServiceError(.methodNotAllowed, "this account has no passkey") }
        let challenge = try newChallengeBytes()
        let key = userKey(user, "passkey-auth")
        do {
            _ = try await redis.pipeline([
                RedisCommand(["DEL", key]),
                RedisCommand(["HSET", key, "h", Base64URL.encode(challenge), "cid", claims.challengeID]),
                RedisCommand(["EXPIRE", key, Int(Self.passkeyCeremonySeconds)]),
            ])
        } catch { throw ServiceError.unavailable(error) }
        return PasskeyRequestOptions(
            challenge: challenge, rpID: configuration.passkeys.effectiveRPID(publicURL: configuration.web.publicURL),
            allowCredentials: credentials.map(\.info.id), userVerification: userVerification, timeoutSeconds: Self.passkeyCeremonySeconds
        )
    }

    /// `POST /v1/login/finish` with `method: passkey`: verifies the assertion on this node, then
    /// one code-check script consumes the passkey challenge, checks the signature counter against
    /// the stored one, counts a failure or records the session — the throttles and the "one
    /// completion per challenge" rule of every other second step apply unchanged.
    public func finishPasskeyLogin(challenge token: String, assertion: PasskeyAssertion, remember: Bool, clientIP: String?, userAgent: String?) async throws(ServiceError) -> LoginResult {
        let (claims, user) = try verifyChallenge(token, purpose: .login)
        try requirePasskeysAllowed(user)
        let pendingKey = userKey(user, "passkey-auth"), counters = userKey(user, "passkey-counts")
        let replies: [RedisValue]
        do {
            replies = try await redis.pipeline([
                RedisCommand(["HMGET", pendingKey, "h", "cid"]), RedisCommand(["HGET", userKey(user, "passkeys"), assertion.credentialID]),
                RedisCommand(["HGET", counters, assertion.credentialID]),
            ])
        } catch { throw ServiceError.unavailable(error) }
        guard replies.count == 3 else { throw ServiceError(.unavailable, "unexpected reply reading a passkey") }
        let pending = replies[0].array ?? []
        let expected = pending.first?.string ?? ""
        var verified = false
        var signCount: UInt32 = 0
        if pending.count == 2, pending[1].string == claims.challengeID, let challenge = Base64URL.decode(expected),
           let json = replies[1].string, let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
           let key = (o["key"] as? String).flatMap(Base64URL.decode) {
            let stored = UInt32(replies[2].string ?? "0") ?? 0
            do {
                let result = try relyingParty(origin: Self.claimedOrigin(assertion.clientDataJSON)).verifyAssertion(
                    credential: StoredCredential(publicKey: key, signCount: stored), clientDataJSON: assertion.clientDataJSON,
                    authenticatorData: assertion.authenticatorData, signature: assertion.signature, expectedChallenge: challenge
                )
                verified = true
                signCount = result.newSignCount
            } catch {
                if error.code == .signCountRegressed {
                    // The script records the event (atomically with the counter it sees); the
                    // log says which credential, never the key.
                    logger.warning("passkey signature counter went backwards: a cloned authenticator?", metadata: ["user": "\(user)"])
                    verified = true
                    signCount = error.signCounts?.received ?? 0
                } else {
                    logger.notice("passkey assertion refused", metadata: ["user": "\(user)", "reason": "\(error.code)"])
                }
            }
        }
        let marker = userKey(user, "challenge", claims.challengeID)
        let prepared = try prepareSession(user: user, methods: [.password, .passkey], authTime: now, clientIP: clientIP, userAgent: userAgent)
        let outcome = try await runCheck(
            user: user, record: pendingKey, credentialVersion: "",
            candidate: .passkey(verified: verified, challenge: expected, challengeID: claims.challengeID, credentialID: assertion.credentialID, signCount: signCount, counters: counters),
            challengeMarker: marker, clientIP: clientIP, method: .passkey, signIn: SignIn(session: prepared)
        )
        let epoch = try conclude(outcome, user: user, method: .passkey, context: "login")
        return try await completeSignIn(prepared, user: user, epoch: epoch, remember: remember, clientIP: clientIP, userAgent: userAgent)
    }
}
