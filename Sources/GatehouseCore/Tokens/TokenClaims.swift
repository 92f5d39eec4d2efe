/// Claims every token carries (besides `iss`, which is the authority's issuer and checked by it).
public struct CommonClaims: Sendable, Equatable {
    /// `sub`: the user, lower-cased email address.
    public var user: String
    /// `iat`: issue time, Unix seconds.
    public var issuedAt: Int64
    /// `exp`: expiry, Unix seconds.
    public var expiresAt: Int64
    /// `ep`: the user's security epoch when the token was issued; raising it kills older tokens.
    public var epoch: UInt64

    /// Creates common claims.
    public init(user: String, issuedAt: Int64, expiresAt: Int64, epoch: UInt64) {
        self.user = user
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.epoch = epoch
    }
}

/// A session token (`gh-session`).
public struct SessionClaims: Sendable, Equatable {
    public var common: CommonClaims
    /// `sid`: the session id.
    public var sessionID: String
    /// `auth_time`: when the user last authenticated interactively; refresh never goes past
    /// `auth_time` + the absolute limit.
    public var authTime: Int64
    /// `amr`: how they authenticated.
    public var methods: AuthMethods

    /// Creates session claims.
    public init(common: CommonClaims, sessionID: String, authTime: Int64, methods: AuthMethods) {
        self.common = common
        self.sessionID = sessionID
        self.authTime = authTime
        self.methods = methods
    }
}

/// A remember-device token (`gh-remember`).
public struct RememberClaims: Sendable, Equatable {
    public var common: CommonClaims
    /// `did`: the device id.
    public var deviceID: String
    /// `gen`: the rotation generation; an older generation presented again signals theft.
    public var generation: UInt64

    /// Creates remember claims.
    public init(common: CommonClaims, deviceID: String, generation: UInt64) {
        self.common = common
        self.deviceID = deviceID
        self.generation = generation
    }
}

/// A login/enrolment challenge (`gh-challenge`).
public struct ChallengeClaims: Sendable, Equatable {
    /// What the challenge is for.
    public enum Purpose: String, Sendable {
        case login, enroll
    }
    public var common: CommonClaims
    /// `cid`: the challenge id (binds email codes and attempts to this login).
    public var challengeID: String
    /// `purpose`.
    public var purpose: Purpose

    /// Creates challenge claims.
    public init(common: CommonClaims, challengeID: String, purpose: Purpose) {
        self.common = common
        self.challengeID = challengeID
        self.purpose = purpose
    }
}

/// A password-reset token (`gh-reset`).
public struct ResetClaims: Sendable, Equatable {
    public var common: CommonClaims
    /// `jti`: single-use id.
    public var tokenID: String

    /// Creates reset claims.
    public init(common: CommonClaims, tokenID: String) {
        self.common = common
        self.tokenID = tokenID
    }
}
