import Foundation
import GatehouseCore
@testable import GatehouseHTTP
@testable import GatehouseService
import HTTPTypes
import Testing

/// The typed response bodies write the same bytes as the `[String: Any]` objects the responder
/// built before them (written with `JSONText`, keys in byte order, `null` where a value is
/// missing); the reference objects below are the old responder's, copied.
@Suite("Response bodies")
struct ResponseBodyTests {
    static func written(_ body: some JSONResponseBody) -> String {
        var writer = JSONWriter()
        body.write(to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    static func reference(_ object: [String: Any]) -> String { JSONText.string(object) }

    static func time(_ seconds: Int64) -> String { JSONText.time(seconds) }

    // The old responder's objects.
    static func sessionObject(_ s: IssuedSession) -> [String: Any] {
        ["token": s.token, "id": s.id, "expires_at": time(s.expiresAt)]
    }

    static func appPasswordObject(_ a: AppPasswordInfo) -> [String: Any] {
        [
            "id": a.id, "label": a.label, "services": a.services, "created_at": time(a.createdAt),
            "last_used_at": a.lastUsedAt.map { time($0) as Any } ?? NSNull(),
            "last_used_ip": a.lastUsedIP as Any? ?? NSNull(), "last_used_service": a.lastUsedService as Any? ?? NSNull(),
        ]
    }

    static func deviceObject(_ d: RememberedDevice) -> [String: Any] {
        [
            "id": d.id, "user_agent": d.userAgent as Any? ?? NSNull(), "created_at": time(d.createdAt),
            "last_used_at": d.lastUsedAt.map { time($0) as Any } ?? NSNull(), "last_ip": d.lastIP as Any? ?? NSNull(),
        ]
    }

    static func eventObject(_ e: SecurityEvent) -> [String: Any] {
        var o: [String: Any] = ["type": e.type, "at": time(e.at)]
        if let ip = e.clientIP { o["client_ip"] = ip }
        if let d = e.detail { o["detail"] = d }
        return o
    }

    static func policyObject(_ domain: DomainName, _ p: DomainPolicy) -> [String: Any] {
        [
            "domain": domain.value, "mode": p.mode.rawValue, "methods": p.methods.map(\.rawValue),
            "remember_device_days": p.rememberDeviceDays, "session_hours": p.sessionHours, "app_password_reveal": p.appPasswordReveal,
        ]
    }

    static func meDictionary(_ me: MeStatus) -> [String: Any] {
        let twoStep: [String: Any] = ["enabled": me.record.twoStepEnabled, "method": me.record.method.map { $0.rawValue as Any } ?? NSNull()]
        let totp: [String: Any] = me.record.totpEnvelope != nil
            ? ["enrolled": true, "since": time(me.record.totpSince ?? 0)]
            : ["enrolled": false]
        var object: [String: Any] = [
            "user": me.user.value, "two_step": twoStep, "totp": totp, "backup_codes_remaining": me.backupCodesRemaining,
            "domain_policy": policyObject(DomainName(me.user.domain)!, me.policy),
            "app_passwords": me.appPasswords.map(appPasswordObject), "devices": me.devices.map(deviceObject),
        ]
        if let address = me.record.recoveryEmail {
            object["recovery_email"] = ["address": address, "verified": me.record.recoveryVerified]
        }
        return object
    }

    static func twoStepObject(_ enabled: TwoStepEnabled) -> [String: Any] {
        var object: [String: Any] = [
            "two_step": ["enabled": true, "method": enabled.method.rawValue],
            "backup_codes": enabled.backupCodes,
            "app_password": ["id": enabled.appPassword.id, "label": enabled.appPassword.label, "password": enabled.appPassword.password],
        ]
        if let session = enabled.session { object["session"] = sessionObject(session) }
        return object
    }

    // Values, with every optional both present and absent; strings that need escaping.
    static let session = IssuedSession(token: "tok.en\"x", id: "sid-1", expiresAt: 1_800_000_000)
    static let apps = [
        AppPasswordInfo(id: "a1", label: "Phone \\ mail", services: ["imap", "smtp"], createdAt: 1_700_000_000, lastUsedAt: 1_700_000_100, lastUsedIP: "192.0.2.1", lastUsedService: "imap"),
        AppPasswordInfo(id: "a2", label: "Laptop", services: [], createdAt: 1_700_000_000, lastUsedAt: nil, lastUsedIP: nil, lastUsedService: nil),
    ]
    static let devices = [
        RememberedDevice(id: "d1", userAgent: "Mozilla/5.0 \u{1}", createdAt: 1_700_000_000, lastUsedAt: 1_700_000_200, lastIP: "2001:db8::1"),
        RememberedDevice(id: "d2", userAgent: nil, createdAt: 1_700_000_000, lastUsedAt: nil, lastIP: nil),
    ]
    static let events = [
        SecurityEvent(type: "login", at: 1_700_000_000, clientIP: "192.0.2.1", detail: "totp"),
        SecurityEvent(type: "logout", at: 1_700_000_001, clientIP: nil, detail: nil),
    ]
    static let policy = DomainPolicy(mode: .enforced, methods: [.email, .totp], rememberDeviceDays: 0, sessionHours: 168, appPasswordReveal: true)

    static func me(enrolled: Bool) -> MeStatus {
        var fields = ["epoch": "3"]
        if enrolled {
            fields.merge(["totp": "envelope", "totp_since": "1700000000", "method": "totp", "recovery_email": "r@example.net", "recovery_verified": "1"]) { $1 }
        }
        return MeStatus(
            user: UserID("user@example.org")!, record: UserRecord(fields: fields), backupCodesRemaining: enrolled ? 10 : 0,
            policy: enrolled ? policy : .default, appPasswords: enrolled ? apps : [], devices: enrolled ? devices : []
        )
    }

    @Test("items: sessions, app passwords, devices, events, policies")
    func items() {
        #expect(Self.written(Self.session) == Self.reference(Self.sessionObject(Self.session)))
        for app in Self.apps { #expect(Self.written(app) == Self.reference(Self.appPasswordObject(app))) }
        for device in Self.devices { #expect(Self.written(device) == Self.reference(Self.deviceObject(device))) }
        for event in Self.events { #expect(Self.written(event) == Self.reference(Self.eventObject(event))) }
        let domain = DomainName("example.org")!
        for policy in [Self.policy, .default] {
            #expect(Self.written(PolicyResponse(domain: domain, policy: policy)) == Self.reference(Self.policyObject(domain, policy)))
        }
    }

    @Test("GET /v1/me and GET /v1/users/{user}", arguments: [true, false])
    func me(enrolled: Bool) {
        let me = Self.me(enrolled: enrolled)
        #expect(Self.written(MeResponse(me)) == Self.reference(Self.meDictionary(me)))
        for until: Int64? in [nil, 1_700_000_123_456] {
            let status = AdminUserStatus(me: me, failures: 4, locked: until != nil, throttledUntilMilliseconds: until)
            var object = Self.meDictionary(me)
            object["throttle"] = [
                "failures": status.failures, "locked": status.locked,
                "wait_until": status.throttledUntilMilliseconds.map { Self.time($0 / 1000) } as Any? ?? NSNull(),
            ]
            #expect(Self.written(MeResponse(status)) == Self.reference(object))
        }
    }

    @Test("answers of sessions, login, recovery and operations")
    func answers() {
        #expect(Self.written(StatusResponse(status: "ok")) == Self.reference(["status": "ok"]))
        #expect(Self.written(StatusResponse(status: "not_ready", reason: "redis")) == Self.reference(["status": "not_ready", "reason": "redis"]))
        let claims = SessionClaims(
            common: CommonClaims(user: "user@example.org", issuedAt: 1_700_000_000, expiresAt: 1_700_028_800, epoch: 1),
            sessionID: "sid", authTime: 1_699_999_999, methods: [.password, .otp]
        )
        #expect(Self.written(VerifiedSessionResponse(claims: claims)) == Self.reference([
            "user": claims.common.user, "session_id": claims.sessionID,
            "issued_at": Self.time(claims.common.issuedAt), "expires_at": Self.time(claims.common.expiresAt),
            "auth_time": Self.time(claims.authTime), "amr": claims.methods.strings,
        ]))
        #expect(Self.written(RefreshedSessionResponse(session: Self.session)) == Self.reference(["session": Self.sessionObject(Self.session)]))
        #expect(Self.written(CodeSentResponse(sentTo: "u***@example.org", expiresAt: 1_700_000_600)) == Self.reference(["sent_to": "u***@example.org", "expires_at": Self.time(1_700_000_600)]))
        #expect(Self.written(ResetTokenResponse(token: "reset", expiresAt: 1_700_000_600)) == Self.reference(["reset_token": "reset", "expires_at": Self.time(1_700_000_600)]))
        #expect(Self.written(UserResponse(user: UserID("user@example.org")!)) == Self.reference(["user": "user@example.org"]))
        #expect(Self.written(MailAuthenticateResponse(appPasswordID: "a1")) == Self.reference(["result": "ok", "app_password_id": "a1"]))
        #expect(Self.written(MailAuthenticateResponse(appPasswordID: nil)) == Self.reference(["result": "use_primary"]))
        let results = [
            ImportLineResult(line: 1, user: "good@example.org", ok: true),
            ImportLineResult(line: 2, user: nil, ok: false, error: "user must be an email address"),
        ]
        #expect(Self.written(ImportResponse(results: results)) == Self.reference([
            "imported": results.filter(\.ok).count, "failed": results.filter { !$0.ok }.count,
            "results": results.map { r -> [String: Any] in
                var o: [String: Any] = ["line": r.line, "ok": r.ok]
                if let u = r.user { o["user"] = u }
                if let e = r.error { o["error"] = e }
                return o
            },
        ]))
    }

    @Test("answers of self-service")
    func selfService() {
        let pending = PendingTOTP(secret: "GEZDGNBV", otpauthURI: "otpauth://totp/x?secret=GEZDGNBV", qrSVG: "<svg/>", expiresAt: 1_700_000_600)
        #expect(Self.written(PendingTOTPResponse(pending: pending)) == Self.reference([
            "secret": pending.secret, "otpauth_uri": pending.otpauthURI, "qr_svg": pending.qrSVG, "expires_at": Self.time(pending.expiresAt),
        ]))
        for session in [Self.session, nil] {
            let enabled = TwoStepEnabled(method: .email, backupCodes: ["1234-5678"], appPassword: (id: "a", label: "IMAP/POP/SMTP", password: "abcd efgh"), session: session)
            #expect(Self.written(TwoStepEnabledResponse(enabled: enabled)) == Self.reference(Self.twoStepObject(enabled)))
        }
        #expect(Self.written(RecoveryEmailConfirmedResponse(address: "r@example.net")) == Self.reference(["recovery_email": ["address": "r@example.net", "verified": true]]))
        #expect(Self.written(BackupCodesResponse(codes: ["a", "b"])) == Self.reference(["backup_codes": ["a", "b"]]))
        #expect(Self.written(AppPasswordsResponse(appPasswords: Self.apps)) == Self.reference(["app_passwords": Self.apps.map(Self.appPasswordObject)]))
        let created = CreatedAppPassword(id: "a3", label: "Tablet", services: ["pop3"], password: "abcd efgh ijkl", createdAt: 1_700_000_000)
        #expect(Self.written(CreatedAppPasswordResponse(created: created)) == Self.reference([
            "id": created.id, "label": created.label, "services": created.services, "password": created.password, "created_at": Self.time(created.createdAt),
        ]))
        #expect(Self.written(RevealedAppPasswordResponse(id: "a1", password: "abcd")) == Self.reference(["id": "a1", "password": "abcd"]))
        #expect(Self.written(DevicesResponse(devices: Self.devices)) == Self.reference(["devices": Self.devices.map(Self.deviceObject)]))
        #expect(Self.written(DevicesResponse(devices: [])) == Self.reference(["devices": [Any]()]))
        #expect(Self.written(EventsResponse(events: Self.events)) == Self.reference(["events": Self.events.map(Self.eventObject)]))
        let sessions = [
            SessionInfo(id: "s1", createdAt: 1_700_000_000, expiresAt: 1_700_028_800, methods: ["pwd", "otp"], clientIP: "192.0.2.1", userAgent: "UA"),
            SessionInfo(id: "s2", createdAt: 1_700_000_000, expiresAt: 1_700_028_800, methods: [], clientIP: nil, userAgent: nil),
        ]
        #expect(Self.written(SessionsResponse(sessions: sessions, currentID: "s2")) == Self.reference(["sessions": sessions.map { s -> [String: Any] in
            [
                "id": s.id, "created_at": Self.time(s.createdAt), "expires_at": Self.time(s.expiresAt), "amr": s.methods,
                "client_ip": s.clientIP as Any? ?? NSNull(), "user_agent": s.userAgent as Any? ?? NSNull(), "current": s.id == "s2",
            ]
        }]))
    }
}

extension ResponseBodyTests {
    /// Every problem code, with and without `attempts_remaining`, and a detail that needs escaping.
    static let codes: [ServiceError.Code] = [
        .invalidRequest, .unauthorized, .forbidden, .invalidToken, .invalidCode, .challengeExpired, .rateLimited, .twoStepDisabled,
        .reauthenticationRequired, .recoveryEmailRequired, .notEnrolled, .methodNotAllowed, .notFound, .denied, .unavailable,
    ]
    static let problemCases: [(ServiceError.Code, Int?)] = codes.flatMap { [($0, nil), ($0, 3)] }

    @Test("a problem's body is the same bytes as the object written with JSONText", arguments: problemCases.indices)
    func problemBody(index: Int) {
        let (code, remaining) = Self.problemCases[index]
        let detail = "the \"code\" is not valid: ü\u{1}/\\"
        let status = HTTPSupport.status(of: code)
        var object: [String: Any] = [
            "type": "https://gatehouse.dev/problems/\(code.name)", "title": HTTPSupport.title(code),
            "status": status.code, "detail": detail, "code": code.name,
        ]
        if let remaining { object["attempts_remaining"] = remaining }
        let written = String(decoding: HTTPSupport.problemBody(code, status: status, detail: detail, attemptsRemaining: remaining), as: UTF8.self)
        #expect(written == Self.reference(object))
    }
}
