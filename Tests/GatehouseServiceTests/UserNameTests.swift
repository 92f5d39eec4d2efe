import Foundation
import GatehouseCore
import GatehouseService
import Testing

/// The one canonical form of a user's address (`UserID.canonical`), and what the API makes of
/// addresses that look like another one.
@Suite("User names")
struct UserNameTests {
    @Test("ASCII is lower-cased; NFC joins the two forms of an accented letter")
    func canonicalForms() {
        #expect(UserID("Kate@Example.ORG")?.value == "kate@example.org")
        let precomposed = UserID("jos\u{E9}@example.org")
        let decomposed = UserID("jose\u{301}@example.org")
        #expect(precomposed != nil && decomposed != nil)
        #expect(Array(precomposed!.value.utf8) == Array(decomposed!.value.utf8), "one byte form for Redis keys and tokens")
        #expect(UserID("J\u{C9}R\u{D4}ME@example.org")?.value.unicodeScalars.elementsEqual("j\u{E9}r\u{F4}me@example.org".unicodeScalars) == true)
        #expect(UserID.isCanonical("kate@example.org") && UserID.isCanonical("jos\u{E9}@example.org"))
        #expect(!UserID.isCanonical("Kate@example.org") && !UserID.isCanonical("jose\u{301}@example.org") && !UserID.isCanonical(""))
    }

    @Test("a signed token's user is the user the full check makes: value and domain", arguments: [
        "kate@example.org", "a@b", "first.last+tag@mail.example.co.uk", "x@xn--bcher-kva.example",
        "Kate@Example.ORG", "jos\u{E9}@example.org", "jose\u{301}@EXAMPLE.org", "no-at-sign", "@example.org", "kate@",
    ])
    func signedUser(_ text: String) {
        let signed = UserID(signed: text), checked = UserID(text)
        #expect(signed?.value == checked?.value)
        #expect(signed?.domain == checked?.domain)
    }

    @Test("look-alikes are refused: compatibility characters, bidi controls, invisible characters", arguments: [
        "\u{212A}ate@example.org",  // KELVIN SIGN, which lower-cases to k
        "\u{FF4B}ate@example.org",  // FULLWIDTH LATIN SMALL LETTER K
        "\u{FB01}le@example.org",  // LATIN SMALL LIGATURE FI
        "ka\u{200B}te@example.org",  // ZERO WIDTH SPACE
        "ka\u{200D}te@example.org",  // ZERO WIDTH JOINER
        "\u{202E}etak@example.org",  // RIGHT-TO-LEFT OVERRIDE
        "kate\u{2066}@example.org",  // LEFT-TO-RIGHT ISOLATE
        "ka\u{AD}te@example.org",  // SOFT HYPHEN
        "\u{FEFF}kate@example.org",  // BYTE ORDER MARK
        "ka\u{E000}te@example.org",  // private use
        "ka\u{2028}te@example.org",  // LINE SEPARATOR
        "ka\u{A0}te@example.org",  // NO-BREAK SPACE
        "ka\u{85}te@example.org",  // NEXT LINE (a C1 control)
    ])
    func lookAlikes(address: String) {
        #expect(UserID(address) == nil, "\(address.unicodeScalars.map { String($0.value, radix: 16) })")
    }

    @Test("through the API: the KELVIN SIGN is refused, not kate; both forms of josé reach one enrolment")
    func throughTheAPI() async throws {
        try await Deployment.with { d in
            let (kate, _) = try await d.enrolledUser("kate-\(UUID().uuidString.prefix(6).lowercased())@example.org")
            #expect(try await d.call("POST", "/v1/login/start", json: ["user": kate])["status"] as? String == "second_step")
            let kelvin = "\u{212A}" + kate.dropFirst()
            let refused = try await d.call("POST", "/v1/login/start", json: ["user": kelvin])
            #expect(refused.status == 400 && refused.code == "invalid_request", "\(refused.status) \(refused.json)")
            let bidi = try await d.call("POST", "/v1/login/start", json: ["user": "\u{202E}" + kate])
            #expect(bidi.status == 400 && bidi.code == "invalid_request")

            let tag = UUID().uuidString.prefix(6).lowercased()
            _ = try await d.enrolledUser("jose\u{301}-\(tag)@example.org")
            let start = try await d.call("POST", "/v1/login/start", json: ["user": "jos\u{E9}-\(tag)@example.org"])
            #expect(start["status"] as? String == "second_step", "the precomposed form is the same user: \(start.json)")
            let user = try await d.call("GET", "/v1/users/" + "JOS\u{C9}-\(tag)@example.org".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!, key: "admin")
            #expect(user.status == 200 && (user["user"] as? String)?.unicodeScalars.elementsEqual("jos\u{E9}-\(tag)@example.org".unicodeScalars) == true, "\(user.json)")
        }
    }

    @Test("a validly signed session whose sub is not canonical, or whose sid is empty, is refused")
    func signedButNotCanonical() async throws {
        try await Deployment.with { d in
            // The node's own keyring (the deployment's state folder): these tokens carry a real signature.
            let authority = TokenAuthority(issuer: "Gatehouse Test", keys: KeyringStore(try Keyring.load(path: d.directory + "/state/keyring.json")))
            let now = try await d.now()
            func token(_ user: String, sid: String) throws -> String {
                let common = CommonClaims(user: user, issuedAt: now, expiresAt: now + 3600, epoch: 0)
                return try authority.sign(SessionClaims(common: common, sessionID: sid, authTime: now, methods: [.password, .otp]))
            }
            #expect(try await d.auth(try token("kate@example.org", sid: "s1d-of-a-test-x")).status == 204, "the control token must pass")
            for (user, sid) in [("Kate@example.org", "s1d-of-a-test-x"), ("jose\u{301}@example.org", "s1d-of-a-test-x"), ("kate@example.org", "")] {
                #expect(try await d.auth(try token(user, sid: sid)).status == 401, "\(user.unicodeScalars.count) scalars, sid '\(sid)'")
            }
        }
    }
}
