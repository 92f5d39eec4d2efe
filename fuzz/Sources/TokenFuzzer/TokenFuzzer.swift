import FuzzSupport
import GatehouseCore
import GatehouseCrypto

// libFuzzer target over TokenAuthority's verifier (compact JWS, docs/tokens.md) with a fixed
// keyring: an active HS256 key, a verify-only key that signs session tokens with EdDSA, and a
// retired key.
//
// The first byte picks how the rest is used:
// 0. as a token, verified as each of the four kinds;
// 1. as a header and a claims object, which this program encodes and signs properly with a key
//    it picks (active, verify-only, retired or unknown), so the verifier's claim parser is
//    reached with arbitrary JSON;
// 2. as claims values, signed by TokenAuthority itself (HS256, or EdDSA for a session), then
//    verified, then changed in one byte and verified again.
//
// Invariants:
// - whatever verifies passes an independent check of the rules: at most 4096 bytes, three
//   base64url segments, a header that is exactly {alg, kid, typ} naming a key that may verify
//   with that key's algorithm for the kind and the kind's typ, a signature that this program
//   recomputes, claims that are exactly the kind's members (read with JSONObjectReader) with the
//   values returned, integers written as plain digits, `iss` ours and the times valid at `now`;
// - a token verifies as at most one kind;
// - sign → verify gives back the very claims signed exactly when they are within the limits
//   verification enforces (lengths, 18-digit integers, times), and fails otherwise;
// - a signed token changed in any one byte does not verify.

private enum Fixed {
    static let issuer = "https://gatehouse.example"
    static let now: Int64 = 1_800_000_000
    static let leeway: Int64 = 10
    static let activeSecret = Base64URL.encode(Array(0..<32).map { UInt8($0) })
    static let edSecret = Base64URL.encode(Array(0..<32).map { UInt8(100 + $0) })
    static let retiredSecret = Base64URL.encode(Array(0..<32).map { UInt8(200 + $0) })
    static let file = KeyringFile(keys: [
        .init(kid: "k-active", secret: activeSecret, state: .active),
        .init(kid: "k-ed", secret: edSecret, state: .verify, sessionAlgorithm: .edDSA),
        .init(kid: "k-retired", secret: retiredSecret, state: .retired),
    ])
    static let keyring = try! Keyring(file)
    static let authority = TokenAuthority(issuer: issuer, keys: KeyringStore(keyring), leeway: leeway)
    /// The same keys with the EdDSA key active: signs session tokens with EdDSA.
    static let edAuthority = TokenAuthority(issuer: issuer, keys: KeyringStore(try! Keyring(KeyringFile(keys: [
        .init(kid: "k-active", secret: activeSecret, state: .verify),
        .init(kid: "k-ed", secret: edSecret, state: .active, sessionAlgorithm: .edDSA),
    ]))), leeway: leeway)
    static let edKey = try! Ed25519PrivateKey(
        seed: HMACKey(.sha256, key: Base64URL.decode(edSecret)!).authenticationCode(for: Array("gatehouse/v1/session/ed25519".utf8)))
}

@main
enum TokenFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input) }
    }
}

/// The outcome of verifying as one kind, as comparable claims.
private enum Verified: Equatable {
    case session(SessionClaims)
    case remember(RememberClaims)
    case challenge(ChallengeClaims)
    case reset(ResetClaims)

    var common: CommonClaims {
        switch self {
        case .session(let c): c.common
        case .remember(let c): c.common
        case .challenge(let c): c.common
        case .reset(let c): c.common
        }
    }
}

private func verify(_ token: String, as kind: TokenKind, with authority: TokenAuthority = Fixed.authority) -> Result<Verified, TokenError> {
    do throws(TokenError) {
        switch kind {
        case .session: return .success(.session(try authority.verifySession(token, now: Fixed.now)))
        case .remember: return .success(.remember(try authority.verifyRemember(token, now: Fixed.now)))
        case .challenge: return .success(.challenge(try authority.verifyChallenge(token, now: Fixed.now)))
        case .reset: return .success(.reset(try authority.verifyReset(token, now: Fixed.now)))
        }
    } catch {
        return .failure(error)
    }
}

/// Verifies `token` as every kind; checks what verifies, and that at most one kind does.
@discardableResult
private func verifyAll(_ token: String) -> [TokenKind: Verified] {
    var accepted: [TokenKind: Verified] = [:]
    for kind in TokenKind.allCases {
        if case .success(let claims) = verify(token, as: kind) {
            checkAccepted(Array(token.utf8), kind: kind, claims: claims)
            accepted[kind] = claims
        }
    }
    Fuzz.check(accepted.count <= 1, "a token verified as \(accepted.keys.map(\.name)): \(token)")
    return accepted
}

func fuzzOneInput(_ input: FuzzInput) {
    var input = input
    switch input.byte() % 3 {
    case 0:
        verifyAll(String(decoding: input.rest(), as: UTF8.self))
    case 1:
        signedByHand(&input)
    default:
        roundTrip(&input)
    }
}

// MARK: Tokens signed here over arbitrary JSON

private func signedByHand(_ input: inout FuzzInput) {
    let kind = input.pick(TokenKind.allCases)
    let kid = input.pick(["k-active", "k-ed", "k-retired", "k-unknown"])
    let algorithm = kid == "k-ed" && kind == .session ? "EdDSA" : "HS256"
    let header: [UInt8]
    switch input.byte() % 4 {
    case 0: header = Array("{\"alg\":\"\(algorithm)\",\"kid\":\"\(kid)\",\"typ\":\"\(kind.typ)\"}".utf8)
    case 1: header = Array("{\"typ\":\"\(kind.typ)\", \"kid\" : \"\(kid)\",\"alg\":\"\(algorithm)\"}".utf8)
    default: header = input.piece(maxLength: 300)
    }
    let claims = input.rest()
    let signingInput = Base64URL.encode(header) + "." + Base64URL.encode(claims)
    let signature: [UInt8]
    if algorithm == "EdDSA" {
        signature = Array(signingInput.utf8).withUnsafeBytes { try! Fixed.edKey.signature(for: $0) }
    } else {
        signature = HMACKey(.sha256, key: derivedKey(kid: kid, kind: kind)).authenticationCode(for: Array(signingInput.utf8))
    }
    let token = signingInput + "." + Base64URL.encode(signature)
    let accepted = verifyAll(token)
    // What a retired or unknown key signed never verifies.
    if kid == "k-retired" || kid == "k-unknown" {
        Fuzz.check(accepted.isEmpty, "a token signed by \(kid) verified")
    }
}

/// The per-kind HMAC key of `kid`, as the keyring derives it: HMAC-SHA256(secret, label).
private func derivedKey(kid: String, kind: TokenKind) -> [UInt8] {
    if let key = Fixed.keyring.derivedKey(kid: kid, kind: kind) { return key }
    // An unknown kid: some other key.
    return HMACKey(.sha256, key: Array(kid.utf8)).authenticationCode(for: Array(kind.derivationLabel.utf8))
}

// MARK: Sign → verify

private func roundTrip(_ input: inout FuzzInput) {
    let kind = input.pick(TokenKind.allCases)
    let edDSA = input.bool()
    func text(_ max: Int) -> String {
        // Mostly short ASCII; sometimes anything the input holds.
        input.bool() ? String(decoding: input.piece(maxLength: max), as: UTF8.self) : "u\(input.int(in: 0...99_999))"
    }
    func integer() -> Int64 {
        switch input.byte() % 4 {
        case 0: Int64(input.int(in: 0...1_000_000))
        case 1: Fixed.now + Int64(input.int(in: -100_000...100_000))
        case 2: Int64(input.int(in: 999_999_999_999_999_000...1_000_000_000_000_001_000))
        default: Int64(bitPattern: input.uint64())
        }
    }
    let user = text(300)
    let iat = integer()
    let exp = input.bool() ? iat &+ Int64(input.int(in: -5...100_000)) : integer()
    let epoch = UInt64(bitPattern: integer())
    let common = CommonClaims(user: user, issuedAt: iat, expiresAt: exp, epoch: epoch)
    let signer = edDSA ? Fixed.edAuthority : Fixed.authority

    let expected: Verified
    var withinLimits = user.utf8.count <= 254 && !user.isEmpty && iat >= 0 && iat < 1_000_000_000_000_000_000
        && exp >= 0 && exp < 1_000_000_000_000_000_000 && epoch < 1_000_000_000_000_000_000
        && exp > iat && iat <= Fixed.now + Fixed.leeway && Fixed.now < exp + Fixed.leeway
    let signed: Result<String, TokenError>
    do throws(TokenError) {
        switch kind {
        case .session:
            let sid = text(200)
            let authTime = input.bool() ? iat - Int64(input.int(in: -20...1000)) : integer()
            var methods = AuthMethods(rawValue: input.byte() & 0x3F)
            if input.byte() == 0 { methods = [] }
            withinLimits = withinLimits && sid.utf8.count <= 128 && authTime >= 0 && authTime < 1_000_000_000_000_000_000
                && authTime <= iat + Fixed.leeway && !methods.isEmpty
            let claims = SessionClaims(common: common, sessionID: sid, authTime: authTime, methods: methods)
            expected = .session(claims)
            signed = .success(try signer.sign(claims))
        case .remember:
            let did = text(200)
            let generation = UInt64(bitPattern: integer())
            withinLimits = withinLimits && did.utf8.count <= 128 && generation < 1_000_000_000_000_000_000
            let claims = RememberClaims(common: common, deviceID: did, generation: generation)
            expected = .remember(claims)
            signed = .success(try signer.sign(claims))
        case .challenge:
            let cid = text(200)
            withinLimits = withinLimits && cid.utf8.count <= 128
            let claims = ChallengeClaims(common: common, challengeID: cid, purpose: input.bool() ? .login : .enroll)
            expected = .challenge(claims)
            signed = .success(try signer.sign(claims))
        case .reset:
            let jti = text(200)
            withinLimits = withinLimits && jti.utf8.count <= 128
            let claims = ResetClaims(common: common, tokenID: jti)
            expected = .reset(claims)
            signed = .success(try signer.sign(claims))
        }
    } catch {
        // sign refuses only claims no verifier could accept.
        Fuzz.check(error == .invalidClaims && !(epoch <= UInt64(Int64.max) && iat >= 0 && exp > iat),
                   "sign failed with \(error) for iat \(iat), exp \(exp), ep \(epoch)")
        return
    }
    guard case .success(let token) = signed else { return }
    let result = verify(token, as: kind)
    switch result {
    case .success(let claims):
        Fuzz.check(withinLimits, "claims beyond the limits verified: \(claims)")
        Fuzz.check(sameBytes(claims, expected), "verify gave \(claims), signed \(expected)")
        checkAccepted(Array(token.utf8), kind: kind, claims: claims)
    case .failure(let error):
        // Over-long text is refused only if the token as a whole stays within 4096 bytes.
        Fuzz.check(!withinLimits || token.utf8.count > TokenAuthority.maximumTokenLength,
                   "claims within the limits did not verify (\(error)): \(expected)")
    }
    verifyAll(token)

    // One byte changed: never verifies.
    var bytes = Array(token.utf8)
    let position = input.int(in: 0...(bytes.count - 1))
    let replacement = input.byte()
    guard bytes[position] != replacement else { return }
    bytes[position] = replacement
    let changed = verifyAll(String(decoding: bytes, as: UTF8.self))
    Fuzz.check(changed.isEmpty, "a token changed at byte \(position) still verified: \(String(decoding: bytes, as: UTF8.self))")
}

/// Equal claims, strings compared byte for byte (String's == compares canonical equivalence).
private func sameBytes(_ a: Verified, _ b: Verified) -> Bool {
    func bytes(_ v: Verified) -> [[UInt8]] {
        let strings: [String] = switch v {
        case .session(let c): [c.common.user, c.sessionID]
        case .remember(let c): [c.common.user, c.deviceID]
        case .challenge(let c): [c.common.user, c.challengeID]
        case .reset(let c): [c.common.user, c.tokenID]
        }
        return strings.map { Array($0.utf8) }
    }
    return a == b && bytes(a) == bytes(b)
}

// MARK: The independent check of a verified token

private func checkAccepted(_ token: [UInt8], kind: TokenKind, claims: Verified) {
    let description = String(decoding: token, as: UTF8.self)
    Fuzz.check(token.count <= TokenAuthority.maximumTokenLength, "a token of \(token.count) bytes verified")
    let segments = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    Fuzz.check(segments.count == 3 && segments.allSatisfy { !$0.isEmpty }, "a token without three segments verified: \(description)")
    guard let headerBytes = Base64URL.decode(String(decoding: segments[0], as: UTF8.self)),
          let payloadBytes = Base64URL.decode(String(decoding: segments[1], as: UTF8.self)),
          let signature = Base64URL.decode(String(decoding: segments[2], as: UTF8.self))
    else { Fuzz.fail("a token with a segment that is not canonical base64url verified: \(description)") }

    // Header: exactly alg, kid, typ, strings without escapes.
    guard case .object(let header) = parseJSON(headerBytes), Set(header.keys) == ["alg", "kid", "typ"],
          case .string(let alg) = header["alg"], case .string(let kid) = header["kid"], case .string(let typ) = header["typ"]
    else { Fuzz.fail("a token whose header is not exactly {alg, kid, typ} verified: \(String(decoding: headerBytes, as: UTF8.self))") }
    Fuzz.check(!headerBytes.contains(UInt8(ascii: "\\")), "a header with an escape verified: \(String(decoding: headerBytes, as: UTF8.self))")
    Fuzz.check(kid == "k-active" || kid == "k-ed", "a token of key \(kid.debugDescription) verified")
    let expectedAlgorithm = kid == "k-ed" && kind == .session ? "EdDSA" : "HS256"
    Fuzz.check(alg == expectedAlgorithm, "alg \(alg) verified for key \(kid), kind \(kind.name)")
    Fuzz.check(typ == kind.typ, "typ \(typ) verified as \(kind.name)")

    // Signature, recomputed.
    let signingInput = Array(token[..<(segments[0].count + 1 + segments[1].count)])
    if expectedAlgorithm == "EdDSA" {
        let valid = signature.withUnsafeBytes { s in signingInput.withUnsafeBytes { Fixed.edKey.publicKey.isValidSignature(s, for: $0) } }
        Fuzz.check(signature.count == 64 && valid, "a token with a bad EdDSA signature verified")
    } else {
        Fuzz.check(signature == HMACKey(.sha256, key: derivedKey(kid: kid, kind: kind)).authenticationCode(for: signingInput),
                   "a token with a bad HS256 signature verified")
    }

    // Claims: exactly the kind's members, the values returned.
    let specific: Set<String> = switch kind {
    case .session: ["sid", "auth_time", "amr"]
    case .remember: ["did", "gen"]
    case .challenge: ["cid", "purpose"]
    case .reset: ["jti"]
    }
    guard case .object(let members) = parseJSON(payloadBytes), Set(members.keys) == specific.union(["iss", "sub", "iat", "exp", "ep"]) else {
        Fuzz.fail("claims that are not exactly the members of \(kind.name) verified: \(String(decoding: payloadBytes, as: UTF8.self))")
    }
    guard let numbers = plainIntegerMembers(payloadBytes) else { Fuzz.fail("claims the reference scanner cannot read verified") }
    func integer(_ name: String) -> Int64 {
        guard case .integer(let n) = members[name], n >= 0, n < 1_000_000_000_000_000_000, numbers.contains(name) else {
            Fuzz.fail("claim \(name) verified but is not a plain integer of at most 18 digits: \(String(decoding: payloadBytes, as: UTF8.self))")
        }
        return n
    }
    func string(_ name: String, max: Int) -> String {
        guard case .string(let s) = members[name], s.utf8.count <= max else { Fuzz.fail("claim \(name) verified but is not a string of at most \(max) bytes") }
        return s
    }
    Fuzz.check(members["iss"] == .string(Fixed.issuer), "a foreign iss verified")
    let user = string("sub", max: 254)
    Fuzz.check(!user.isEmpty, "an empty sub verified")
    let common = CommonClaims(user: user, issuedAt: integer("iat"), expiresAt: integer("exp"), epoch: UInt64(integer("ep")))
    Fuzz.check(common.expiresAt > common.issuedAt && common.issuedAt <= Fixed.now + Fixed.leeway && Fixed.now < common.expiresAt + Fixed.leeway,
               "times iat \(common.issuedAt), exp \(common.expiresAt) verified at \(Fixed.now)")
    let reference: Verified
    switch kind {
    case .session:
        guard case .array(let names) = members["amr"], !names.isEmpty else { Fuzz.fail("amr verified but is not a non-empty array") }
        var methods = AuthMethods()
        for name in names {
            guard case .string(let s) = name, let m = AuthMethods.names.first(where: { $0.1 == s })?.0, !methods.contains(m) else {
                Fuzz.fail("amr \(names) verified")
            }
            methods.insert(m)
        }
        let authTime = integer("auth_time")
        Fuzz.check(authTime <= common.issuedAt + Fixed.leeway, "auth_time after iat verified")
        reference = .session(SessionClaims(common: common, sessionID: string("sid", max: 128), authTime: authTime, methods: methods))
    case .remember:
        reference = .remember(RememberClaims(common: common, deviceID: string("did", max: 128), generation: UInt64(integer("gen"))))
    case .challenge:
        let purpose: ChallengeClaims.Purpose
        switch members["purpose"] {
        case .string("login"): purpose = .login
        case .string("enroll"): purpose = .enroll
        default: Fuzz.fail("purpose \(String(describing: members["purpose"])) verified")
        }
        reference = .challenge(ChallengeClaims(common: common, challengeID: string("cid", max: 128), purpose: purpose))
    case .reset:
        reference = .reset(ResetClaims(common: common, tokenID: string("jti", max: 128)))
    }
    Fuzz.check(sameBytes(claims, reference), "verify returned \(claims), the claims say \(reference)")
}

private func parseJSON(_ bytes: [UInt8]) -> JSONValue? {
    bytes.withUnsafeBytes { try? JSONObjectReader.parse($0) }
}

/// The names of the top-level members of a JSON object whose value is written as plain digits
/// (no sign, fraction or exponent); nil if `bytes` is not an object this scanner can read.
private func plainIntegerMembers(_ bytes: [UInt8]) -> Set<String>? {
    var i = 0
    func ws() { while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 } }
    /// Skips one JSON value (already known to be valid), returning its text.
    func skipValue() -> ArraySlice<UInt8>? {
        let start = i
        var depth = 0
        var inString = false
        while i < bytes.count {
            let b = bytes[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 2; continue }
                if b == UInt8(ascii: "\"") { inString = false; i += 1; if depth == 0 { return bytes[start..<i] }; continue }
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { return bytes[start..<i] }
                depth -= 1
                if depth == 0 { i += 1; return bytes[start..<i] }
            case UInt8(ascii: ","), 0x20, 0x09, 0x0A, 0x0D:
                if depth == 0 { return bytes[start..<i] }
            default: break
            }
            i += 1
        }
        return bytes[start..<i]
    }
    var plain: Set<String> = []
    ws()
    guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
    i += 1
    while true {
        ws()
        guard i < bytes.count else { return nil }
        if bytes[i] == UInt8(ascii: "}") { return plain }
        if bytes[i] == UInt8(ascii: ",") { i += 1; ws() }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
        guard let nameEnd = bytes[(i + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        let name = String(decoding: bytes[(i + 1)..<nameEnd], as: UTF8.self)
        i = nameEnd + 1
        ws()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        ws()
        guard let value = skipValue() else { return nil }
        if !value.isEmpty, value.allSatisfy({ (0x30...0x39).contains($0) }) { plain.insert(name) }
    }
}
