import Foundation
import GatehouseRedis
import GatehouseTesting
import Testing

/// Every endpoint answers malformed, oversized, mistyped or unknown input with a 400 problem and
/// writes nothing; callers without the right key get 401/403; nothing answers 500.
@Suite("Bad input and callers", .timeLimit(.minutes(3)))
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var method: String
        var path: String
        var body: String?
        var key = "frontend"
        /// The problem's `detail`, where the test pins it.
        var detail: String? = nil
        var testDescription: String { "\(method) \(path) \(body?.prefix(40) ?? "")" }
    }

    static let huge = "{\"user\":\"" + String(repeating: "a", count: 70_000) + "@example.org\"}"

    static let cases: [Case] = [
        Case(method: "POST", path: "/v1/login/start", body: ""),
        Case(method: "POST", path: "/v1/login/start", body: "not json"),
        Case(method: "POST", path: "/v1/login/start", body: "[]"),
        Case(method: "POST", path: "/v1/login/start", body: "{}"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":5}"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":null}", detail: "field 'user' must not be null"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":\"no-at-sign\"}"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":\"a@b{c}.org\"}"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":\"a@example.org\",\"admin\":true}", detail: "unknown field 'admin'"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":\"a@example.org\",\"client_ip\":\"999.1.1.1\"}"),
        Case(method: "POST", path: "/v1/login/start", body: huge),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"sms\",\"code\":\"123456\"}"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\",\"code\":123456}"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\"}", detail: "field 'code' is required"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\",\"code\":\"1\",\"code\":\"2\"}", detail: "member 'code' appears more than once"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\",\"\\u0063ode\":\"123456\"}"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\",\"code\":\"123456\",\"remember\":\"yes\"}", detail: "field 'remember' has the wrong type"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"totp\",\"code\":\"123456\"} {}"),
        Case(method: "POST", path: "/v1/login/start", body: "{\"user\":\"a@example.org\",\"client_ip\":" + String(repeating: "[", count: 40) + "}"),
        Case(method: "POST", path: "/v1/sessions/verify", body: "{\"token\":[]}", key: "verify"),
        Case(method: "POST", path: "/v1/sessions/refresh", body: "{\"tok\":\"x\"}"),
        Case(method: "POST", path: "/v1/sessions/revoke", body: "{}"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"sometimes\"}", key: "admin", detail: "field 'mode' must be one of disabled, optional, enforced"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"session_hours\":0}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"methods\":[\"sms\"]}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"remember_device_days\":\"30\"}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"methods\":[]}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"session_hours\":1.5}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"session_hours\":99999999999999999999}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"methods\":[\"totp\",1]}", key: "admin"),
        Case(method: "PUT", path: "/v1/domains/exa_mple..org/policy", body: "{\"mode\":\"enforced\"}", key: "admin"),
        Case(method: "POST", path: "/v1/login/finish", body: "{}", detail: "field 'challenge' is required"),
        Case(method: "POST", path: "/v1/login/finish", body: "{\"challenge\":\"x\",\"method\":\"sms\",\"code\":\"1\",\"client_ip\":5}", detail: "field 'client_ip' has the wrong type"),
        Case(method: "POST", path: "/v1/me/two-step", body: "{\"method\":\"email\",\"client_ip\":5}", detail: "field 'client_ip' has the wrong type"),
        Case(method: "PUT", path: "/v1/domains/example.org/policy", body: "{\"mode\":\"enforced\",\"session_hours\":12.0,\"remember_device_days\":999}", key: "admin", detail: "remember_device_days must be 0...365"),
        Case(method: "GET", path: "/v1/users/not-an-email", body: nil, key: "admin"),
        Case(method: "POST", path: "/v1/users/x%7Bevil%7D@example.org/unlock", body: nil, key: "admin"),
    ]

    @Test("malformed input gets 400 invalid_request and writes nothing")
    func malformed() async throws {
        try await Deployment.with { d in
            let before = try await d.client.send(["DBSIZE"]).integer ?? -1
            for c in Self.cases {
                let reply = try await d.call(c.method, c.path, key: c.key, raw: c.body.map { Data($0.utf8) }, headers: ["Content-Type": "application/json"])
                #expect(reply.status == 400, "\(c.testDescription) → \(reply.status) \(reply.json)")
                #expect(reply.code == "invalid_request", "\(c.testDescription)")
                #expect(reply.headers["content-type"] == "application/problem+json")
                for field in ["type", "title", "status", "detail", "code"] { #expect(reply[field] != nil, "\(field) missing") }
                if let detail = c.detail { #expect(reply["detail"] as? String == detail, "\(c.testDescription)") }
            }
            let after = try await d.client.send(["DBSIZE"]).integer ?? -2
            #expect(before == after, "bad input wrote to Redis")
            #expect(!d.node.log.contains("error"), "bad input produced an error log line")
        }
    }

    @Test("bad tokens: 401 and nothing else")
    func badTokens() async throws {
        try await Deployment.with { d in
            for token in ["", "x", "a.b.c", String(repeating: "A", count: 5000), "eyJhbGciOiJub25lIn0.e30."] {
                #expect(try await d.auth(token).status == 401)
                let v = try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": token])
                #expect(v.status == 401 && v.code == "invalid_token")
                let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
                #expect(me.status == 401)
                let f = try await d.call("POST", "/v1/login/finish", json: ["challenge": token, "method": "totp", "code": "123456"])
                if token.utf8.count > 4096 {
                    #expect(f.status == 400 && f.code == "invalid_request")  // oversized input
                } else {
                    #expect(f.status == 401 && f.code == "challenge_expired")
                }
            }
            #expect(try await d.call("GET", "/v1/auth", key: "verify").status == 401)
            #expect(try await d.call("POST", "/v1/me/totp").status == 401)
        }
    }

    @Test("API keys: missing or unknown → 401, wrong scope → 403, unknown path → 404")
    func callers() async throws {
        try await Deployment.with { d in
            #expect(try await d.call("POST", "/v1/login/start", key: nil, json: ["user": "a@example.org"]).status == 401)
            #expect(try await d.call("POST", "/v1/login/start", key: nil, json: ["user": "a@example.org"], headers: ["Authorization": "Bearer nope-nope-nope-nope"]).status == 401)
            let wrong = try await d.call("POST", "/v1/login/start", key: "verify", json: ["user": "a@example.org"])
            #expect(wrong.status == 403 && wrong.code == "forbidden")
            #expect(try await d.call("GET", "/v1/auth", key: "frontend", headers: ["Gatehouse-Session": "x"]).status == 403)
            #expect(try await d.call("GET", "/v1/auth", key: nil, headers: ["Gatehouse-Session": "x"]).status == 401)
            #expect(try await d.call("PUT", "/v1/domains/example.org/policy", key: "frontend", json: ["mode": "enforced"]).status == 403)
            #expect(try await d.call("POST", "/v1/users/import", key: "frontend", raw: Data()).status == 403)
            #expect(try await d.call("GET", "/v1/nothing-here").status == 404)
            #expect(try await d.call("GET", "/healthz", key: nil).status == 200)
            #expect(try await d.call("GET", "/metrics", key: nil).status == 200)
            let jwks = try await d.call("GET", "/.well-known/jwks.json", key: nil)
            #expect(jwks.status == 200 && jwks["keys"] as? [Any] != nil)
        }
    }

    @Test("unknown paths and known paths with another method answer the same 404 problem")
    func noSuchEndpoint() async throws {
        try await Deployment.with { d in
            let unknown = try await d.call("GET", "/v1/nothing-here")
            #expect(unknown.status == 404)
            #expect(unknown.headers["content-type"] == "application/problem+json")
            let expected: [String: String] = [
                "type": "https://gatehouse.dev/problems/not_found", "title": "Not found", "detail": "no such endpoint", "code": "not_found",
            ]
            #expect(unknown.json.compactMapValues { $0 as? String } == expected, "\(unknown.json)")
            #expect(unknown["status"] as? Int == 404)
            let calls: [(method: String, path: String, key: String)] = [
                ("GET", "/v1/login/finish", "frontend"),  // known path, another method
                ("PATCH", "/v1/me", "frontend"),
                ("DELETE", "/v1/domains/example.org/policy", "admin"),
                ("POST", "/v1/users/x@example.org", "admin"),
                ("PUT", "/healthz", "frontend"),
                ("POST", "/v1/login/finish/", "frontend"),  // empty segments are not folded away
                ("GET", "/v1//me", "frontend"),
                ("GET", "/v1/me/devices/x/extra", "frontend"),
                ("DELETE", "/v1/me/devices/" + String(repeating: "a", count: 65), "frontend"),  // an id over 64 bytes
            ]
            for call in calls {
                let reply = try await d.call(call.method, call.path, key: call.key)
                #expect(reply.status == unknown.status, "\(call.method) \(call.path) → \(reply.status)")
                #expect(reply.headers["content-type"] == unknown.headers["content-type"], "\(call.method) \(call.path)")
                #expect(reply.body == unknown.body, "\(call.method) \(call.path) → \(reply.json)")
            }
        }
    }

    @Test("import reports bad lines and lands good ones")
    func importLines() async throws {
        try await Deployment.with { d in
            let text = """
            {"user":"good@example.org","totp_secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}
            {"user":"bad"}
            not json
            {"user":"typed@example.org","verified":"yes","recovery_email":"x@example.net"}
            {"user":"short@example.org","totp_secret":"MZXW6"}
            {"user":"mail@example.org","recovery_email":"m@example.net","verified":true,"extra":1}

            {"user":"also-good@example.org","recovery_email":"ag@example.net","verified":false}
            """
            let reply = try await d.call("POST", "/v1/users/import", key: "admin", raw: Data(text.utf8))
            #expect(reply.status == 200)
            #expect(reply["imported"] as? Int == 2)
            #expect(reply["failed"] as? Int == 5)
            let results = reply["results"] as? [[String: Any]] ?? []
            #expect(results.map { $0["line"] as? Int ?? 0 } == [1, 2, 3, 4, 5, 6, 8])
            #expect(results.filter { $0["ok"] as? Bool == true }.map { $0["user"] as? String ?? "" } == ["good@example.org", "also-good@example.org"])
            let me = try await d.call("GET", "/v1/users/good@example.org", key: "admin")
            #expect((me["two_step"] as? [String: Any])?["enabled"] as? Bool == true)
            #expect(!d.node.log.contains("GEZDGNBVGY3TQOJQ"))
        }
    }

    @Test("admin reset (lost phone) removes the second step and every session")
    func adminReset() async throws {
        try await Deployment.with { d in
            let (user, secret) = try await d.enrolledUser()
            let token = try await d.signIn(user, secret: secret)
            #expect(try await d.call("DELETE", "/v1/users/\(user)/two-step", key: "admin").status == 204)
            #expect(try await d.within(.seconds(1)) { try await d.auth(token).status == 401 } != nil)
            let status = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect((status["two_step"] as? [String: Any])?["enabled"] as? Bool == false)
            #expect(status["backup_codes_remaining"] as? Int == 0)
            #expect(try await d.call("POST", "/v1/login/start", json: ["user": user])["status"] as? String == "authenticated")
        }
    }
}
