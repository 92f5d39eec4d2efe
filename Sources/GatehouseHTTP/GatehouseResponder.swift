import Foundation
import HTTPTypes
import GatehouseCore
public import GatehouseService
public import Hummingbird
import Logging
import Metrics
import Synchronization

/// Routes every request by method and path — a flat switch, not a router tree, because
/// `GET /v1/auth` runs on every webmail request and must stay lean (`benchmarks/e2e.sh` measures
/// it). Problems are produced only here, at the HTTP edge.
public struct GatehouseResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let gatehouse: Gatehouse
    let apiKeys: APIKeyRegistry
    let metrics: MetricsEndpoint

    static let challengeHeader = HTTPField.Name("Gatehouse-Challenge")!

    let authCheck: AuthCheck
    let responseCounters = ResponseCounters()

    /// Creates the responder.
    public init(gatehouse: Gatehouse, apiKeys: APIKeyRegistry, metrics: MetricsEndpoint) {
        self.gatehouse = gatehouse
        self.apiKeys = apiKeys
        self.metrics = metrics
        self.authCheck = AuthCheck(gatehouse: gatehouse, apiKeys: apiKeys)
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        // The hot path first: no body, no allocation beyond the token's claim strings.
        if path == "/v1/auth", request.method == .get {
            return auth(request)
        }
        var request = request
        let response: Response
        do throws(ServiceError) {
            response = try await route(&request, path: path)
        } catch {
            if error.code == .unavailable {
                context.logger.warning("request failed: state store unavailable", metadata: ["path": "\(Self.loggable(path))"])
            }
            response = HTTPSupport.problem(error)
        }
        responseCounters.increment(status: response.status.code)
        return response
    }

    /// `gatehouse_http_responses_total{status}`: one counter per status, made on first use and
    /// kept (making a counter goes through the metrics factory's registry lookup every time).
    final class ResponseCounters: Sendable {
        private let counters = Mutex<[Int: Counter]>([:])

        func increment(status: Int) {
            let counter = counters.withLock { counters in
                if let counter = counters[status] { return counter }
                let counter = Counter(label: "gatehouse_http_responses_total", dimensions: [("status", String(status))])
                counters[status] = counter
                return counter
            }
            counter.increment()
        }
    }

    /// Paths are logged without anything after a user segment's domain (no secrets are ever in
    /// paths, but keep lines short and uniform).
    static func loggable(_ path: String) -> String { String(path.prefix(120)) }

    // MARK: /v1/auth

    /// The same answer as the channel fast path (``FastPathHandler``) gives; requests reach
    /// here only when the connection has another request in flight through Hummingbird.
    func auth(_ request: Request) -> Response {
        let answer = authCheck.decide(request.headers)
        return Response(status: answer.status, headers: answer.headerFields)
    }

    // MARK: Callers and tokens

    func caller(_ request: Request) -> APIKeyRegistry.Entry? { authCheck.caller(request.headers[.authorization]) }

    func require(_ scope: APIKeyConfiguration.Scope, _ request: Request) throws(ServiceError) {
        guard let caller = caller(request) else { throw ServiceError(.unauthorized, "an API key is required: Authorization: Bearer <key>") }
        guard caller.scopes.contains(scope) else { throw ServiceError(.forbidden, "this API key lacks the '\(scope.rawValue)' scope") }
    }

    func sessionToken(_ request: Request) -> String? { AuthCheck.sessionToken(request.headers) }

    func principal(_ request: Request) throws(ServiceError) -> Principal {
        try gatehouse.principal(sessionToken: sessionToken(request), challengeToken: request.headers[Self.challengeHeader])
    }

    // MARK: Routing

    func route(_ request: inout Request, path: String) async throws(ServiceError) -> Response {
        let method = request.method
        switch (method, path) {
        case (.get, "/healthz"):
            return HTTPSupport.json(.ok, ["status": "ok"])
        case (.get, "/readyz"):
            if let reason = await gatehouse.notReadyReason() {
                return HTTPSupport.json(.serviceUnavailable, ["status": "not_ready", "reason": reason])
            }
            return HTTPSupport.json(.ok, ["status": "ready"])
        case (.get, "/metrics"):
            return metrics.response()
        case (.get, "/.well-known/jwks.json"):
            let jwks = gatehouse.tokens.keys.keyring.jwks
            return Response(status: .ok, headers: [.contentType: "application/jwk-set+json"], body: ResponseBody(byteBuffer: ByteBuffer(string: jwks)))

        case (.post, "/v1/sessions/verify"):
            try require(.verify, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["token"])
            let claims = try gatehouse.verifySession(body.string("token"))
            return HTTPSupport.json(.ok, [
                "user": claims.common.user, "session_id": claims.sessionID,
                "issued_at": HTTPSupport.time(claims.common.issuedAt), "expires_at": HTTPSupport.time(claims.common.expiresAt),
                "auth_time": HTTPSupport.time(claims.authTime), "amr": claims.methods.strings,
            ])
        case (.post, "/v1/sessions/refresh"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["token"])
            let session = try await gatehouse.refreshSession(body.string("token"))
            return HTTPSupport.json(.ok, ["session": sessionObject(session)])
        case (.post, "/v1/sessions/revoke"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["token"])
            try await gatehouse.revokeSession(HTTPSupport.shortString(body.string("token"), field: "token"))
            return Response(status: .noContent)

        case (.post, "/v1/login/start"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["user", "client_ip", "user_agent", "remember_token"])
            // Members are read by type first, in order, then checked (so a wrong type is reported
            // before a bad value, whichever member comes first).
            let user = try body.string("user"), clientIP = try body.optionalString("client_ip")
            let userAgent = try body.optionalString("user_agent"), rememberToken = try body.optionalString("remember_token")
            let result = try await gatehouse.startLogin(
                user: HTTPSupport.user(user), clientIP: HTTPSupport.clientIP(clientIP), userAgent: HTTPSupport.userAgent(userAgent),
                rememberToken: rememberToken.map { (t) throws(ServiceError) in try HTTPSupport.shortString(t, field: "remember_token") }
            )
            return HTTPSupport.json(.ok, bytes: loginBody(result))
        case (.post, "/v1/login/finish"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["challenge", "method", "code", "remember", "client_ip", "user_agent"])
            let challenge = try body.string("challenge"), method = try body.string("method"), code = try body.string("code")
            let remember = try body.optionalBool("remember"), clientIP = try body.optionalString("client_ip")
            let userAgent = try body.optionalString("user_agent")
            guard let secondStep = SecondStepMethod(rawValue: method) else { throw HTTPSupport.invalid("method must be totp, email or backup_code") }
            let result = try await gatehouse.finishLogin(
                challenge: HTTPSupport.shortString(challenge, field: "challenge"), method: secondStep,
                code: HTTPSupport.shortString(code, field: "code", max: 64), remember: remember ?? false,
                clientIP: HTTPSupport.clientIP(clientIP), userAgent: HTTPSupport.userAgent(userAgent)
            )
            return HTTPSupport.json(.ok, bytes: loginBody(result))

        case (.get, "/v1/me"):
            try require(.frontend, request)
            return try await meObject(principal(request).user)
        case (.post, "/v1/me/totp"):
            try require(.frontend, request)
            _ = try await HTTPSupport.body(from: &request, allowed: [], emptyAllowed: true)
            let pending = try await gatehouse.startTOTPEnrollment(principal(request))
            return HTTPSupport.json(.ok, [
                "secret": pending.secret, "otpauth_uri": pending.otpauthURI, "qr_svg": pending.qrSVG,
                "expires_at": HTTPSupport.time(pending.expiresAt),
            ])
        case (.post, "/v1/me/totp/confirm"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["code", "client_ip", "user_agent"])
            let code = try body.string("code"), clientIP = try body.optionalString("client_ip"), userAgent = try body.optionalString("user_agent")
            let enabled = try await gatehouse.confirmTOTPEnrollment(
                principal(request), code: HTTPSupport.shortString(code, field: "code", max: 64),
                clientIP: HTTPSupport.clientIP(clientIP), userAgent: HTTPSupport.userAgent(userAgent)
            )
            return HTTPSupport.json(.ok, twoStepObject(enabled))
        case (.delete, "/v1/me/two-step"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["code", "client_ip"])
            let code = try body.string("code"), clientIP = try body.optionalString("client_ip")
            try await gatehouse.disableTwoStep(principal(request), code: HTTPSupport.shortString(code, field: "code", max: 64), clientIP: HTTPSupport.clientIP(clientIP))
            return Response(status: .noContent)

        case (.put, "/v1/me/recovery-email"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["email"])
            let email = try body.string("email")
            let expires = try await gatehouse.setRecoveryEmail(principal(request), address: HTTPSupport.shortString(email, field: "email", max: 254))
            return HTTPSupport.json(.accepted, ["sent_to": Gatehouse.maskAddress(email.lowercased()), "expires_at": HTTPSupport.time(expires)])
        case (.post, "/v1/me/recovery-email/confirm"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["code", "client_ip"])
            let code = try body.string("code"), clientIP = try body.optionalString("client_ip")
            let address = try await gatehouse.confirmRecoveryEmail(
                principal(request), code: HTTPSupport.shortString(code, field: "code", max: 64), clientIP: HTTPSupport.clientIP(clientIP)
            )
            return HTTPSupport.json(.ok, ["recovery_email": ["address": address, "verified": true]])
        case (.post, "/v1/me/two-step"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["method", "client_ip", "user_agent"])
            let method = try body.string("method"), clientIP = try body.optionalString("client_ip"), userAgent = try body.optionalString("user_agent")
            guard method == "email" else {
                throw HTTPSupport.invalid("method must be email (authenticator apps enrol through POST /v1/me/totp)")
            }
            let enabled = try await gatehouse.enableEmailTwoStep(
                principal(request), clientIP: HTTPSupport.clientIP(clientIP), userAgent: HTTPSupport.userAgent(userAgent)
            )
            return HTTPSupport.json(.ok, twoStepObject(enabled))
        case (.post, "/v1/login/email-code"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["challenge"])
            let sent = try await gatehouse.sendLoginCode(challenge: HTTPSupport.shortString(body.string("challenge"), field: "challenge"))
            return HTTPSupport.json(.accepted, ["sent_to": sent.sentTo, "expires_at": HTTPSupport.time(sent.expiresAt)])
        case (.post, "/v1/recovery/start"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["user"])
            gatehouse.startRecovery(user: try HTTPSupport.user(body.string("user")))
            return Response(status: .accepted)
        case (.post, "/v1/recovery/finish"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["user", "code", "client_ip"])
            let user = try body.string("user"), code = try body.string("code"), clientIP = try body.optionalString("client_ip")
            let reset = try await gatehouse.finishRecovery(
                user: HTTPSupport.user(user), code: HTTPSupport.shortString(code, field: "code", max: 64), clientIP: HTTPSupport.clientIP(clientIP)
            )
            return HTTPSupport.json(.ok, ["reset_token": reset.token, "expires_at": HTTPSupport.time(reset.expiresAt)])
        case (.post, "/v1/recovery/consume"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["reset_token"])
            let user = try await gatehouse.consumeReset(HTTPSupport.shortString(body.string("reset_token"), field: "reset_token"))
            return HTTPSupport.json(.ok, ["user": user.value])
        case (.post, "/v1/me/backup-codes"):
            try require(.frontend, request)
            let codes = try await gatehouse.regenerateBackupCodes(principal(request))
            return HTTPSupport.json(.ok, ["backup_codes": codes])
        case (.get, "/v1/me/app-passwords"):
            try require(.frontend, request)
            let list = try await gatehouse.appPasswords(of: principal(request).user)
            return HTTPSupport.json(.ok, ["app_passwords": list.map(appPasswordObject)])
        case (.post, "/v1/me/app-passwords"):
            try require(.frontend, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["label", "services"])
            let rawLabel = try body.string("label"), requested = try body.optionalStrings("services")
            let label = rawLabel.trimmingCharacters(in: .whitespaces)
            guard (1...64).contains(label.count), !label.contains(where: \.isNewline) else { throw HTTPSupport.invalid("label must be 1 to 64 characters on one line") }
            let services = requested ?? Gatehouse.mailServices
            guard !services.isEmpty, Set(services).count == services.count, services.allSatisfy(Gatehouse.mailServices.contains) else {
                throw HTTPSupport.invalid("services must be a non-empty list of imap, pop3, smtp")
            }
            let created = try await gatehouse.createAppPassword(user: principal(request).user, label: label, services: services)
            return HTTPSupport.json(.created, [
                "id": created.id, "label": created.label, "services": created.services, "password": created.password,
                "created_at": HTTPSupport.time(created.createdAt),
            ])
        case (.get, "/v1/me/devices"):
            try require(.frontend, request)
            let devices = try await gatehouse.devices(of: principal(request).user)
            return HTTPSupport.json(.ok, ["devices": devices.map(deviceObject)])
        case (.delete, "/v1/me/devices"):
            try require(.frontend, request)
            try await gatehouse.forgetDevices(of: principal(request).user, id: nil)
            return Response(status: .noContent)
        case (.get, "/v1/me/sessions"):
            try require(.frontend, request)
            let me = try principal(request)
            guard case .session(let claims, let user) = me else { throw ServiceError(.invalidToken, "a signed-in session is required") }
            let list = try await gatehouse.sessions(of: user)
            return HTTPSupport.json(.ok, ["sessions": list.map { s -> [String: Any] in
                [
                    "id": s.id, "created_at": HTTPSupport.time(s.createdAt), "expires_at": HTTPSupport.time(s.expiresAt), "amr": s.methods,
                    "client_ip": s.clientIP as Any? ?? NSNull(), "user_agent": s.userAgent as Any? ?? NSNull(), "current": s.id == claims.sessionID,
                ]
            }])
        case (.delete, "/v1/me/sessions"):
            try require(.frontend, request)
            guard case .session(let claims, let user) = try principal(request) else { throw ServiceError(.invalidToken, "a signed-in session is required") }
            try await gatehouse.revokeOtherSessions(of: user, keep: claims.sessionID)
            return Response(status: .noContent)
        case (.get, "/v1/me/events"):
            try require(.frontend, request)
            return HTTPSupport.json(.ok, ["events": try await gatehouse.events(of: principal(request).user).map(eventObject)])
        case (.post, "/v1/me/password-changed"):
            try require(.frontend, request)
            try await gatehouse.passwordChanged(principal(request))
            return Response(status: .noContent)
        case (.post, "/v1/mail/authenticate"):
            try require(.mail, request)
            let body = try await HTTPSupport.body(from: &request, allowed: ["user", "password", "service", "client_ip"])
            let user = try body.string("user"), password = try body.string("password"), service = try body.string("service")
            let clientIP = try body.optionalString("client_ip")
            guard Gatehouse.mailServices.contains(service) else { throw HTTPSupport.invalid("service must be imap, pop3 or smtp") }
            let result = try await gatehouse.mailAuthenticate(
                user: HTTPSupport.user(user), password: HTTPSupport.shortString(password, field: "password", max: 1024),
                service: service, clientIP: HTTPSupport.clientIP(clientIP)
            )
            switch result {
            case .ok(let id): return HTTPSupport.json(.ok, ["result": "ok", "app_password_id": id])
            case .usePrimary: return HTTPSupport.json(.ok, ["result": "use_primary"])
            case .denied: return HTTPSupport.problem(ServiceError(.denied, "the password is not an app password of this user for \(service)"))
            }
        case (.post, "/v1/users/import"):
            try require(.admin, request)
            let buffer: ByteBuffer
            do { buffer = try await request.collectBody(upTo: 8 << 20) } catch { throw HTTPSupport.invalid("the import is larger than 8 MiB") }
            guard let text = String(validating: Array(buffer.readableBytesView), as: UTF8.self) else { throw HTTPSupport.invalid("the import must be UTF-8 NDJSON") }
            let results = await gatehouse.importUsers(ndjson: text)
            return HTTPSupport.json(.ok, [
                "imported": results.filter(\.ok).count, "failed": results.filter { !$0.ok }.count,
                "results": results.map { r -> [String: Any] in
                    var o: [String: Any] = ["line": r.line, "ok": r.ok]
                    if let u = r.user { o["user"] = u }
                    if let e = r.error { o["error"] = e }
                    return o
                },
            ])
        default:
            return try await routeWithParameters(&request, method: method, path: path)
        }
    }

    func routeWithParameters(_ request: inout Request, method: HTTPRequest.Method, path: String) async throws(ServiceError) -> Response {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map { String($0) }
        // ["", "v1", "domains", D, "policy"]
        if parts.count == 5, parts[1] == "v1", parts[2] == "domains", parts[4] == "policy" {
            try require(.admin, request)
            guard let domain = DomainName(parts[3].removingPercentEncoding ?? "") else { throw HTTPSupport.invalid("not a domain name") }
            switch method {
            case .get:
                return HTTPSupport.json(.ok, policyObject(domain, gatehouse.policy(of: domain)))
            case .put:
                let body = try await HTTPSupport.body(from: &request, allowed: ["mode", "methods", "remember_device_days", "session_hours", "app_password_reveal"])
                let mode = try body.option("mode", DomainPolicy.Mode.self), methods = try body.optionalOptions("methods", DomainPolicy.Method.self)
                let days = try body.optionalInt("remember_device_days"), hours = try body.optionalInt("session_hours")
                let reveal = try body.optionalBool("app_password_reveal")
                var policy = gatehouse.policy(of: domain)
                policy.mode = mode
                if let m = methods {
                    guard !m.isEmpty, Set(m).count == m.count else { throw HTTPSupport.invalid("methods must be a non-empty list without repeats") }
                    policy.methods = m
                }
                if let d = days {
                    guard DomainPolicy.rememberDeviceDaysRange.contains(d) else { throw HTTPSupport.invalid("remember_device_days must be 0...365") }
                    policy.rememberDeviceDays = d
                }
                if let h = hours {
                    guard DomainPolicy.sessionHoursRange.contains(h) else { throw HTTPSupport.invalid("session_hours must be 1...168") }
                    policy.sessionHours = h
                }
                if let r = reveal { policy.appPasswordReveal = r }
                try await gatehouse.setPolicy(policy, for: domain)
                return HTTPSupport.json(.ok, policyObject(domain, policy))
            default:
                throw ServiceError(.notFound, "no such endpoint")
            }
        }
        // ["", "v1", "me", "app-passwords"|"devices", ID, ("reveal")?]
        if parts.count >= 5, parts[1] == "v1", parts[2] == "me", parts[4].utf8.count <= 64 {
            try require(.frontend, request)
            let id = parts[4]
            switch (method, parts[3], parts.count > 5 ? parts[5] : nil) {
            case (.delete, "app-passwords", nil):
                try await gatehouse.deleteAppPassword(user: principal(request).user, id: id)
                return Response(status: .noContent)
            case (.get, "app-passwords", "reveal"?) where parts.count == 6:
                let password = try await gatehouse.revealAppPassword(principal(request), id: id)
                return HTTPSupport.json(.ok, ["id": id, "password": password])
            case (.delete, "devices", nil):
                try await gatehouse.forgetDevices(of: principal(request).user, id: id)
                return Response(status: .noContent)
            default:
                throw ServiceError(.notFound, "no such endpoint")
            }
        }
        // ["", "v1", "users", U, …]
        if parts.count >= 4, parts[1] == "v1", parts[2] == "users" {
            try require(.admin, request)
            let user = try HTTPSupport.user(parts[3].removingPercentEncoding ?? "")
            switch (method, parts.count, parts.count > 4 ? parts[4] : "", parts.count > 5 ? parts[5] : "") {
            case (.get, 4, _, _):
                let status = try await gatehouse.adminStatus(of: user)
                var object = meDictionary(status.me)
                object["throttle"] = [
                    "failures": status.failures, "locked": status.locked,
                    "wait_until": status.throttledUntilMilliseconds.map { HTTPSupport.time($0 / 1000) } as Any? ?? NSNull(),
                ]
                return HTTPSupport.json(.ok, object)
            case (.delete, 5, "two-step", _):
                try await gatehouse.adminReset(user)
                return Response(status: .noContent)
            case (.post, 5, "unlock", _):
                try await gatehouse.unlock(user)
                return Response(status: .noContent)
            case (.get, 5, "events", _):
                return HTTPSupport.json(.ok, ["events": try await gatehouse.events(of: user).map(eventObject)])
            case (.post, 6, "sessions", "revoke-all"):
                try await gatehouse.revokeAllSessions(of: user)
                return Response(status: .noContent)
            default:
                throw ServiceError(.notFound, "no such endpoint")
            }
        }
        throw ServiceError(.notFound, "no such endpoint")
    }

    // MARK: Response bodies

    func sessionObject(_ s: IssuedSession) -> [String: Any] {
        ["token": s.token, "id": s.id, "expires_at": HTTPSupport.time(s.expiresAt)]
    }

    /// The answer of login/start and login/finish, written straight as bytes (it is on the
    /// sign-in path): the same text ``JSONText`` gives for the object, keys in byte order.
    func loginBody(_ result: LoginResult) -> [UInt8] {
        var w = JSONWriter(capacity: 512)
        func challenge(_ token: String, _ expires: Int64) {
            w.raw("{\"challenge\":{\"expires_at\":"); w.time(expires)
            w.raw(",\"token\":"); w.string(token); w.raw("}")
        }
        switch result {
        case .authenticated(let session, let remember):
            w.raw("{")
            if let remember {
                w.raw("\"remember\":{\"expires_at\":"); w.time(remember.expiresAt)
                w.raw(",\"token\":"); w.string(remember.token); w.raw("},")
            }
            w.raw("\"session\":{\"expires_at\":"); w.time(session.expiresAt)
            w.raw(",\"id\":"); w.string(session.id)
            w.raw(",\"token\":"); w.string(session.token)
            w.raw("},\"status\":\"authenticated\"}")
        case .secondStep(let token, let expires, let methods):
            challenge(token, expires)
            w.raw(",\"methods\":"); w.strings(methods.map(\.rawValue))
            w.raw(",\"status\":\"second_step\"}")
        case .enrollmentRequired(let token, let expires):
            challenge(token, expires)
            w.raw(",\"status\":\"enrollment_required\"}")
        }
        return w.bytes
    }

    func twoStepObject(_ enabled: TwoStepEnabled) -> [String: Any] {
        var object: [String: Any] = [
            "two_step": ["enabled": true, "method": enabled.method.rawValue],
            "backup_codes": enabled.backupCodes,
            "app_password": ["id": enabled.appPassword.id, "label": enabled.appPassword.label, "password": enabled.appPassword.password],
        ]
        if let session = enabled.session { object["session"] = sessionObject(session) }
        return object
    }

    func appPasswordObject(_ a: AppPasswordInfo) -> [String: Any] {
        [
            "id": a.id, "label": a.label, "services": a.services, "created_at": HTTPSupport.time(a.createdAt),
            "last_used_at": a.lastUsedAt.map { HTTPSupport.time($0) as Any } ?? NSNull(),
            "last_used_ip": a.lastUsedIP as Any? ?? NSNull(), "last_used_service": a.lastUsedService as Any? ?? NSNull(),
        ]
    }

    func deviceObject(_ d: RememberedDevice) -> [String: Any] {
        [
            "id": d.id, "user_agent": d.userAgent as Any? ?? NSNull(), "created_at": HTTPSupport.time(d.createdAt),
            "last_used_at": d.lastUsedAt.map { HTTPSupport.time($0) as Any } ?? NSNull(), "last_ip": d.lastIP as Any? ?? NSNull(),
        ]
    }

    func eventObject(_ e: SecurityEvent) -> [String: Any] {
        var o: [String: Any] = ["type": e.type, "at": HTTPSupport.time(e.at)]
        if let ip = e.clientIP { o["client_ip"] = ip }
        if let d = e.detail { o["detail"] = d }
        return o
    }

    func policyObject(_ domain: DomainName, _ p: DomainPolicy) -> [String: Any] {
        [
            "domain": domain.value, "mode": p.mode.rawValue, "methods": p.methods.map(\.rawValue),
            "remember_device_days": p.rememberDeviceDays, "session_hours": p.sessionHours, "app_password_reveal": p.appPasswordReveal,
        ]
    }

    func meObject(_ user: UserID) async throws(ServiceError) -> Response {
        HTTPSupport.json(.ok, meDictionary(try await gatehouse.status(of: user)))
    }

    func meDictionary(_ me: MeStatus) -> [String: Any] {
        let twoStep: [String: Any] = ["enabled": me.record.twoStepEnabled, "method": me.record.method.map { $0.rawValue as Any } ?? NSNull()]
        let totp: [String: Any] = me.record.totpEnvelope != nil
            ? ["enrolled": true, "since": HTTPSupport.time(me.record.totpSince ?? 0)]
            : ["enrolled": false]
        var object: [String: Any] = [
            "user": me.user.value,
            "two_step": twoStep,
            "totp": totp,
            "backup_codes_remaining": me.backupCodesRemaining,
            "domain_policy": policyObject(DomainName(me.user.domain)!, me.policy),
            "app_passwords": me.appPasswords.map(appPasswordObject),
            "devices": me.devices.map(deviceObject),
        ]
        if let address = me.record.recoveryEmail {
            object["recovery_email"] = ["address": address, "verified": me.record.recoveryVerified]
        }
        return object
    }
}
