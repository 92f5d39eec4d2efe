public import GatehouseCrypto
import Glibc

/// Signs and verifies Gatehouse's compact-JWS tokens (docs/tokens.md).
///
/// Verification is strict and ordered so that nothing untrusted is interpreted before the
/// signature holds: size limit → three canonical base64url segments → header with exactly
/// `alg`, `kid`, `typ` → key by `kid` (active or verify only) → `alg` must equal the algorithm
/// that key uses for this kind → `typ` must be this kind → signature (constant time) → only then
/// the claims, which must be exactly this kind's set with the right types → `iss`, `iat`, `exp`.
///
/// The HS256 paths allocate only what they return: verifying, the claim strings of the result
/// that do not fit inline; signing, the token string, written once in place.
public final class TokenAuthority: Sendable {
    /// Tokens longer than this are refused before any parsing.
    public static let maximumTokenLength = 4096

    /// The `iss` written and required.
    public let issuer: String
    private let issuerBytes: [UInt8]
    /// `{"iss":"<issuer>","sub":"` as our own signer writes it.
    private let canonicalPrefix: [UInt8]
    /// Clock skew tolerated on `exp` and `iat`, seconds.
    public let leeway: Int64
    /// The keyring source (reloadable).
    public let keys: KeyringStore
    private let random: any SecureRandomSource

    /// Creates an authority.
    public init(issuer: String, keys: KeyringStore, leeway: Int64 = 10, random: any SecureRandomSource = SystemRandom()) {
        self.issuer = issuer
        self.issuerBytes = Array(issuer.utf8)
        var w = JSONWriter()
        w.raw("{\"iss\":"); w.string(issuer); w.raw(",\"sub\":\"")
        self.canonicalPrefix = w.bytes
        self.keys = keys
        self.leeway = leeway
        self.random = random
    }

    // MARK: Signing

    /// Signs session claims with the active key (HS256 or EdDSA as the key says).
    public func sign(_ claims: SessionClaims) throws(TokenError) -> String {
        try sign(kind: .session, common: claims.common, stringBytes: claims.sessionID.utf8.count) { w in
            w.raw(",\"sid\":"); w.string(claims.sessionID)
            w.raw(",\"auth_time\":"); w.integer(claims.authTime)
            w.raw(",\"amr\":[")
            var first = true
            for (method, name) in AuthMethods.names where claims.methods.contains(method) {
                if !first { w.raw(",") }
                first = false
                w.string(name)
            }
            w.raw("]")
        }
    }

    /// Signs remember-device claims.
    public func sign(_ claims: RememberClaims) throws(TokenError) -> String {
        try sign(kind: .remember, common: claims.common, stringBytes: claims.deviceID.utf8.count) { w in
            w.raw(",\"did\":"); w.string(claims.deviceID)
            w.raw(",\"gen\":"); w.integer(claims.generation)
        }
    }

    /// Signs challenge claims.
    public func sign(_ claims: ChallengeClaims) throws(TokenError) -> String {
        try sign(kind: .challenge, common: claims.common, stringBytes: claims.challengeID.utf8.count + claims.purpose.rawValue.utf8.count) { w in
            w.raw(",\"cid\":"); w.string(claims.challengeID)
            w.raw(",\"purpose\":"); w.string(claims.purpose.rawValue)
        }
    }

    /// Signs reset claims.
    public func sign(_ claims: ResetClaims) throws(TokenError) -> String {
        try sign(kind: .reset, common: claims.common, stringBytes: claims.tokenID.utf8.count) { w in
            w.raw(",\"jti\":"); w.string(claims.tokenID)
        }
    }

    /// Writes the claims JSON into scratch memory (on the stack for ordinary sizes), then the
    /// token into the storage of the returned string: header, `.`, payload, `.`, signature. The
    /// HS256 path allocates only that string.
    ///
    /// `stringBytes` is the UTF-8 length of the kind's own string values; with the issuer's and
    /// the user's it bounds the JSON (a byte escapes to at most 6), so the scratch is large
    /// enough by construction (`ClaimsWriter` traps rather than write past it).
    private func sign(kind: TokenKind, common: CommonClaims, stringBytes: Int, specific: (inout ClaimsWriter) -> Void) throws(TokenError) -> String {
        guard common.epoch <= UInt64(Int64.max), common.issuedAt >= 0, common.expiresAt > common.issuedAt else {
            throw TokenError.invalidClaims
        }
        let ring = keys.keyring
        guard let key = ring.verifying.first(where: { $0.state == .active }) else { throw TokenError.signingFailed }
        let capacity = ClaimsWriter.fixedBytes + 6 * (issuerBytes.count + common.user.utf8.count + stringBytes)
        let token = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { scratch -> String? in
            var w = ClaimsWriter(scratch)
            w.raw("{\"iss\":"); w.string(issuer)
            w.raw(",\"sub\":"); w.string(common.user)
            w.raw(",\"iat\":"); w.integer(common.issuedAt)
            w.raw(",\"exp\":"); w.integer(common.expiresAt)
            w.raw(",\"ep\":"); w.integer(common.epoch)
            specific(&w)
            w.raw("}")
            let json = w.written
            return key.encodedHeaders.withUnsafeBufferPointer { headers in
                headers[kind.rawValue].withUnsafeBytes { header in
                    Self.assemble(header: header, claims: json, key: key, kind: kind)
                }
            }
        }
        guard let token else { throw TokenError.signingFailed }
        return token
    }

    /// `header.payload.signature` built once, in place in the string's own storage; nil when
    /// EdDSA signing fails.
    private static func assemble(header: UnsafeRawBufferPointer, claims: UnsafeRawBufferPointer, key: Keyring.PreparedKey, kind: TokenKind) -> String? {
        let algorithm = key.algorithm(for: kind)
        let signingLength = header.count + 1 + Base64URL.encodedLength(claims.count)
        let total = signingLength + 1 + (algorithm == .hs256 ? 43 : 86)
        var failed = false
        let token = String(unsafeUninitializedCapacity: total) { buffer -> Int in
            let out = UnsafeMutableRawBufferPointer(buffer)
            out.copyMemory(from: header)
            out[header.count] = UInt8(ascii: ".")
            Base64URL.encode(claims, into: UnsafeMutableRawBufferPointer(rebasing: out[(header.count + 1)..<signingLength]))
            out[signingLength] = UInt8(ascii: ".")
            let input = UnsafeRawBufferPointer(rebasing: out[0..<signingLength])
            let signatureText = UnsafeMutableRawBufferPointer(rebasing: out[(signingLength + 1)..<total])
            switch algorithm {
            case .hs256:
                withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { mac in
                    key.authenticate(kind, input, into: mac)
                    Base64URL.encode32(UnsafeRawBufferPointer(mac), into: signatureText)
                }
            case .edDSA:
                guard let signing = key.signingKey, let signature = try? signing.signature(for: input), signature.count == 64 else {
                    failed = true
                    return 0
                }
                signature.withUnsafeBytes { _ = Base64URL.encode($0, into: signatureText) }
            }
            return total
        }
        return failed ? nil : token
    }

    // MARK: Verifying

    /// Verifies a session token at `now` (Unix seconds).
    public func verifySession(_ token: String, now: Int64) throws(TokenError) -> SessionClaims {
        try withBytes(of: token) { (bytes) throws(TokenError) in try verifySession(bytes: bytes, now: now) }
    }

    /// Verifies a remember-device token.
    public func verifyRemember(_ token: String, now: Int64) throws(TokenError) -> RememberClaims {
        let raw = try verify(token, kind: .remember, now: now)
        guard let did = raw.did, let gen = raw.gen else { throw TokenError.invalidClaims }
        return RememberClaims(common: raw.common, deviceID: did, generation: UInt64(gen))
    }

    /// Verifies a challenge token.
    public func verifyChallenge(_ token: String, now: Int64) throws(TokenError) -> ChallengeClaims {
        let raw = try verify(token, kind: .challenge, now: now)
        guard let cid = raw.cid, let purpose = raw.purpose else { throw TokenError.invalidClaims }
        return ChallengeClaims(common: raw.common, challengeID: cid, purpose: purpose)
    }

    /// Verifies a reset token.
    public func verifyReset(_ token: String, now: Int64) throws(TokenError) -> ResetClaims {
        let raw = try verify(token, kind: .reset, now: now)
        guard let jti = raw.jti else { throw TokenError.invalidClaims }
        return ResetClaims(common: raw.common, tokenID: jti)
    }

    /// Runs `body` on the token's UTF-8 bytes, after the size check (which comes first and costs
    /// nothing: utf8.count is O(1) for native strings).
    @inline(__always)
    private func withBytes<R>(of token: String, _ body: (UnsafeBufferPointer<UInt8>) throws(TokenError) -> R) throws(TokenError) -> R {
        guard token.utf8.count <= Self.maximumTokenLength else { throw TokenError.oversized }
        // No `var` copy for a native string (the common case).
        do {
            if let result = try token.utf8.withContiguousStorageIfAvailable({ (bytes) throws(TokenError) in try body(bytes) }) {
                return result
            }
            var contiguous = token
            return try contiguous.withUTF8 { (bytes) throws(TokenError) in try body(bytes) }
        } catch {
            throw (error as? TokenError) ?? TokenError.malformed
        }
    }

    /// The session path: the claims are read straight into `SessionClaims` (in the layout our
    /// own signer writes, else by the strict general parser), with no intermediate copies.
    private func verifySession(bytes: UnsafeBufferPointer<UInt8>, now: Int64) throws(TokenError) -> SessionClaims {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.payloadCapacity(bytes.count)) { (buffer) throws(TokenError) in
            let json = try authenticatedPayload(bytes, kind: .session, into: buffer)
            let claims: SessionClaims
            if let fast = canonicalPrefix.withUnsafeBufferPointer({ SessionClaims(canonical: json, prefix: $0) }) {
                claims = fast
            } else {
                let raw = try ParsedClaims.parse(json, kind: .session, issuer: issuerBytes)
                guard let sid = raw.sid, let authTime = raw.authTime, let amr = raw.amr else { throw TokenError.invalidClaims }
                claims = SessionClaims(common: raw.common, sessionID: sid, authTime: authTime, methods: amr)
            }
            try checkTimes(issuedAt: claims.common.issuedAt, expiresAt: claims.common.expiresAt, now: now)
            guard claims.authTime <= claims.common.issuedAt + leeway else { throw TokenError.invalidClaims }
            return claims
        }
    }

    /// The other kinds: the strict general parser.
    private func verify(_ token: String, kind: TokenKind, now: Int64) throws(TokenError) -> ParsedClaims {
        try withBytes(of: token) { (bytes) throws(TokenError) in
            try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.payloadCapacity(bytes.count)) { (buffer) throws(TokenError) in
                let json = try authenticatedPayload(bytes, kind: kind, into: buffer)
                let claims = try ParsedClaims.parse(json, kind: kind, issuer: issuerBytes)
                try checkTimes(issuedAt: claims.common.issuedAt, expiresAt: claims.common.expiresAt, now: now)
                return claims
            }
        }
    }

    /// Room for the decoded payload of a token of `count` bytes (its payload text is shorter).
    @inline(__always)
    private static func payloadCapacity(_ count: Int) -> Int { count * 3 / 4 + 3 }

    /// `exp` after `iat`, `iat` not in the future, `exp` not past, with the leeway.
    @inline(__always)
    private func checkTimes(issuedAt: Int64, expiresAt: Int64, now: Int64) throws(TokenError) {
        guard expiresAt > issuedAt else { throw TokenError.invalidClaims }
        guard issuedAt <= now + leeway else { throw TokenError.issuedInFuture }
        guard now < expiresAt + leeway else { throw TokenError.expired }
    }

    /// Everything before the claims: three segments, header, key, signature; then the payload
    /// decoded into `buffer` (at least `payloadCapacity(bytes.count)` bytes). Returns the
    /// decoded claims JSON, authentic but not yet read.
    private func authenticatedPayload(
        _ bytes: UnsafeBufferPointer<UInt8>, kind: TokenKind, into buffer: UnsafeMutableBufferPointer<UInt8>
    ) throws(TokenError) -> UnsafeBufferPointer<UInt8> {
        // Split into exactly three non-empty segments.
        // memchr is vectorised; the byte loop was ~10% of a verify.
        guard let base = bytes.baseAddress else { throw TokenError.malformed }
        guard let p1 = memchr(base, 0x2E, bytes.count) else { throw TokenError.malformed }
        let firstDot = UnsafeRawPointer(p1) - UnsafeRawPointer(base)
        guard let p2 = memchr(base + firstDot + 1, 0x2E, bytes.count - firstDot - 1) else { throw TokenError.malformed }
        let secondDot = UnsafeRawPointer(p2) - UnsafeRawPointer(base)
        guard memchr(base + secondDot + 1, 0x2E, bytes.count - secondDot - 1) == nil else { throw TokenError.malformed }
        guard firstDot > 0, secondDot > firstDot + 1, secondDot < bytes.count - 1 else { throw TokenError.malformed }
        let headerText = UnsafeBufferPointer(rebasing: bytes[0..<firstDot])
        let payloadText = UnsafeBufferPointer(rebasing: bytes[(firstDot + 1)..<secondDot])
        let signatureText = UnsafeBufferPointer(rebasing: bytes[(secondDot + 1)...])
        let signingInput = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[0..<secondDot]))

        let ring = keys.keyring
        // Header: decoded on the stack (bounded: a valid header is far below 256 bytes).
        guard headerText.count <= 340 else { throw TokenError.malformed }
        // a header byte-identical to the one a key of ours writes for this kind says
        // alg, kid and typ already; decode and parse only anything else.
        let keyIndex: Int
        var found = -1
        for i in ring.verifying.indices where ring.verifying[i].encodedHeaders[kind.rawValue].withUnsafeBufferPointer({ h in
            h.count == headerText.count && memcmp(h.baseAddress!, headerText.baseAddress!, h.count) == 0
        }) {
            found = i
            break
        }
        if found >= 0 {
            keyIndex = found
        } else {
            keyIndex = try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { (buffer) throws(TokenError) in
                guard let n = Base64URL.decode(headerText, into: buffer) else { throw TokenError.malformed }
                let key = try Self.checkHeader(UnsafeBufferPointer(rebasing: buffer[0..<n]), ring: ring, kind: kind)
                return ring.verifying.firstIndex(where: { $0.kid == key.kid })!
            }
        }

        // Signature.
        let algorithm = ring.verifying[keyIndex].algorithm(for: kind)
        let signatureOK: Bool
        switch algorithm {
        case .hs256:
            // encode the expected MAC (43 chars, canonical) and compare the text in
            // constant time, instead of decoding the signature; same acceptance set.
            signatureOK = signatureText.count == 43 && withUnsafeTemporaryAllocation(byteCount: 80, alignment: 8) { buffer in
                let mac = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<32])
                ring.verifying[keyIndex].authenticate(kind, signingInput, into: mac)
                let text = UnsafeMutableRawBufferPointer(rebasing: buffer[32..<75])
                Base64URL.encode32(UnsafeRawBufferPointer(mac), into: text)
                return ConstantTime.equals(UnsafeRawBufferPointer(text), UnsafeRawBufferPointer(signatureText))
            }
        case .edDSA:
            signatureOK = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
                guard let n = Base64URL.decode(signatureText, into: buffer) else { return false }
                let signature = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buffer[0..<n]))
                return n == 64 && (ring.verifying[keyIndex].signingKey?.publicKey.isValidSignature(signature, for: signingInput) ?? false)
            }
        }
        guard signatureText.count <= 86, signatureOK else { throw TokenError.badSignature }

        // The claims, now that they are authentic (a length no canonical encoding has, or a
        // character outside the alphabet, is malformed).
        guard let n = Base64URL.decode(payloadText, into: buffer) else { throw TokenError.malformed }
        return UnsafeBufferPointer(rebasing: buffer[0..<n])
    }

    /// Parses the protected header and resolves the key; refuses anything but exactly
    /// `{"alg","kid","typ"}` with the expected values.
    private static func checkHeader(_ json: UnsafeBufferPointer<UInt8>, ring: Keyring, kind: TokenKind) throws(TokenError) -> Keyring.PreparedKey {
        var scanner = StrictJSONScanner(json)
        var alg: UnsafeBufferPointer<UInt8>?
        var kid: UnsafeBufferPointer<UInt8>?
        var typ: UnsafeBufferPointer<UInt8>?
        guard scanner.consume(UInt8(ascii: "{")) else { throw TokenError.malformed }
        var first = true
        while true {
            if first, scanner.consume(UInt8(ascii: "}")) { break }
            if !first {
                if scanner.consume(UInt8(ascii: "}")) { break }
                guard scanner.consume(UInt8(ascii: ",")) else { throw TokenError.malformed }
            }
            first = false
            guard let name = scanner.memberName(), scanner.consume(UInt8(ascii: ":")) else { throw TokenError.malformed }
            guard let value = scanner.rawStringValue() else { throw TokenError.malformed }
            if spanEquals(name, "alg") {
                guard alg == nil else { throw TokenError.malformed }
                alg = value
            } else if spanEquals(name, "kid") {
                guard kid == nil else { throw TokenError.malformed }
                kid = value
            } else if spanEquals(name, "typ") {
                guard typ == nil else { throw TokenError.malformed }
                typ = value
            } else {
                // crit, jku, jwk, x5u, … : not ours, never honoured.
                throw TokenError.malformed
            }
        }
        guard scanner.atEnd(), let alg, let kid, let typ else { throw TokenError.malformed }
        guard let key = ring.verifying.first(where: { spanEquals(kid, $0.kidBytes) }) else { throw TokenError.unknownKey }
        let expected: StaticString = key.algorithm(for: kind) == .hs256 ? "HS256" : "EdDSA"
        guard spanEquals(alg, expected) else { throw TokenError.algorithmMismatch }
        let typName: StaticString = switch kind {
        case .session: "gh-session"
        case .remember: "gh-remember"
        case .challenge: "gh-challenge"
        case .reset: "gh-reset"
        }
        guard spanEquals(typ, typName) else { throw TokenError.wrongType }
        return key
    }
}

/// Claims as parsed, before being shaped into the kind's struct.
struct ParsedClaims {
    var common: CommonClaims
    var sid: String?
    var authTime: Int64?
    var amr: AuthMethods?
    var did: String?
    var gen: Int64?
    var cid: String?
    var purpose: ChallengeClaims.Purpose?
    var jti: String?

    private enum Member: Int {
        case iss, sub, iat, exp, ep, sid, authTime, amr, did, gen, cid, purpose, jti
        var bit: UInt32 { 1 << UInt32(rawValue) }
    }

    private static func required(for kind: TokenKind) -> UInt32 {
        let common: [Member] = [.iss, .sub, .iat, .exp, .ep]
        let specific: [Member] = switch kind {
        case .session: [.sid, .authTime, .amr]
        case .remember: [.did, .gen]
        case .challenge: [.cid, .purpose]
        case .reset: [.jti]
        }
        return (common + specific).reduce(0) { $0 | $1.bit }
    }

    private static let requiredMasks: [UInt32] = TokenKind.allCases.map(required(for:))

    /// Parses a claims object that must hold exactly the members of `kind`, each once.
    static func parse(_ json: UnsafeBufferPointer<UInt8>, kind: TokenKind, issuer: [UInt8]) throws(TokenError) -> ParsedClaims {
        var s = StrictJSONScanner(json)
        var seen: UInt32 = 0
        var sub: String?
        var iat: Int64?, exp: Int64?, ep: Int64?
        var out = ParsedClaims(common: CommonClaims(user: "", issuedAt: 0, expiresAt: 0, epoch: 0))
        let allowed = requiredMasks[kind.rawValue]
        guard s.consume(UInt8(ascii: "{")) else { throw TokenError.malformed }
        var first = true
        while true {
            if s.consume(UInt8(ascii: "}")) { break }
            guard first || s.consume(UInt8(ascii: ",")) else { throw TokenError.malformed }
            first = false
            guard let name = s.memberName(), s.consume(UInt8(ascii: ":")) else { throw TokenError.malformed }
            guard let member = member(named: name), allowed & member.bit != 0 else { throw TokenError.invalidClaims }
            guard seen & member.bit == 0 else { throw TokenError.invalidClaims }  // duplicate
            seen |= member.bit
            switch member {
            case .iss:
                guard let v = s.rawStringValue(), spanEquals(v, issuer) else { throw TokenError.wrongIssuer }
            case .sub:
                guard let v = s.stringValue(maxBytes: 254), !v.isEmpty else { throw TokenError.invalidClaims }
                sub = v
            case .iat: iat = s.unsignedInteger()
            case .exp: exp = s.unsignedInteger()
            case .ep: ep = s.unsignedInteger()
            case .authTime: out.authTime = s.unsignedInteger()
            case .gen: out.gen = s.unsignedInteger()
            case .sid: out.sid = s.stringValue(maxBytes: 128)
            case .did: out.did = s.stringValue(maxBytes: 128)
            case .cid: out.cid = s.stringValue(maxBytes: 128)
            case .jti: out.jti = s.stringValue(maxBytes: 128)
            case .purpose:
                guard let v = s.rawStringValue() else { throw TokenError.invalidClaims }
                if spanEquals(v, "login") { out.purpose = .login } else if spanEquals(v, "enroll") { out.purpose = .enroll } else {
                    throw TokenError.invalidClaims
                }
            case .amr:
                guard let methods = parseMethods(&s) else { throw TokenError.invalidClaims }
                out.amr = methods
            }
        }
        guard s.atEnd(), seen == allowed else { throw TokenError.invalidClaims }
        guard let sub, let iat, let exp, let ep else { throw TokenError.invalidClaims }
        out.common = CommonClaims(user: sub, issuedAt: iat, expiresAt: exp, epoch: UInt64(ep))
        // Every kind-specific member was seen; a nil here means it had the wrong type.
        switch kind {
        case .session: guard out.sid != nil, out.authTime != nil else { throw TokenError.invalidClaims }
        case .remember: guard out.did != nil, out.gen != nil else { throw TokenError.invalidClaims }
        case .challenge: guard out.cid != nil else { throw TokenError.invalidClaims }
        case .reset: guard out.jti != nil else { throw TokenError.invalidClaims }
        }
        return out
    }

    private static func member(named name: UnsafeBufferPointer<UInt8>) -> Member? {
        switch name.count {
        case 2: return spanEquals(name, "ep") ? .ep : nil
        case 3:
            if spanEquals(name, "iss") { return .iss }
            if spanEquals(name, "sub") { return .sub }
            if spanEquals(name, "iat") { return .iat }
            if spanEquals(name, "exp") { return .exp }
            if spanEquals(name, "sid") { return .sid }
            if spanEquals(name, "amr") { return .amr }
            if spanEquals(name, "did") { return .did }
            if spanEquals(name, "gen") { return .gen }
            if spanEquals(name, "cid") { return .cid }
            if spanEquals(name, "jti") { return .jti }
            return nil
        case 7: return spanEquals(name, "purpose") ? .purpose : nil
        case 9: return spanEquals(name, "auth_time") ? .authTime : nil
        default: return nil
        }
    }

    /// `amr`: a non-empty array of distinct known method names.
    private static func parseMethods(_ s: inout StrictJSONScanner) -> AuthMethods? {
        guard s.consume(UInt8(ascii: "[")) else { return nil }
        var methods = AuthMethods()
        var first = true
        while true {
            if s.consume(UInt8(ascii: "]")) { break }
            guard first || s.consume(UInt8(ascii: ",")) else { return nil }
            first = false
            guard let v = s.rawStringValue() else { return nil }
            let m: AuthMethods
            if spanEquals(v, "pwd") { m = .password }
            else if spanEquals(v, "otp") { m = .otp }
            else if spanEquals(v, "email") { m = .email }
            else if spanEquals(v, "backup") { m = .backup }
            else if spanEquals(v, "remember") { m = .remember }
            else if spanEquals(v, "passkey") { m = .passkey }
            else { return nil }
            guard !methods.contains(m) else { return nil }
            methods.insert(m)
        }
        return methods.isEmpty ? nil : methods
    }
}

extension SessionClaims {
    /// The session claims exactly as `sign` lays them out (member order, no spaces, no escapes,
    /// ASCII strings), read straight into the result. Returns nil at the first difference, and
    /// the caller runs the general strict parser, so what is accepted is unchanged; only the
    /// common case is cheaper. `prefix` is `{"iss":"<issuer>","sub":"`.
    init?(canonical json: UnsafeBufferPointer<UInt8>, prefix: UnsafeBufferPointer<UInt8>) {
        let n = json.count
        guard let p = json.baseAddress, n > prefix.count, memcmp(p, prefix.baseAddress!, prefix.count) == 0 else { return nil }
        var i = prefix.count

        @inline(__always) func literal(_ s: StaticString) -> Bool {
            let k = s.utf8CodeUnitCount
            guard i + k <= n, memcmp(p + i, s.utf8Start, k) == 0 else { return false }
            i += k
            return true
        }
        @inline(__always) func integer() -> Int64? {
            let start = i
            var v: Int64 = 0
            // Eight digits in one step when the next eight bytes are all digits (Unix times have
            // ten); the byte loop carries on from there, so the digits consumed are the same.
            if i &+ 8 <= n {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                if Self.isEightDigits(w) {
                    v = Int64(Self.eightDigitsValue(w))
                    i &+= 8
                }
            }
            while i < n, i - start < 19 {
                let d = p[i] &- UInt8(ascii: "0")
                guard d < 10 else { break }
                v = v &* 10 &+ Int64(d)
                i += 1
            }
            let len = i - start
            guard len > 0, len <= 18, len == 1 || p[start] != UInt8(ascii: "0") else { return nil }
            return v
        }
        /// A plain string body up to the closing quote (which is consumed): 1 to `max` bytes, each
        /// 0x20…0x7F and not `\`. Eight bytes at a time while a word holds none of the four
        /// stops (a byte below 0x20, one from 0x80, a quote, a backslash), then byte by byte to
        /// the first stop, which must be the quote.
        @inline(__always) func string(max: Int) -> String? {
            let start = i
            while i &+ 8 <= n, !Self.holdsStringStop(UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))) {
                i &+= 8
            }
            while i < n {
                let b = p[i]
                if b == UInt8(ascii: "\"") { break }
                guard b >= 0x20, b < 0x80, b != UInt8(ascii: "\\") else { return nil }
                i &+= 1
            }
            let count = i &- start
            guard i < n, count > 0, count <= max else { return nil }
            i &+= 1
            return String(decoding: UnsafeBufferPointer(start: p + start, count: count), as: UTF8.self)
        }

        guard let sub = string(max: 254), literal(",\"iat\":"), let iat = integer(),
              literal(",\"exp\":"), let exp = integer(), literal(",\"ep\":"), let ep = integer(),
              literal(",\"sid\":\""), let sid = string(max: 128), literal(",\"auth_time\":"), let authTime = integer(),
              literal(",\"amr\":[") else { return nil }
        var methods = AuthMethods()
        while true {
            let m: AuthMethods
            if literal("\"pwd\"") { m = .password }
            else if literal("\"otp\"") { m = .otp }
            else if literal("\"email\"") { m = .email }
            else if literal("\"backup\"") { m = .backup }
            else if literal("\"remember\"") { m = .remember }
            else { return nil }
            guard !methods.contains(m) else { return nil }
            methods.insert(m)
            if literal("]}") { break }
            guard literal(",") else { return nil }
        }
        guard i == n else { return nil }
        self.init(
            common: CommonClaims(user: sub, issuedAt: iat, expiresAt: exp, epoch: UInt64(ep)),
            sessionID: sid, authTime: authTime, methods: methods
        )
    }

    /// True when all eight bytes of `w` are ASCII digits: high nibble 3, and still 3 after
    /// adding 6 (so at most `9`). A byte that carries into the next fails its own first test.
    @inline(__always)
    static func isEightDigits(_ w: UInt64) -> Bool {
        let high: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        return (w & high) | (((w &+ 0x0606_0606_0606_0606) & high) &>> 4) == 0x3333_3333_3333_3333
    }

    /// The value of eight ASCII digits, the first (lowest-addressed) most significant: pairs,
    /// then quadruples, then the whole, by multiply-and-shift.
    @inline(__always)
    static func eightDigitsValue(_ w: UInt64) -> UInt32 {
        var v = w &- 0x3030_3030_3030_3030
        v = v &* 10 &+ (v &>> 8)
        let mask: UInt64 = 0x0000_00FF_0000_00FF
        v = ((v & mask) &* 0x000F_4240_0000_0064 &+ ((v &>> 16) & mask) &* 0x0000_2710_0000_0001) &>> 32
        return UInt32(truncatingIfNeeded: v)
    }

    /// True when one of the eight bytes of `w` is below 0x20, 0x80 or above, `"` or `\`
    /// (exact, no false negatives: for a byte below 0x20 the lowest such byte raises its own
    /// bit 7 in `w - 0x20…` while its bit 7 in `w` is clear; with none, nothing borrows).
    @inline(__always)
    static func holdsStringStop(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
        let below = (w &- ones &* 0x20) & ~w
        let isQuote = (quote &- ones) & ~quote
        let isBackslash = (backslash &- ones) & ~backslash
        return (w | below | isQuote | isBackslash) & high != 0
    }
}

/// Writes a token's claims JSON into memory sized by the caller (`TokenAuthority.sign`), with
/// the escaping of `JSONWriter.string` byte for byte: quote and backslash as `\"` `\\`, LF, CR
/// and tab as `\n` `\r` `\t`, other bytes below 0x20 and DEL as `\u00XX`, `/` as it is.
/// Traps rather than write past its memory.
struct ClaimsWriter {
    /// Bytes a kind's claims JSON holds besides its string values' own bytes, with room to spare:
    /// punctuation and member names (under 100), six quotes, up to five integers of at most 20
    /// characters, the six `amr` names (under 60).
    static let fixedBytes = 512

    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    /// What has been written.
    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always)
    private mutating func append(_ bytes: UnsafePointer<UInt8>, count n: Int) {
        precondition(n <= capacity &- count, "token claims larger than their bound")
        (base + count).update(from: bytes, count: n)
        count &+= n
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        precondition(count < capacity, "token claims larger than their bound")
        base[count] = byte
        count &+= 1
    }

    /// Appends `text` as it is (punctuation, member names).
    mutating func raw(_ text: StaticString) {
        append(text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// Appends `value` as a JSON string.
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { string($0) }
    }

    /// Appends UTF-8 `value` as a JSON string.
    mutating func string(_ value: UnsafeBufferPointer<UInt8>) {
        append(UInt8(ascii: "\""))
        guard let p = value.baseAddress else { return append(UInt8(ascii: "\"")) }
        var start = 0
        for index in 0..<value.count {
            let byte = p[index]
            guard byte < 0x20 || byte == 0x22 || byte == 0x5C || byte == 0x7F else { continue }
            append(p + start, count: index - start)
            start = index + 1
            append(0x5C)
            switch byte {
            case 0x22, 0x5C: append(byte)
            case 0x0A: append(UInt8(ascii: "n"))
            case 0x0D: append(UInt8(ascii: "r"))
            case 0x09: append(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                raw("u00")
                append(hex.utf8Start[Int(byte >> 4)])
                append(hex.utf8Start[Int(byte & 0xF)])
            }
        }
        append(p + start, count: value.count - start)
        append(UInt8(ascii: "\""))
    }

    /// Appends a decimal integer.
    mutating func integer(_ value: Int64) { integer(magnitude: value.magnitude, negative: value < 0) }
    mutating func integer(_ value: UInt64) { integer(magnitude: value, negative: false) }

    private mutating func integer(magnitude: UInt64, negative: Bool) {
        DecimalText.withDigits(magnitude: magnitude, negative: negative) { digits in
            append(digits.baseAddress!.assumingMemoryBound(to: UInt8.self), count: digits.count)
        }
    }
}
