import Foundation
import GatehouseCore
import GatehouseCrypto
import Testing

/// A keyring and authority for one test, plus a forger that signs arbitrary header/claims JSON
/// with the real derived key — so the strictness tests reach the claim checks *behind* a valid
/// signature, where a careless verifier would be fooled.
struct TokenFixture: Sendable {
    let file: KeyringFile
    let authority: TokenAuthority
    let now: Int64 = 1_800_000_000
    var kid: String { file.keys.first { $0.state == .active }!.kid }

    init(sessionAlgorithm: TokenAlgorithm = .hs256) throws {
        file = KeyringFile(keys: [try KeyringFile.newEntry(state: .active, sessionAlgorithm: sessionAlgorithm)])
        authority = TokenAuthority(issuer: "gatehouse-test", keys: KeyringStore(try Keyring(file)))
    }

    func common(user: String = "jane@example.org", lifetime: Int64 = 3600) -> CommonClaims {
        CommonClaims(user: user, issuedAt: now, expiresAt: now + lifetime, epoch: 7)
    }

    func session(_ methods: AuthMethods = [.password, .otp]) throws -> String {
        try authority.sign(SessionClaims(common: common(), sessionID: "s-1", authTime: now, methods: methods))
    }

    /// Signs `header` and `payload` JSON text verbatim with the derived HS256 key of `kind`.
    func forge(header: String, payload: String, kind: TokenKind = .session) -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        let key = HMACKey(.sha256, key: authority.keys.keyring.derivedKey(kid: kid, kind: kind)!)
        return input + "." + Base64URL.encode(key.authenticationCode(for: Array(input.utf8)))
    }

    func header(alg: String = "HS256", typ: String = "gh-session", kid: String? = nil) -> String {
        "{\"alg\":\"\(alg)\",\"kid\":\"\(kid ?? self.kid)\",\"typ\":\"\(typ)\"}"
    }

    func sessionPayload(iss: String = "\"gatehouse-test\"", extra: String = "", iat: String? = nil, exp: String? = nil) -> String {
        "{\"iss\":\(iss),\"sub\":\"jane@example.org\",\"iat\":\(iat ?? String(now)),\"exp\":\(exp ?? String(now + 3600)),\"ep\":7,"
            + "\"sid\":\"s-1\",\"auth_time\":\(now),\"amr\":[\"pwd\",\"otp\"]\(extra)}"
    }

    func verifyError(_ token: String, at time: Int64? = nil) -> TokenError? {
        do {
            _ = try authority.verifySession(token, now: time ?? now)
            return nil
        } catch {
            return error
        }
    }
}

@Suite("Tokens: signing and verifying")
struct TokenRoundTripTests {
    @Test func sessionRoundTrip() throws {
        let f = try TokenFixture()
        let token = try f.session()
        let claims = try f.authority.verifySession(token, now: f.now + 10)
        #expect(claims.common.user == "jane@example.org")
        #expect(claims.common.epoch == 7)
        #expect(claims.sessionID == "s-1")
        #expect(claims.methods == [.password, .otp])
        #expect(claims.methods.hasSecondStep)
    }

    @Test func otherKindsRoundTrip() throws {
        let f = try TokenFixture()
        let r = RememberClaims(common: f.common(), deviceID: "d-9", generation: 3)
        #expect(try f.authority.verifyRemember(f.authority.sign(r), now: f.now) == r)
        let c = ChallengeClaims(common: f.common(), challengeID: "c-1", purpose: .enroll)
        #expect(try f.authority.verifyChallenge(f.authority.sign(c), now: f.now) == c)
        let x = ResetClaims(common: f.common(), tokenID: "j-1")
        #expect(try f.authority.verifyReset(f.authority.sign(x), now: f.now) == x)
    }

    @Test("claim strings with quotes, backslashes and Unicode survive")
    func escaping() throws {
        let f = try TokenFixture()
        let user = "o\"brien\\x\u{1}é@example.org"
        let token = try f.authority.sign(SessionClaims(common: f.common(user: user), sessionID: "s", authTime: f.now, methods: [.password]))
        #expect(try f.authority.verifySession(token, now: f.now).common.user == user)
    }

    @Test("one kind is never accepted as another")
    func kindConfusion() throws {
        let f = try TokenFixture()
        let session = try f.session()
        #expect(throws: TokenError.wrongType) { try f.authority.verifyRemember(session, now: f.now) }
        #expect(throws: TokenError.wrongType) { try f.authority.verifyChallenge(session, now: f.now) }
        let challenge = try f.authority.sign(ChallengeClaims(common: f.common(), challengeID: "c", purpose: .login))
        #expect(throws: TokenError.wrongType) { try f.authority.verifySession(challenge, now: f.now) }
        // A challenge token relabelled as a session token fails the signature…
        let parts = challenge.split(separator: ".")
        let relabelled = Base64URL.encode(Array(f.header().utf8)) + "." + parts[1] + "." + parts[2]
        #expect(f.verifyError(relabelled) == .badSignature)
        // …and one properly signed with the *challenge* key but typ gh-session fails too,
        // because session tokens are checked with the session-derived key.
        let crossSigned = f.forge(header: f.header(), payload: f.sessionPayload(), kind: .challenge)
        #expect(f.verifyError(crossSigned) == .badSignature)
    }

    @Test("expiry and issue time are checked with a small leeway")
    func timeChecks() throws {
        let f = try TokenFixture()
        let token = try f.session()
        #expect(f.verifyError(token, at: f.now + 3600 + f.authority.leeway - 1) == nil)
        #expect(f.verifyError(token, at: f.now + 3600 + f.authority.leeway) == .expired)
        #expect(f.verifyError(token, at: f.now - f.authority.leeway) == nil)
        #expect(f.verifyError(token, at: f.now - f.authority.leeway - 1) == .issuedInFuture)
        let inverted = f.forge(header: f.header(), payload: f.sessionPayload(exp: String(f.now - 1)))
        #expect(f.verifyError(inverted) == .invalidClaims)
    }

    @Test("EdDSA session tokens and the JWKS")
    func edDSA() throws {
        let f = try TokenFixture(sessionAlgorithm: .edDSA)
        let token = try f.session()
        #expect(token.split(separator: ".")[2].count == 86)
        #expect(try f.authority.verifySession(token, now: f.now).sessionID == "s-1")
        let jwks = f.authority.keys.keyring.jwks
        #expect(jwks.contains("\"kid\":\"\(f.kid)\"") && jwks.contains("\"crv\":\"Ed25519\""))
        // Other kinds under that key stay HS256.
        let remember = try f.authority.sign(RememberClaims(common: f.common(), deviceID: "d", generation: 1))
        #expect(remember.split(separator: ".")[2].count == 43)
        #expect(try f.authority.verifyRemember(remember, now: f.now).deviceID == "d")
        // And an HS256 keyring publishes no keys.
        #expect(try TokenFixture().authority.keys.keyring.jwks == "{\"keys\":[]}")
    }
}

@Suite("Tokens: RFC 8725 negative cases")
struct TokenNegativeTests {
    @Test("alg none, in any case, is refused", arguments: ["none", "None", "NONE", "nOnE"])
    func algNone(alg: String) throws {
        let f = try TokenFixture()
        let unsigned = Base64URL.encode(Array(f.header(alg: alg).utf8)) + "." + Base64URL.encode(Array(f.sessionPayload().utf8))
        #expect(f.verifyError(unsigned + ".") == .malformed)
        #expect(f.verifyError(f.forge(header: f.header(alg: alg), payload: f.sessionPayload())) == .algorithmMismatch)
    }

    @Test("the algorithm comes from the key, never from the token", arguments: ["HS384", "HS512", "RS256", "ES256", "EdDSA", "hs256"])
    func algorithmFixedByKey(alg: String) throws {
        let f = try TokenFixture()
        #expect(f.verifyError(f.forge(header: f.header(alg: alg), payload: f.sessionPayload())) == .algorithmMismatch)
    }

    @Test("algorithm confusion: HS256 keyed with the EdDSA public key is refused")
    func algorithmConfusion() throws {
        let f = try TokenFixture(sessionAlgorithm: .edDSA)
        let jwksX = f.authority.keys.keyring.jwks.split(separator: "\"x\":\"")[1].split(separator: "\"")[0]
        let publicKey = Base64URL.decode(jwksX)!
        let header = f.header(alg: "HS256")
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(f.sessionPayload().utf8))
        let forged = input + "." + Base64URL.encode(HMACKey(.sha256, key: publicKey).authenticationCode(for: Array(input.utf8)))
        #expect(f.verifyError(forged) == .algorithmMismatch)
    }

    @Test("unknown and hostile kids", arguments: ["nope", "../../../etc/passwd", String(repeating: "k", count: 200), "k\\u0000", "", "' OR 1=1 --"])
    func hostileKid(kid: String) throws {
        let f = try TokenFixture()
        let error = f.verifyError(f.forge(header: f.header(kid: kid), payload: f.sessionPayload()))
        #expect(error == .unknownKey || error == .malformed)
    }

    @Test("header members other than alg/kid/typ are refused", arguments: [
        ",\"crit\":[\"exp\"]", ",\"jku\":\"http://evil\"", ",\"jwk\":{}", ",\"x5u\":\"http://evil\"", ",\"alg\":\"HS256\"",
    ])
    func extraHeaderMembers(extra: String) throws {
        let f = try TokenFixture()
        var header = f.header()
        header.removeLast()
        header += extra + "}"
        #expect(f.verifyError(f.forge(header: header, payload: f.sessionPayload())) == .malformed)
    }

    @Test("non-string header values are refused")
    func headerTypes() throws {
        let f = try TokenFixture()
        let header = "{\"alg\":\"HS256\",\"kid\":1,\"typ\":\"gh-session\"}"
        #expect(f.verifyError(f.forge(header: header, payload: f.sessionPayload())) == .malformed)
    }

    @Test("every truncation of a valid token is refused")
    func truncated() throws {
        let f = try TokenFixture()
        let token = Array(try f.session())
        for length in 0..<token.count {
            #expect(f.verifyError(String(token[0..<length])) != nil, "prefix of \(length) accepted")
        }
        #expect(f.verifyError(String(token)) == nil)
    }

    @Test("padding and non-canonical base64url are refused")
    func nonCanonical() throws {
        let f = try TokenFixture()
        let token = try f.session()
        var parts = token.split(separator: ".").map(String.init)
        #expect(f.verifyError(parts[0] + "=." + parts[1] + "." + parts[2]) == .malformed)
        #expect(f.verifyError(parts[0] + "." + parts[1] + "." + parts[2] + "=") == .badSignature)
        #expect(f.verifyError(token + ".") == .malformed)
        #expect(f.verifyError(" " + token) == .malformed)
        // Flip unused low bits of the signature's last character: same bytes, other spelling.
        let sig = Array(parts[2].utf8)
        let last = sig.last!
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let index = alphabet.firstIndex(of: last)!
        parts[2] = String(decoding: sig.dropLast() + [alphabet[index ^ 1]], as: UTF8.self)
        #expect(f.verifyError(parts.joined(separator: ".")) == .badSignature)
        // Standard-alphabet characters are not base64url: swap one in for its URL-alphabet twin.
        let swapped = parts[1].isEmpty ? "" : "+" + parts[1].dropFirst()
        #expect(f.verifyError(parts[0] + "." + swapped + "." + parts[2]) == .badSignature
            || f.verifyError(parts[0] + "." + swapped + "." + parts[2]) == .malformed)
    }

    @Test("oversized input is refused before parsing")
    func oversized() throws {
        let f = try TokenFixture()
        #expect(f.verifyError(String(repeating: "A", count: TokenAuthority.maximumTokenLength + 1)) == .oversized)
        #expect(f.verifyError(String(repeating: "A", count: TokenAuthority.maximumTokenLength)) == .malformed)
        let bigClaim = f.forge(header: f.header(), payload: f.sessionPayload(extra: ",\"pad\":\"\(String(repeating: "x", count: 3500))\""))
        #expect(f.verifyError(bigClaim) == .oversized)
    }

    @Test("claims: duplicates, smuggled names, wrong types, extras, missing", arguments: [
        ",\"sub\":\"mallory@example.org\"",  // duplicate
        ",\"\\u0073ub\":\"mallory@example.org\"",  // escaped duplicate
        ",\"did\":\"d\"",  // another kind's claim
        ",\"admin\":true",  // unknown claim
    ])
    func claimStrictness(extra: String) throws {
        let f = try TokenFixture()
        let error = f.verifyError(f.forge(header: f.header(), payload: f.sessionPayload(extra: extra)))
        #expect(error == .invalidClaims || error == .malformed)
    }

    @Test("claims must have the right types", arguments: [
        ("iat", "\"1800000000\""), ("iat", "1800000000.5"), ("iat", "1.8e9"), ("iat", "-1"), ("iat", "01800000000"),
        ("exp", "null"), ("exp", "true"), ("exp", "99999999999999999999"),
    ])
    func claimTypes(claim: String, value: String) throws {
        let f = try TokenFixture()
        let payload = claim == "iat" ? f.sessionPayload(iat: value) : f.sessionPayload(exp: value)
        let error = f.verifyError(f.forge(header: f.header(), payload: payload))
        #expect(error == .invalidClaims || error == .malformed)
    }

    @Test("missing claims and bad amr are refused")
    func missingClaims() throws {
        let f = try TokenFixture()
        let base = f.sessionPayload()
        for claim in ["\"ep\":7,", "\"sid\":\"s-1\",", "\"iat\":\(f.now),"] {
            let error = f.verifyError(f.forge(header: f.header(), payload: base.replacingOccurrences(of: claim, with: "")))
            #expect(error == .invalidClaims, "missing \(claim)")
        }
        for amr in ["[]", "[\"pwd\",\"pwd\"]", "[\"sms\"]", "\"pwd\"", "[1]"] {
            let payload = base.replacingOccurrences(of: "[\"pwd\",\"otp\"]", with: amr)
            let error = f.verifyError(f.forge(header: f.header(), payload: payload))
            #expect(error == .invalidClaims || error == .malformed, "amr \(amr)")
        }
    }

    @Test("the issuer must be ours")
    func issuer() throws {
        let f = try TokenFixture()
        #expect(f.verifyError(f.forge(header: f.header(), payload: f.sessionPayload(iss: "\"someone-else\""))) == .wrongIssuer)
        #expect(f.verifyError(f.forge(header: f.header(), payload: f.sessionPayload(iss: "1"))) == .wrongIssuer)
    }

    @Test("trailing garbage after the JSON object is refused")
    func trailingGarbage() throws {
        let f = try TokenFixture()
        #expect(f.verifyError(f.forge(header: f.header(), payload: f.sessionPayload() + "{}")) == .invalidClaims)
        #expect(f.verifyError(f.forge(header: f.header() + "x", payload: f.sessionPayload())) == .malformed)
    }

    @Test("a forged token with a well-formed payload still verifies: the forger itself is sound")
    func forgerSanity() throws {
        let f = try TokenFixture()
        #expect(f.verifyError(f.forge(header: f.header(), payload: f.sessionPayload())) == nil)
    }
}

/// Tokens are a contract: a signed token must be exactly header ‖ "." ‖ payload ‖ "." ‖ signature
/// with the claims JSON laid out and escaped as `JSONWriter` writes it (docs/tokens.md). These
/// build the expected token independently (JSONWriter, `forge`'s HMAC, Ed25519 from the derived
/// seed) and compare bytes.
@Suite("Tokens: signing writes the documented bytes")
struct TokenSigningBytesTests {
    /// Strings every escape class touches, plus long ones (the claims no longer fit the stack).
    static let strings = [
        "jane@example.org",
        "o\"brien\\x\u{1}é@example.org",
        "tab\there\nnl\rcr\u{7F}del/slash\u{0}nul\u{1F}",
        "日本語@例え.jp 🙂",
        String(repeating: "a\"b\\c\u{2}", count: 300),
    ]

    static func commonJSON(_ f: TokenFixture, _ common: CommonClaims) -> JSONWriter {
        var w = JSONWriter()
        w.raw("{\"iss\":"); w.string(f.authority.issuer)
        w.raw(",\"sub\":"); w.string(common.user)
        w.raw(",\"iat\":"); w.integer(common.issuedAt)
        w.raw(",\"exp\":"); w.integer(common.expiresAt)
        w.raw(",\"ep\":"); w.integer(common.epoch)
        return w
    }

    static func sessionJSON(_ f: TokenFixture, _ claims: SessionClaims) -> String {
        var w = commonJSON(f, claims.common)
        w.raw(",\"sid\":"); w.string(claims.sessionID)
        w.raw(",\"auth_time\":"); w.integer(claims.authTime)
        w.raw(",\"amr\":"); w.strings(claims.methods.strings)
        w.raw("}")
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @Test("session tokens, HS256", arguments: strings)
    func session(text: String) throws {
        let f = try TokenFixture()
        for methods: AuthMethods in [[.password], [.password, .otp], [.email, .backup, .remember, .passkey], [.password, .otp, .email, .backup, .remember, .passkey]] {
            let claims = SessionClaims(
                common: CommonClaims(user: text, issuedAt: f.now, expiresAt: f.now + 60, epoch: UInt64(Int64.max)),
                sessionID: text, authTime: -5, methods: methods
            )
            let token = try f.authority.sign(claims)
            #expect(token == f.forge(header: f.header(), payload: Self.sessionJSON(f, claims)))
        }
    }

    @Test("the other kinds, HS256", arguments: strings)
    func otherKinds(text: String) throws {
        let f = try TokenFixture()
        let common = CommonClaims(user: text, issuedAt: 0, expiresAt: Int64.max, epoch: 0)

        var w = Self.commonJSON(f, common)
        w.raw(",\"did\":"); w.string(text); w.raw(",\"gen\":"); w.integer(UInt64.max); w.raw("}")
        let remember = try f.authority.sign(RememberClaims(common: common, deviceID: text, generation: UInt64.max))
        #expect(remember == f.forge(header: f.header(typ: "gh-remember"), payload: String(decoding: w.bytes, as: UTF8.self), kind: .remember))

        for purpose in [ChallengeClaims.Purpose.login, .enroll] {
            w = Self.commonJSON(f, common)
            w.raw(",\"cid\":"); w.string(text); w.raw(",\"purpose\":"); w.string(purpose.rawValue); w.raw("}")
            let challenge = try f.authority.sign(ChallengeClaims(common: common, challengeID: text, purpose: purpose))
            #expect(challenge == f.forge(header: f.header(typ: "gh-challenge"), payload: String(decoding: w.bytes, as: UTF8.self), kind: .challenge))
        }

        w = Self.commonJSON(f, common)
        w.raw(",\"jti\":"); w.string(text); w.raw("}")
        let reset = try f.authority.sign(ResetClaims(common: common, tokenID: text))
        #expect(reset == f.forge(header: f.header(typ: "gh-reset"), payload: String(decoding: w.bytes, as: UTF8.self), kind: .reset))
    }

    @Test("session tokens, EdDSA (deterministic signatures)", arguments: strings)
    func edDSASession(text: String) throws {
        let f = try TokenFixture(sessionAlgorithm: .edDSA)
        let claims = SessionClaims(common: f.common(user: text), sessionID: text, authTime: f.now, methods: [.passkey])
        let token = try f.authority.sign(claims)
        let input = Base64URL.encode(Array(f.header(alg: "EdDSA").utf8)) + "." + Base64URL.encode(Array(Self.sessionJSON(f, claims).utf8))
        let secret = try #require(Base64URL.decode(f.file.keys[0].secret))
        let seed = HMACKey(.sha256, key: secret).authenticationCode(for: Array("gatehouse/v1/session/ed25519".utf8))
        let signature = try Array(input.utf8).withUnsafeBytes { try Ed25519PrivateKey(seed: seed).signature(for: $0) }
        #expect(token == input + "." + Base64URL.encode(signature))
    }

    @Test("what is signed verifies to the same claims, at any string length up to the limits")
    func roundTripLengths() throws {
        let f = try TokenFixture()
        for length in [1, 15, 16, 100, 128] {
            let sid = String(repeating: "s", count: length)
            let user = String(repeating: "u", count: min(253, length * 2)) + "\u{1}"
            let claims = SessionClaims(common: f.common(user: user), sessionID: sid, authTime: f.now, methods: [.password, .otp])
            #expect(try f.authority.verifySession(f.authority.sign(claims), now: f.now) == claims)
        }
    }

    @Test("a byte the fast claims reader must stop at, at any offset of sub and sid, reads back as signed")
    func stopsAtEveryOffset() throws {
        let f = try TokenFixture()
        for stop in ["\"", "\\", "\u{1}", "\u{1F}", "\u{7F}", "é", "\n"] {
            for offset in 0..<40 {
                let text = String(repeating: "a", count: offset) + stop + String(repeating: "b", count: 40 - offset)
                for (user, sid) in [(text, "s-1"), ("jane@example.org", String(text.prefix(60)))] {
                    let claims = SessionClaims(common: f.common(user: user), sessionID: sid, authTime: f.now, methods: [.password])
                    #expect(try f.authority.verifySession(f.authority.sign(claims), now: f.now) == claims)
                }
            }
        }
    }

    @Test("a raw control byte at any offset of sub is refused, as the strict parser refuses it")
    func rawControlAtEveryOffset() throws {
        let f = try TokenFixture()
        for offset in 0..<40 {
            for raw in ["\u{1}", "\u{1F}", "\t"] {
                let user = String(repeating: "a", count: offset) + raw + "@example.org"
                let token = f.forge(header: f.header(), payload: f.sessionPayload().replacingOccurrences(of: "jane@example.org", with: user))
                #expect(f.verifyError(token) == .invalidClaims, "offset \(offset)")
            }
        }
    }

    @Test("integers in the canonical layout: plain digits up to 18, no leading zero, read exactly (a space after one leaves the layout; the strict parser reads it)", arguments: [
        ("0", 0), ("7", 7), ("00", nil), ("07", nil), ("12345678", 12_345_678), ("01234567", nil), ("99999999", 99_999_999),
        ("123456789", 123_456_789), ("1800000000", 1_800_000_000), ("123456789012345678", 123_456_789_012_345_678),
        ("999999999999999999", 999_999_999_999_999_999), ("1000000000000000000", nil), ("1234567:", nil), ("12345678/", nil),
        ("1e5", nil), ("1.5", nil), ("-1", nil), ("", nil), ("\"1\"", nil), ("1234567 ", 1_234_567),
    ] as [(String, Int64?)])
    func canonicalIntegers(text: String, value: Int64?) throws {
        let f = try TokenFixture()
        let payload = f.sessionPayload().replacingOccurrences(of: "\"ep\":7,", with: "\"ep\":\(text),")
        let token = f.forge(header: f.header(), payload: payload)
        if let value {
            #expect(try f.authority.verifySession(token, now: f.now).common.epoch == UInt64(value))
        } else {
            #expect(f.verifyError(token) == .invalidClaims || f.verifyError(token) == .malformed)
        }
        // The same number as auth_time (bounded by iat + leeway, so small values only).
        if let value, value <= f.now {
            let authPayload = f.sessionPayload().replacingOccurrences(of: "\"auth_time\":\(f.now)", with: "\"auth_time\":\(text)")
            #expect(try f.authority.verifySession(f.forge(header: f.header(), payload: authPayload), now: f.now).authTime == value)
        }
    }

    @Test("claims the verifier would refuse still cannot be signed with a bad time order")
    func refusedClaims() throws {
        let f = try TokenFixture()
        let inverted = CommonClaims(user: "u", issuedAt: f.now, expiresAt: f.now, epoch: 1)
        #expect(throws: TokenError.invalidClaims) { try f.authority.sign(ResetClaims(common: inverted, tokenID: "j")) }
        let negative = CommonClaims(user: "u", issuedAt: -1, expiresAt: f.now, epoch: 1)
        #expect(throws: TokenError.invalidClaims) { try f.authority.sign(ResetClaims(common: negative, tokenID: "j")) }
        let epoch = CommonClaims(user: "u", issuedAt: f.now, expiresAt: f.now + 1, epoch: UInt64(Int64.max) + 1)
        #expect(throws: TokenError.invalidClaims) { try f.authority.sign(ResetClaims(common: epoch, tokenID: "j")) }
    }
}

@Suite("Keyring")
struct KeyringTests {
    @Test("rotation: new key signs, the old one still verifies, retired ones do not")
    func rotation() throws {
        let f = try TokenFixture()
        let oldToken = try f.session()
        var file = f.file
        let oldKid = f.kid
        let entry = try file.rotate()
        f.authority.keys.replace(with: try Keyring(file))
        let newToken = try f.session()
        #expect(newToken != oldToken)
        #expect(f.verifyError(oldToken) == nil)
        #expect(f.verifyError(newToken) == nil)
        #expect(f.authority.keys.keyring.activeKeyID == entry.kid)
        try file.retire(kid: oldKid)
        f.authority.keys.replace(with: try Keyring(file))
        #expect(f.verifyError(oldToken) == .unknownKey)
        #expect(f.verifyError(newToken) == nil)
        #expect(throws: CoreError.self) { try file.retire(kid: entry.kid) }
    }

    @Test("invalid keyring files are refused")
    func validation() throws {
        let good = try KeyringFile.newEntry(state: .active)
        var second = try KeyringFile.newEntry(state: .active)
        #expect(throws: CoreError.self) { try KeyringFile(keys: [good, second]).validate() }
        second.state = .verify
        #expect(throws: Never.self) { try KeyringFile(keys: [good, second]).validate() }
        var noActive = good
        noActive.state = .verify
        #expect(throws: CoreError.self) { try KeyringFile(keys: [noActive]).validate() }
        var short = good
        short.secret = Base64URL.encode([UInt8](repeating: 1, count: 31))
        #expect(throws: CoreError.self) { try KeyringFile(keys: [short]).validate() }
        var badKid = good
        badKid.kid = "a/b"
        #expect(throws: CoreError.self) { try KeyringFile(keys: [badKid]).validate() }
        second.kid = good.kid
        #expect(throws: CoreError.self) { try KeyringFile(keys: [good, second]).validate() }
        #expect(throws: CoreError.self) { try KeyringFile(json: Data("{\"version\":1}".utf8)) }
        #expect(throws: CoreError.self) { try KeyringFile(json: Data("not json".utf8)) }
    }

    @Test("file round trip: written 0600, read back equal")
    func fileRoundTrip() throws {
        let dir = try External.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("keyring.json").path
        let file = KeyringFile(keys: [try KeyringFile.newEntry(state: .active, sessionAlgorithm: .edDSA)])
        try KeyFiles.writeSecret(file.jsonData(), to: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(try KeyringFile(json: KeyFiles.read(path: path)) == file)
        #expect(try Keyring.load(path: path).activeKeyID == file.keys[0].kid)
    }

    @Test("reloading while other threads verify never fails a valid token", .timeLimit(.minutes(1)))
    func concurrentReload() async throws {
        let f = try TokenFixture()
        let token = try f.session()
        var file = f.file
        // Precompute several rotated keyrings that all still verify the original key.
        var rings: [Keyring] = []
        for _ in 0..<5 {
            _ = try file.rotate()
            rings.append(try Keyring(file))
        }
        let store = f.authority.keys
        let prepared = rings
        let failures = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var failed = 0
                    for _ in 0..<20_000 where (try? f.authority.verifySession(token, now: f.now)) == nil { failed += 1 }
                    return failed
                }
            }
            group.addTask {
                for i in 0..<2_000 { store.replace(with: prepared[i % prepared.count]) }
                return 0
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}
