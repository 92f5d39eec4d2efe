import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseTesting
import Testing

/// Interoperability with an independent implementation: PyJWT (PyPI), run as a subprocess.
/// The derived key is recomputed in Python from the keyring secret with the standard library's
/// hmac, so the derivation itself is checked too.
@Suite("PyJWT interoperability")
struct PyJWTInteropTests {
    static func python(_ script: String, input: String) async throws -> External.Result {
        _ = try External.locate(.pythonCryptography)
        let python = try External.locate(.pyJWT)
        return try await External.run(python, ["-c", script], stdin: input)
    }

    @Test("PyJWT verifies our HS256 session token with the derived key")
    func pyjwtVerifiesHS256() async throws {
        let f = try TokenFixture()
        let token = try f.session()
        let secret = f.file.keys[0].secret
        let script = """
        import sys, json, hmac, hashlib, base64, jwt
        data = json.loads(sys.stdin.read())
        s = data["secret"]; raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        key = hmac.new(raw, b"gatehouse/v1/session", hashlib.sha256).digest()
        hdr = jwt.get_unverified_header(data["token"])
        claims = jwt.decode(data["token"], key, algorithms=["HS256"], issuer="gatehouse-test",
                            options={"verify_exp": False, "verify_iat": False})
        print(json.dumps({"typ": hdr["typ"], "kid": hdr["kid"], "sub": claims["sub"], "amr": claims["amr"], "sid": claims["sid"]}))
        """
        let result = try await Self.python(script, input: "{\"secret\":\"\(secret)\",\"token\":\"\(token)\"}")
        #expect(result.status == 0, "PyJWT refused our token: \(result.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(out?["typ"] as? String == "gh-session")
        #expect(out?["kid"] as? String == f.kid)
        #expect(out?["sub"] as? String == "jane@example.org")
        #expect(out?["amr"] as? [String] == ["pwd", "otp"])
        #expect(out?["sid"] as? String == "s-1")
    }

    @Test("PyJWT verifies our EdDSA session token from the JWKS")
    func pyjwtVerifiesEdDSA() async throws {
        let f = try TokenFixture(sessionAlgorithm: .edDSA)
        let token = try f.session()
        let jwks = f.authority.keys.keyring.jwks
        let script = """
        import sys, json, jwt
        data = json.loads(sys.stdin.read())
        kid = jwt.get_unverified_header(data["token"])["kid"]
        jwk = next(k for k in data["jwks"]["keys"] if k["kid"] == kid)
        key = jwt.PyJWK(jwk).key
        claims = jwt.decode(data["token"], key, algorithms=["EdDSA"], issuer="gatehouse-test",
                            options={"verify_exp": False, "verify_iat": False})
        print(claims["sub"])
        """
        let result = try await Self.python(script, input: "{\"jwks\":\(jwks),\"token\":\"\(token)\"}")
        #expect(result.status == 0, "PyJWT refused our EdDSA token: \(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "jane@example.org")
        // A tampered token must fail in PyJWT too (the check above is not vacuous).
        var tampered = Array(token.utf8)
        tampered[tampered.count - 10] = tampered[tampered.count - 10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let refused = try await Self.python(script, input: "{\"jwks\":\(jwks),\"token\":\"\(String(decoding: tampered, as: UTF8.self))\"}")
        #expect(refused.status != 0)
    }

    @Test("a PyJWT-made token with the right key and claims verifies here")
    func weVerifyPyJWT() async throws {
        let f = try TokenFixture()
        let key = Base64URL.encode(f.authority.keys.keyring.derivedKey(kid: f.kid, kind: .session)!)
        let script = """
        import sys, json, base64, jwt
        data = json.loads(sys.stdin.read())
        k = data["key"]; key = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
        now = data["now"]
        claims = {"iss": "gatehouse-test", "sub": "pyjwt@example.org", "iat": now, "exp": now + 600, "ep": 2,
                  "sid": "py-1", "auth_time": now, "amr": ["pwd", "email"]}
        print(jwt.encode(claims, key, algorithm="HS256", headers={"kid": data["kid"], "typ": data["typ"]}))
        """
        let result = try await Self.python(script, input: "{\"key\":\"\(key)\",\"kid\":\"\(f.kid)\",\"now\":\(f.now),\"typ\":\"gh-session\"}")
        #expect(result.status == 0, "PyJWT failed: \(result.stderr)")
        let token = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let claims = try f.authority.verifySession(token, now: f.now + 1)
        #expect(claims.common.user == "pyjwt@example.org")
        #expect(claims.methods == [.password, .email])
        // The same PyJWT token labelled as another kind is refused.
        let wrongTyp = try await Self.python(script, input: "{\"key\":\"\(key)\",\"kid\":\"\(f.kid)\",\"now\":\(f.now),\"typ\":\"gh-remember\"}")
        #expect(f.verifyError(wrongTyp.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == .wrongType)
    }
}
