import BenchSupport
import Foundation
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
