import Foundation
import GatehouseTesting
import Testing

/// Keeps `docs/openapi.yaml` true to the router (`GatehouseResponder`): every operation the
/// document lists is routed by a running node, needs the API-key scope the document names and
/// answers only statuses the document lists; every route of the responder is in the document.
///
/// The package has no YAML dependency, so the document is read with a small line-based scan
/// that relies on its layout: path keys indented 2 spaces under `paths:`, method keys 4,
/// `security: [{apiKey: [<scope>]}]` (or `security: []`) and `responses:` 6, status keys 8.
@Suite("OpenAPI document matches the router", .timeLimit(.minutes(3)))
struct OpenAPIConformanceTests {
    /// One documented operation.
    struct Operation: Hashable, CustomStringConvertible {
        var method: String
        var path: String
        /// nil: no `security` line; "" : `security: []` (no key); else the scope.
        var scope: String?
        var statuses: Set<Int> = []
        var description: String { "\(method) \(path)" }
        var route: Route { Route(method, path) }
    }

    struct Route: Hashable, CustomStringConvertible {
        var method: String
        var path: String
        init(_ method: String, _ path: String) {
            self.method = method
            self.path = path
        }
        var description: String { "\(method) \(path)" }
    }

    struct Document {
        var operations: [Operation] = []
        var problemCodes: Set<String> = []
    }

    /// `../../docs/openapi.yaml` from this file.
    static let documentURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs").appendingPathComponent("openapi.yaml")

    static let httpMethods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    static func parse(_ text: String) -> Document {
        var document = Document()
        var inPaths = false
        var path: String?
        var current: Int?
        var inResponses = false
        var inProblem = false
        var inCodeEnum = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let indent = line.prefix(while: { $0 == " " }).count
            if indent == 0 {
                inPaths = trimmed == "paths:"
                path = nil
                current = nil
                inProblem = false
                continue
            }
            if inPaths {
                if indent == 2 {
                    var key = trimmed.hasSuffix(":") ? String(trimmed.dropLast()) : trimmed
                    if key.count > 1, key.first == "'" || key.first == "\"" { key = String(key.dropFirst().dropLast()) }
                    path = key.hasPrefix("/") ? key : nil
                    current = nil
                } else if indent == 4, let path {
                    let key = trimmed.hasSuffix(":") ? String(trimmed.dropLast()) : trimmed
                    if Self.httpMethods.contains(key) {
                        document.operations.append(Operation(method: key.uppercased(), path: path))
                        current = document.operations.count - 1
                    } else {
                        current = nil
                    }
                    inResponses = false
                } else if indent == 6, let index = current {
                    inResponses = trimmed == "responses:"
                    if trimmed.hasPrefix("security:") {
                        let value = trimmed.dropFirst("security:".count).trimmingCharacters(in: .whitespaces)
                        if value == "[]" {
                            document.operations[index].scope = ""
                        } else if let open = value.range(of: "apiKey: ["), let close = value[open.upperBound...].firstIndex(of: "]") {
                            document.operations[index].scope = String(value[open.upperBound..<close]).trimmingCharacters(in: .whitespaces)
                        }
                    }
                } else if indent == 8, inResponses, let index = current {
                    let key = trimmed.hasSuffix(":") ? String(trimmed.dropLast()) : trimmed
                    if let status = Int(key.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))) {
                        document.operations[index].statuses.insert(status)
                    }
                }
                continue
            }
            // components → schemas → Problem → properties → code → enum: [- value …]
            if indent == 4 {
                inProblem = trimmed == "Problem:"
                inCodeEnum = false
            } else if inProblem {
                if trimmed == "code:" {
                    inCodeEnum = true
                } else if inCodeEnum, trimmed.hasPrefix("- ") {
                    document.problemCodes.insert(String(trimmed.dropFirst(2)))
                } else if inCodeEnum, trimmed != "enum:", !trimmed.hasPrefix("type:") {
                    inCodeEnum = false
                }
            }
        }
        return document
    }

    static func document() throws -> Document {
        parse(try String(contentsOf: documentURL, encoding: .utf8))
    }

    /// Every route `GatehouseResponder.route` / `routeWithParameters` answers, by hand.
    static let routerRoutes: [Route] = [
        Route("GET", "/healthz"),
        Route("GET", "/readyz"),
        Route("GET", "/metrics"),
        Route("GET", "/.well-known/jwks.json"),
        Route("GET", "/v1/auth"),
        Route("POST", "/v1/sessions/verify"),
        Route("POST", "/v1/sessions/refresh"),
        Route("POST", "/v1/sessions/revoke"),
        Route("POST", "/v1/login/start"),
        Route("POST", "/v1/login/handoff"),
        Route("POST", "/v1/login/finish"),
        Route("POST", "/v1/login/email-code"),
        Route("POST", "/v1/login/passkey-options"),
        Route("GET", "/v1/me"),
        Route("POST", "/v1/me/totp"),
        Route("POST", "/v1/me/totp/confirm"),
        Route("DELETE", "/v1/me/two-step"),
        Route("POST", "/v1/me/two-step"),
        Route("PUT", "/v1/me/recovery-email"),
        Route("POST", "/v1/me/recovery-email/confirm"),
        Route("POST", "/v1/me/backup-codes"),
        Route("GET", "/v1/me/app-passwords"),
        Route("POST", "/v1/me/app-passwords"),
        Route("DELETE", "/v1/me/app-passwords/{id}"),
        Route("GET", "/v1/me/app-passwords/{id}/reveal"),
        Route("POST", "/v1/me/passkeys/options"),
        Route("GET", "/v1/me/passkeys"),
        Route("POST", "/v1/me/passkeys"),
        Route("DELETE", "/v1/me/passkeys/{id}"),
        Route("GET", "/v1/me/devices"),
        Route("DELETE", "/v1/me/devices"),
        Route("DELETE", "/v1/me/devices/{id}"),
        Route("GET", "/v1/me/sessions"),
        Route("DELETE", "/v1/me/sessions"),
        Route("DELETE", "/v1/me/sessions/{id}"),
        Route("GET", "/v1/me/events"),
        Route("POST", "/v1/me/password-changed"),
        Route("POST", "/v1/recovery/start"),
        Route("POST", "/v1/recovery/finish"),
        Route("POST", "/v1/recovery/consume"),
        Route("POST", "/v1/mail/authenticate"),
        Route("GET", "/v1/mail/auth-http"),
        Route("POST", "/v1/users/import"),
        Route("GET", "/v1/domains/{domain}/policy"),
        Route("PUT", "/v1/domains/{domain}/policy"),
        Route("GET", "/v1/users/{user}"),
        Route("DELETE", "/v1/users/{user}/two-step"),
        Route("POST", "/v1/users/{user}/unlock"),
        Route("GET", "/v1/users/{user}/events"),
        Route("POST", "/v1/users/{user}/sessions/revoke-all"),
    ]

    static let scopes = ["verify", "frontend", "mail", "admin"]

    /// A concrete path for a templated one (items that do not exist).
    static func concrete(_ path: String) -> String {
        path.replacingOccurrences(of: "{user}", with: "x@example.org")
            .replacingOccurrences(of: "{domain}", with: "example.org")
            .replacingOccurrences(of: "{id}", with: "doesnotexist")
    }

    static func isProblem(_ reply: Deployment.Reply) -> Bool {
        reply.headers["content-type"]?.hasPrefix("application/problem+json") == true
    }

    /// "No such endpoint": a 404 that is not about a missing item of a parameterised path.
    static func unrouted(_ reply: Deployment.Reply, templated: Bool) -> Bool {
        guard reply.status == 404 else { return false }
        return !templated || reply["detail"] as? String == "no such endpoint"
    }

    @Test("the document parses: operations, scopes, statuses, problem codes")
    func documentShape() throws {
        let document = try Self.document()
        #expect(document.operations.count >= Self.routerRoutes.count, "only \(document.operations.count) operations parsed from \(Self.documentURL.path)")
        #expect(Set(document.operations.map(\.route)).count == document.operations.count, "an operation is listed twice")
        for op in document.operations {
            #expect(!op.statuses.isEmpty, "\(op): no responses parsed")
            if op.path.hasPrefix("/v1/") {
                #expect(op.scope.map { Self.scopes.contains($0) } == true, "\(op): security must be [{apiKey: [<scope>]}], got \(op.scope ?? "nothing")")
                #expect(op.statuses.isSuperset(of: [401, 403]), "\(op): 401 and 403 (API key) are not documented")
            } else {
                #expect(op.scope == "", "\(op): operations endpoints need `security: []`")
            }
        }
        // Every code ServiceError.Code defines, and nothing else.
        #expect(document.problemCodes == [
            "invalid_request", "unauthorized", "forbidden", "invalid_token", "invalid_code", "challenge_expired",
            "rate_limited", "two_step_disabled", "reauthentication_required", "recovery_email_required",
            "not_enrolled", "method_not_allowed", "not_found", "denied", "unavailable",
        ])
    }

    @Test("every route of the responder is documented")
    func routesDocumented() throws {
        let documented = Set(try Self.document().operations.map(\.route))
        for route in Self.routerRoutes {
            #expect(documented.contains(route), "\(route) is routed but not in docs/openapi.yaml")
        }
        let undocumentedInList = documented.subtracting(Self.routerRoutes)
        #expect(undocumentedInList.isEmpty, "documented but missing from this test's route list: \(undocumentedInList.sorted { $0.description < $1.description })")
    }

    @Test("every documented operation is routed, with the documented scope and statuses")
    func documentedOperationsAreRouted() async throws {
        let document = try Self.document()
        try #require(!document.operations.isEmpty)
        try await Deployment.with { d in
            // The test's own premise: an unrouted call is recognisable.
            let bogus = try await d.call("GET", "/v1/no-such-thing")
            #expect(bogus.status == 404 && bogus.code == "not_found" && bogus["detail"] as? String == "no such endpoint", "\(bogus.json)")
            let bogusItem = try await d.call("GET", "/v1/me/devices/doesnotexist")
            #expect(Self.unrouted(bogusItem, templated: true), "GET /v1/me/devices/{id} should be unrouted: \(bogusItem.status) \(bogusItem.json)")

            for op in document.operations {
                let templated = op.path.contains("{")
                let path = Self.concrete(op.path)
                let body: Data? = op.method == "GET" ? nil : Data("{}".utf8)
                let headers = body == nil ? [:] : ["Content-Type": "application/json"]
                let scope = op.scope ?? ""
                // With the documented scope.
                let reply = try await d.call(op.method, path, key: scope.isEmpty ? nil : scope, raw: body, headers: headers)
                #expect(!Self.unrouted(reply, templated: templated), "\(op) is documented but not routed: \(reply.status) \(reply.json)")
                #expect(op.statuses.contains(reply.status), "\(op) answered \(reply.status), which the document does not list: \(reply.json)")
                if Self.isProblem(reply) {
                    let code = reply.code ?? ""
                    #expect(document.problemCodes.contains(code), "\(op): problem code '\(code)' is not in the document's enum")
                    #expect(code != "unauthorized" && code != "forbidden", "\(op): the documented scope '\(scope)' was refused: \(reply.json)")
                }
                if reply.status == 429 || (reply.status == 503 && (Self.isProblem(reply) || op.path == "/v1/auth")) {
                    #expect(reply.headers["retry-after"] != nil, "\(op): \(reply.status) without Retry-After")
                }
                guard !scope.isEmpty else { continue }
                // Without a key, and with a key lacking the scope.
                let anonymous = try await d.call(op.method, path, key: nil, raw: body, headers: headers)
                #expect(anonymous.status == 401, "\(op) without an API key: \(anonymous.status)")
                let other = Self.scopes.first { $0 != scope }!
                let wrong = try await d.call(op.method, path, key: other, raw: body, headers: headers)
                #expect(wrong.status == 403, "\(op) with the '\(other)' key: \(wrong.status)")
                if op.path != "/v1/auth" {
                    #expect(anonymous.code == "unauthorized" && wrong.code == "forbidden", "\(op): \(anonymous.json) / \(wrong.json)")
                }
            }
        }
    }
}
