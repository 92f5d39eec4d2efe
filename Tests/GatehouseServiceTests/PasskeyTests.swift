import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseTesting
import Testing

/// Passkeys through the API on two in-process nodes sharing a real Redis: registration against
/// the issued challenge, sign-in on the other node, and the checks that only the store can make
/// (a challenge used once on every node, a signature counter that went backwards) — with
/// authenticators that hold real keys (GatehouseTesting's WebAuthn fixtures).
@Suite("Passkeys through the API", .timeLimit(.minutes(3)))
struct PasskeyTests {
    static let environment = ["GATEHOUSE_PASSKEY_RP_ID": WebAuthnFixture.rpID, "GATEHOUSE_PASSKEY_ORIGINS": WebAuthnFixture.origin]

    /// A user with two-step on, signed in, in a domain that allows passkeys; returns the session.
    static func signedIn(_ d: Deployment) async throws -> (user: String, secret: String, session: String) {
        let (user, secret) = try await d.enrolledUser()
        let domain = String(user.split(separator: "@").last!)
        let policy = try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "methods": ["totp", "email", "passkey"]])
        #expect(policy.status == 200, "\(policy.json)")
        let session = try await d.signIn(user, secret: secret)
        return (user, secret, session)
    }

    static func challenge(of reply: Deployment.Reply) throws -> [UInt8] {
        let options = try #require(reply["public_key"] as? [String: Any], "\(reply.json)")
        let text = try #require(options["challenge"] as? String)
        return try #require(Base64URL.decode(text))
    }

    /// Registers `authenticator` through the API; returns the reply.
    static func register(_ d: Deployment, session: String, _ authenticator: TestAuthenticator, name: String = "Laptop", signCount: UInt32 = 0, origin: String = WebAuthnFixture.origin) async throws -> Deployment.Reply {
        let options = try await d.call("POST", "/v1/me/passkeys/options", headers: ["Gatehouse-Session": session])
        #expect(options.status == 200, "\(options.json)")
        let challenge = try Self.challenge(of: options)
        let clientData = WebAuthnFixture.clientDataJSON(type: "webauthn.create", challenge: challenge, origin: origin)
        let authData = WebAuthnFixture.authenticatorData(
            flags: [.userPresent, .userVerified], signCount: signCount,
            attested: (authenticator.aaguid, authenticator.credentialID, authenticator.coseKeyBytes)
        )
        let attestation = WebAuthnFixture.attestationObject(fmt: "none", attStmt: .map([]), authData: authData)
        return try await d.call("POST", "/v1/me/passkeys", json: [
            "name": name, "client_data_json": Base64URL.encode(clientData), "attestation_object": Base64URL.encode(attestation),
        ], headers: ["Gatehouse-Session": session])
    }

    /// A sign-in assertion by `authenticator` for the passkey challenge of `login`.
    static func assertion(
        _ d: Deployment, login: String, _ authenticator: TestAuthenticator, signCount: UInt32, node: Int = 0,
        origin: String = WebAuthnFixture.origin, tamper: Bool = false
    ) async throws -> [String: Any] {
        let options = try await d.call("POST", "/v1/login/passkey-options", json: ["challenge": login], node: node)
        #expect(options.status == 200, "\(options.json)")
        let challenge = try Self.challenge(of: options)
        let clientData = WebAuthnFixture.clientDataJSON(type: "webauthn.get", challenge: challenge, origin: origin)
        let authData = WebAuthnFixture.authenticatorData(flags: [.userPresent, .userVerified], signCount: signCount)
        var signature = try authenticator.sign(authenticatorData: authData, clientDataJSON: clientData)
        if tamper { signature[signature.count / 2] ^= 0x01 }
        return [
            "challenge": login, "method": "passkey", "credential_id": Base64URL.encode(authenticator.credentialID),
            "client_data_json": Base64URL.encode(clientData), "authenticator_data": Base64URL.encode(authData),
            "signature": Base64URL.encode(signature),
        ]
    }

    @Test("register, sign in on the other node, list, remove; a registration response works once")
    func registerAndSignIn() async throws {
        try await Deployment.with(nodes: 2, environment: Self.environment) { d in
            let (user, _, session) = try await Self.signedIn(d)
            let key = try TestAuthenticator.p256()
            let created = try await Self.register(d, session: session, key)
            #expect(created.status == 201, "\(created.json)")
            #expect(created["id"] as? String == Base64URL.encode(key.credentialID))
            #expect(created["name"] as? String == "Laptop")

            let listed = try await d.call("GET", "/v1/me/passkeys", headers: ["Gatehouse-Session": session], node: 1)
            #expect((listed["passkeys"] as? [[String: Any]])?.count == 1, "\(listed.json)")

            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(start["methods"] as? [String] == ["totp", "email", "passkey"], "\(start.json)")
            let login = ((start["challenge"] as? [String: Any])?["token"] as? String) ?? ""
            // Options from node 0, the assertion checked on node 1.
            let body = try await Self.assertion(d, login: login, key, signCount: 1)
            let finish = try await d.call("POST", "/v1/login/finish", json: body, node: 1)
            #expect(finish.status == 200, "\(finish.json)")
            let token = ((finish["session"] as? [String: Any])?["token"] as? String) ?? ""
            let verified = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
            #expect(verified["amr"] as? [String] == ["pwd", "passkey"], "\(verified.json)")

            // The same assertion again (another sign-in): its challenge is gone on every node.
            let again = try await d.challenge(for: user)
            var replay = body
            replay["challenge"] = again
            _ = try await d.call("POST", "/v1/login/passkey-options", json: ["challenge": again])
            let replayed = try await d.call("POST", "/v1/login/finish", json: replay)
            #expect(replayed.status == 401 && replayed.code == "invalid_code", "\(replayed.json)")

            // Last use is listed; removing it takes passkey off the methods.
            let after = try await d.call("GET", "/v1/me/passkeys", headers: ["Gatehouse-Session": session])
            #expect(((after["passkeys"] as? [[String: Any]])?.first?["last_used_at"]) is String, "\(after.json)")
            let id = Base64URL.encode(key.credentialID)
            #expect(try await d.call("DELETE", "/v1/me/passkeys/\(id)", headers: ["Gatehouse-Session": session]).status == 204)
            #expect(try await d.call("DELETE", "/v1/me/passkeys/\(id)", headers: ["Gatehouse-Session": session]).status == 404)
            let without = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(without["methods"] as? [String] == ["totp", "email"], "\(without.json)")
            d.expectLogsClean(of: [token, body["signature"] as? String ?? ""])
        }
    }

    @Test("a registration is refused for a used challenge, another origin, a duplicate credential; EdDSA and RS256 keys register")
    func registrationChecks() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (_, _, session) = try await Self.signedIn(d)
            let key = try TestAuthenticator.ed25519()
            let wrongOrigin = try await Self.register(d, session: session, key, origin: "https://evil.example")
            #expect(wrongOrigin.status == 400 && (wrongOrigin["detail"] as? String ?? "").contains("origin"), "\(wrongOrigin.json)")
            #expect(try await Self.register(d, session: session, key).status == 201)
            let duplicate = try await Self.register(d, session: session, key)
            #expect(duplicate.status == 400, "\(duplicate.json)")
            #expect(try await Self.register(d, session: session, try TestAuthenticator.rsa(), name: "Security key").status == 201)
            // No options asked for: nothing to answer.
            let orphan = try await d.call("POST", "/v1/me/passkeys", json: [
                "name": "x", "client_data_json": Base64URL.encode(Array("{}".utf8)), "attestation_object": Base64URL.encode([0xA0]),
            ], headers: ["Gatehouse-Session": session])
            #expect(orphan.status == 401 && orphan.code == "challenge_expired", "\(orphan.json)")
            // Malformed input is a 400 and changes nothing.
            let garbage = try await d.call("POST", "/v1/me/passkeys", json: ["name": "x", "client_data_json": "***", "attestation_object": "AA"], headers: ["Gatehouse-Session": session])
            #expect(garbage.status == 400 && garbage.code == "invalid_request")
            let listed = try await d.call("GET", "/v1/me/passkeys", headers: ["Gatehouse-Session": session])
            #expect((listed["passkeys"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test("a tampered signature, another origin and a counter that went backwards are wrong answers; the cloned key is recorded")
    func assertionChecks() async throws {
        try await Deployment.with(nodes: 2, environment: Self.environment) { d in
            let (user, _, session) = try await Self.signedIn(d)
            let key = try TestAuthenticator.p256()
            #expect(try await Self.register(d, session: session, key, signCount: 5).status == 201)

            let tampered = try await d.call("POST", "/v1/login/finish", json: try await Self.assertion(d, login: try await d.challenge(for: user), key, signCount: 6, tamper: true))
            #expect(tampered.status == 401 && tampered.code == "invalid_code", "\(tampered.json)")
            let elsewhere = try await d.call("POST", "/v1/login/finish", json: try await Self.assertion(d, login: try await d.challenge(for: user), key, signCount: 6, origin: "https://evil.example"))
            #expect(elsewhere.status == 401 && elsewhere.code == "invalid_code", "\(elsewhere.json)")
            // The stored counter is 5: a 5 (or lower) again means the key exists twice.
            let cloned = try await d.call("POST", "/v1/login/finish", json: try await Self.assertion(d, login: try await d.challenge(for: user), key, signCount: 5), node: 1)
            #expect(cloned.status == 401 && cloned.code == "invalid_code", "\(cloned.json)")
            let events = try await d.call("GET", "/v1/me/events", headers: ["Gatehouse-Session": session])
            let types = (events["events"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            #expect(types.contains("passkey_counter_regressed"), "\(types)")
            // A counter above the stored one signs in.
            let good = try await d.call("POST", "/v1/login/finish", json: try await Self.assertion(d, login: try await d.challenge(for: user), key, signCount: 6))
            #expect(good.status == 200, "\(good.json)")
        }
    }

    @Test("the domain decides: no passkey options or sign-in where the policy leaves passkeys out")
    func policy() async throws {
        try await Deployment.with(environment: Self.environment) { d in
            let (user, _, session) = try await Self.signedIn(d)
            let key = try TestAuthenticator.p256()
            #expect(try await Self.register(d, session: session, key).status == 201)
            let domain = String(user.split(separator: "@").last!)
            #expect(try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "methods": ["totp", "email"]]).status == 200)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(start["methods"] as? [String] == ["totp", "email"], "\(start.json)")
            let login = ((start["challenge"] as? [String: Any])?["token"] as? String) ?? ""
            let options = try await d.call("POST", "/v1/login/passkey-options", json: ["challenge": login])
            #expect(options.status == 403 && options.code == "method_not_allowed", "\(options.json)")
            let refused = try await d.call("POST", "/v1/me/passkeys/options", headers: ["Gatehouse-Session": session])
            #expect(refused.status == 403 && refused.code == "method_not_allowed")
            let onlyPasskey = try await d.call("PUT", "/v1/domains/\(domain)/policy", key: "admin", json: ["mode": "optional", "methods": ["passkey"]])
            #expect(onlyPasskey.status == 400, "passkeys come beside a method that turns two-step on: \(onlyPasskey.json)")
        }
    }
}
