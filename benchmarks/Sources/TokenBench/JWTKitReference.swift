import BenchSupport
import Foundation
import GatehouseCore
import JWTKit

/// The reference: the same session claims as a jwt-kit `JWTPayload`, checked the way Gatehouse
/// checks them after the signature (issuer, not issued in the future, not expired; 10 s leeway).
struct JWTKitSessionPayload: JWTPayload, Equatable {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    var ep: UInt64
    var sid: String
    var authTime: Int64
    var amr: [String]

    enum CodingKeys: String, CodingKey {
        case iss, sub, iat, exp, ep, sid, amr
        case authTime = "auth_time"
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {
        let now = Date()
        guard iss.value == "gatehouse" else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "wrong issuer")
        }
        guard iat.value <= now.addingTimeInterval(10) else {
            throw JWTError.claimVerificationFailure(failedClaim: iat, reason: "issued in the future")
        }
        try exp.verifyNotExpired(currentDate: now.addingTimeInterval(-10))
    }
}

/// Verifies `token` `count` times on the collection's own actor. Being isolated to it removes the
/// hop onto the actor for each call (the most favourable way to drive jwt-kit); the hops jwt-kit
/// itself makes (to its nonisolated async `JWTSigner.verify` and `JWTPayload.verify`) remain part
/// of its cost, as they are for any caller.
func jwtKitVerifyBatch(_ keys: isolated JWTKeyCollection, token: String, count: Int) async throws {
    for _ in 0..<count {
        blackHole(try await keys.verify(token, as: JWTKitSessionPayload.self))
    }
}

/// The jwt-kit key collection holding Gatehouse's derived session key under the same `kid`, after
/// checking that jwt-kit is a working verifier here: it accepts the Gatehouse token and reads the
/// same claims, accepts its own equivalent token, and refuses expired and tampered ones.
func makeJWTKitReference(ring: Keyring, token: String, claims: SessionClaims, now: Int64) throws -> JWTKeyCollection {
    guard let derived = ring.derivedKey(kid: ring.activeKeyID, kind: .session) else { throw BenchFailure("no derived session key") }
    let kid = ring.activeKeyID
    let tampered = TokenBench.tampered(token)
    let expected = claims
    return try blocking {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: derived), digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        let read = try await keys.verify(token, as: JWTKitSessionPayload.self)
        try check(
            read.sub.value == expected.common.user && read.sid == expected.sessionID && read.ep == expected.common.epoch
                && read.amr == ["pwd", "otp"] && Int64(read.exp.value.timeIntervalSince1970) == expected.common.expiresAt
                && read.authTime == expected.authTime,
            "jwt-kit verifies the Gatehouse token and reads the same claims"
        )
        let own = try await keys.sign(read, kid: JWKIdentifier(string: kid))
        let ownRead = try await keys.verify(own, as: JWTKitSessionPayload.self)
        try check(ownRead == read, "jwt-kit verifies its own equivalent token")
        var expired = read
        expired.iat = IssuedAtClaim(value: Date(timeIntervalSince1970: Double(now - 9 * 3600)))
        expired.exp = ExpirationClaim(value: Date(timeIntervalSince1970: Double(now - 3600)))
        let expiredToken = try await keys.sign(expired, kid: JWKIdentifier(string: kid))
        try await expectFailure("jwt-kit refuses an expired token") { _ = try await keys.verify(expiredToken, as: JWTKitSessionPayload.self) }
        try await expectFailure("jwt-kit refuses a tampered token") { _ = try await keys.verify(tampered, as: JWTKitSessionPayload.self) }
        return keys
    }
}
