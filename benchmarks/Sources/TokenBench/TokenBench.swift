import BenchSupport
import Foundation
import GatehouseCore
import GatehouseCrypto
import JWTKit

/// Session-token verification: Gatehouse's HS256 `verifySession` against jwt-kit 5 verifying the
/// very same token with the same derived key, and against `openssl speed -hmac sha256` over the
/// token's signing input. Rounds are interleaved (the order rotates each round) and every figure
/// is a median over rounds.
@main
enum TokenBench {
    static func main() throws {
        let options = Options.parse(program: "TokenBench")
        try run(options)
    }

    static func run(_ options: Options) throws {
        var report = Report(title: "TokenBench: session token verify")
        let now = Int64(Date().timeIntervalSince1970)

        // MARK: Gatehouse, HS256 (the default session algorithm)
        let ring = try Keyring(KeyringFile(keys: [try KeyringFile.newEntry(state: .active)]))
        let authority = TokenAuthority(issuer: "gatehouse", keys: KeyringStore(ring))
        let claims = SessionClaims(
            common: CommonClaims(user: "jane.doe@example.org", issuedAt: now, expiresAt: now + 8 * 3600, epoch: 3),
            sessionID: "Xq3v9LmT0aZk2Rw", authTime: now, methods: [.password, .otp]
        )
        let token = try authority.sign(claims)
        let signingInputLength = signingInput(of: token)
        try check(authority.verifySession(token, now: now) == claims, "Gatehouse verify round-trips the claims")
        try expectFailure("Gatehouse refuses an expired token", { _ = try authority.verifySession(token, now: now + 9 * 3600) })
        try expectFailure("Gatehouse refuses a tampered token", { _ = try authority.verifySession(tampered(token), now: now) })

        // MARK: Gatehouse, EdDSA session key (information only)
        let edRing = try Keyring(KeyringFile(keys: [try KeyringFile.newEntry(state: .active, sessionAlgorithm: .edDSA)]))
        let edAuthority = TokenAuthority(issuer: "gatehouse", keys: KeyringStore(edRing))
        let edToken = try edAuthority.sign(claims)
        try check(edAuthority.verifySession(edToken, now: now) == claims, "Gatehouse EdDSA verify round-trips the claims")

        // MARK: jwt-kit, same derived key, same token bytes (skipped when profiling another series,
        // so that no concurrency thread starts; see `blocking`)
        let needJWTKit = options.profile == nil || options.profile == "jwtkit_verify_hs256"
        let keys = needJWTKit ? try makeJWTKitReference(ring: ring, token: token, claims: claims, now: now) : nil

        let hmacOnly = try HMACOnly(ring: ring, token: token, signingInputLength: signingInputLength)

        report.note("token", "\(token.utf8.count) bytes, signing input \(signingInputLength) bytes (HS256); EdDSA token \(edToken.utf8.count) bytes")
        report.note("machine", Machine.describe())

        // MARK: Interleaved rounds
        let steps: [(String, () throws -> Void)] = [
            ("gatehouse_verify_hs256", {
                report.add("gatehouse_verify_hs256", measure(slice: options.slice) { n in
                    for _ in 0..<n { blackHole(try? authority.verifySession(token, now: now)) }
                }, note: "TokenAuthority.verifySession: header, kid, HMAC, claims, iss/iat/exp")
            }),
            ("jwtkit_verify_hs256", {
                guard let keys else { return }
                let slice = options.slice
                report.add("jwtkit_verify_hs256", try blocking {
                    try await measure(slice: slice) { n in try await jwtKitVerifyBatch(keys, token: token, count: n) }
                }, note: "JWTKeyCollection.verify(_:as:) of the same token, same key; payload checks iss/iat/exp")
            }),
            ("openssl_hmac_sha256", {
                report.add("openssl_hmac_sha256", try OpenSSLSpeed.hmacSHA256(bytes: signingInputLength, seconds: options.opensslSeconds),
                           note: "openssl speed -hmac sha256 -bytes \(signingInputLength) -seconds \(options.opensslSeconds) (HMAC only)")
            }),
            ("gatehouse_hmac_sha256_only", {
                report.add("gatehouse_hmac_sha256_only", measure(slice: options.slice) { n in hmacOnly.run(n) },
                           note: "GatehouseCrypto HMACSHA256Key.authenticate over the signing input only (no parsing)")
            }),
            ("gatehouse_sign_hs256", {
                report.add("gatehouse_sign_hs256", measure(slice: options.slice) { n in
                    for _ in 0..<n { blackHole(try? authority.sign(claims)) }
                })
            }),
            ("gatehouse_verify_eddsa", {
                report.add("gatehouse_verify_eddsa", measure(slice: options.slice) { n in
                    for _ in 0..<n { blackHole(try? edAuthority.verifySession(edToken, now: now)) }
                })
            }),
            ("openssl_ed25519_verify", {
                report.add("openssl_ed25519_verify", try OpenSSLSpeed.ed25519Verify(seconds: 1),
                           note: "openssl speed -seconds 1 ed25519, verify line (curve math alone)")
            }),
        ]
        if let name = options.profile {
            guard let step = steps.first(where: { $0.0 == name }) else {
                throw BenchFailure("no series \(name); one of: \(steps.map(\.0).joined(separator: ", "))")
            }
            try step.1()
            report.print()
            return
        }
        for round in 0..<options.rounds {
            for k in steps.indices {
                try steps[(k + round) % steps.count].1()
            }
        }

        // MARK: Allocations
        let interposed = Allocations.interposerWorks()
        report.note("malloc interposer", interposed ? "works (counter moves for Swift array allocations)" : "NOT WORKING: counts below are meaningless")
        let n = options.allocationIterations
        let verifyAllocs = Allocations.perOperation(iterations: n) { blackHole(try? authority.verifySession(token, now: now)) }
        report.allocations("token_verify_allocs_per_op", interposed ? verifyAllocs : .nan, target: 4)
        let signAllocs = Allocations.perOperation(iterations: n) { blackHole(try? authority.sign(claims)) }
        report.allocations("token_sign_allocs_per_op", interposed ? signAllocs : .nan, target: 3)
        report.allocations("token_verify_eddsa_allocs_per_op", Allocations.perOperation(iterations: n) {
            blackHole(try? edAuthority.verifySession(edToken, now: now))
        }, target: nil)
        if let keys {
            report.allocations("jwtkit_verify_allocs_per_op", try blocking {
                try await Allocations.perOperation(iterations: n) { try await jwtKitVerifyBatch(keys, token: token, count: 1) }
            }, target: nil)
        }

        // MARK: Targets
        report.ratio("token_verify_vs_jwtkit", "gatehouse_verify_hs256", over: "jwtkit_verify_hs256", target: 10, style: .times)
        report.ratio("token_verify_vs_openssl_hmac", "gatehouse_verify_hs256", over: "openssl_hmac_sha256", target: 0.55, style: .fraction)
        report.ratio("hmac_only_vs_openssl_hmac", "gatehouse_hmac_sha256_only", over: "openssl_hmac_sha256", target: nil, style: .fraction)
        report.ratio("token_verify_vs_hmac_only", "gatehouse_verify_hs256", over: "gatehouse_hmac_sha256_only", target: nil, style: .fraction)
        report.ratio("token_sign_vs_verify", "gatehouse_sign_hs256", over: "gatehouse_verify_hs256", target: nil, style: .fraction)
        report.ratio("token_verify_eddsa_vs_openssl_ed25519", "gatehouse_verify_eddsa", over: "openssl_ed25519_verify", target: nil, style: .fraction)
        report.ratio("token_verify_eddsa_vs_hs256", "gatehouse_verify_eddsa", over: "gatehouse_verify_hs256", target: nil, style: .fraction)

        report.print()
        if options.json { print(report.json()) }
    }

    /// Bytes before the second '.': what HS256 authenticates.
    static func signingInput(of token: String) -> Int {
        var dots = 0
        for (i, byte) in token.utf8.enumerated() where byte == UInt8(ascii: ".") {
            dots += 1
            if dots == 2 { return i }
        }
        return token.utf8.count
    }

    /// `token` with one payload character changed (still valid base64url).
    static func tampered(_ token: String) -> String {
        var bytes = Array(token.utf8)
        let i = (bytes.firstIndex(of: UInt8(ascii: "."))! + 5)
        bytes[i] = bytes[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        return String(decoding: bytes, as: UTF8.self)
    }
}
