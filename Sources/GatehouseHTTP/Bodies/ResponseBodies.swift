import GatehouseCore
import GatehouseService

// The answers of the API (docs/api.md, docs/openapi.yaml), one type per body. Members are written
// in the byte order of their names (see ``JSONMembers``); `null` where the answer has no value.

// MARK: Operations

/// `GET /healthz`, `GET /readyz`.
struct StatusResponse: JSONResponseBody {
    var status: String
    var reason: String?

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("reason", ifPresent: reason)
            o.member("status", status)
        }
    }
}

// MARK: Sessions and login

/// `POST /v1/sessions/verify`.
struct VerifiedSessionResponse: JSONResponseBody {
    var claims: SessionClaims

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("amr", claims.methods.strings)
            o.time("auth_time", claims.authTime)
            o.time("expires_at", claims.common.expiresAt)
            o.time("issued_at", claims.common.issuedAt)
            o.member("session_id", claims.sessionID)
            o.member("user", claims.common.user)
        }
    }
}

/// A session just issued: `{"expires_at","id","token"}`.
extension IssuedSession: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", expiresAt)
            o.member("id", id)
            o.member("token", token)
        }
    }
}

/// `POST /v1/sessions/refresh`.
struct RefreshedSessionResponse: JSONResponseBody {
    var session: IssuedSession

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("session", session) }
    }
}

/// `POST /v1/login/start` and `/finish`, written straight as bytes (it is on the sign-in path):
/// the text ``JSONText`` gave for the object, keys in byte order.
struct LoginResponse: JSONResponseBody {
    var result: LoginResult

    func write(to w: inout JSONWriter) {
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
    }
}

/// `POST /v1/login/email-code`, `PUT /v1/me/recovery-email`: where a code went and until when.
struct CodeSentResponse: JSONResponseBody {
    var sentTo: String
    var expiresAt: Int64

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", expiresAt)
            o.member("sent_to", sentTo)
        }
    }
}

/// `POST /v1/login/handoff`: where to send the browser.
struct HandoffResponse: JSONResponseBody {
    var url: String
    var expiresAt: Int64

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", expiresAt)
            o.member("url", url)
        }
    }
}

/// `POST /v1/recovery/finish`.
struct ResetTokenResponse: JSONResponseBody {
    var token: String
    var expiresAt: Int64

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", expiresAt)
            o.member("reset_token", token)
        }
    }
}

/// `POST /v1/recovery/consume`.
struct UserResponse: JSONResponseBody {
    var user: UserID

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("user", user.value) }
    }
}

// MARK: Self-service

/// `POST /v1/me/totp`.
struct PendingTOTPResponse: JSONResponseBody {
    var pending: PendingTOTP

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", pending.expiresAt)
            o.member("otpauth_uri", pending.otpauthURI)
            o.member("qr_svg", pending.qrSVG)
            o.member("secret", pending.secret)
        }
    }
}

/// `POST /v1/me/totp/confirm`, `POST /v1/me/two-step`.
struct TwoStepEnabledResponse: JSONResponseBody {
    var enabled: TwoStepEnabled

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.object("app_password") { a in
                a.member("id", enabled.appPassword.id)
                a.member("label", enabled.appPassword.label)
                a.member("password", enabled.appPassword.password)
            }
            o.member("backup_codes", enabled.backupCodes)
            o.member("session", ifPresent: enabled.session)
            o.object("two_step") { t in
                t.member("enabled", true)
                t.member("method", enabled.method.rawValue)
            }
        }
    }
}

/// `POST /v1/me/recovery-email/confirm`.
struct RecoveryEmailConfirmedResponse: JSONResponseBody {
    var address: String

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.object("recovery_email") { r in
                r.member("address", address)
                r.member("verified", true)
            }
        }
    }
}

/// `POST /v1/me/backup-codes`.
struct BackupCodesResponse: JSONResponseBody {
    var codes: [String]

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("backup_codes", codes) }
    }
}

/// An app password as listed.
extension AppPasswordInfo: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("created_at", createdAt)
            o.member("id", id)
            o.member("label", label)
            o.time("last_used_at", orNull: lastUsedAt)
            o.member("last_used_ip", orNull: lastUsedIP)
            o.member("last_used_service", orNull: lastUsedService)
            o.member("services", services)
        }
    }
}

/// `GET /v1/me/app-passwords`.
struct AppPasswordsResponse: JSONResponseBody {
    var appPasswords: [AppPasswordInfo]

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("app_passwords", appPasswords) }
    }
}

/// `POST /v1/me/app-passwords` (201).
struct CreatedAppPasswordResponse: JSONResponseBody {
    var created: CreatedAppPassword

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("created_at", created.createdAt)
            o.member("id", created.id)
            o.member("label", created.label)
            o.member("password", created.password)
            o.member("services", created.services)
        }
    }
}

/// `GET /v1/me/app-passwords/{id}/reveal`.
struct RevealedAppPasswordResponse: JSONResponseBody {
    var id: String
    var password: String

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("id", id)
            o.member("password", password)
        }
    }
}

/// A remembered device as listed.
extension RememberedDevice: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("created_at", createdAt)
            o.member("id", id)
            o.member("last_ip", orNull: lastIP)
            o.time("last_used_at", orNull: lastUsedAt)
            o.member("user_agent", orNull: userAgent)
        }
    }
}

/// `GET /v1/me/devices`.
struct DevicesResponse: JSONResponseBody {
    var devices: [RememberedDevice]

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("devices", devices) }
    }
}

/// `GET /v1/me/sessions`: the caller's sessions, the one asking marked `current`.
struct SessionsResponse: JSONResponseBody {
    var sessions: [SessionInfo]
    var currentID: String

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("sessions", sessions.map { Item(session: $0, current: $0.id == currentID) })
        }
    }

    struct Item: JSONResponseBody {
        var session: SessionInfo
        var current: Bool

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.member("amr", session.methods)
                o.member("client_ip", orNull: session.clientIP)
                o.time("created_at", session.createdAt)
                o.member("current", current)
                o.time("expires_at", session.expiresAt)
                o.member("id", session.id)
                o.member("user_agent", orNull: session.userAgent)
            }
        }
    }
}

/// A security event: `client_ip` and `detail` only when known.
extension SecurityEvent: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("at", at)
            o.member("client_ip", ifPresent: clientIP)
            o.member("detail", ifPresent: detail)
            o.member("type", type)
        }
    }
}

/// `GET /v1/me/events`, `GET /v1/users/{user}/events`.
struct EventsResponse: JSONResponseBody {
    var events: [SecurityEvent]

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("events", events) }
    }
}

/// `GET /v1/me`, and with `throttle` `GET /v1/users/{user}`.
struct MeResponse: JSONResponseBody {
    var me: MeStatus
    /// The admin view's throttle state.
    var throttle: Throttle?

    struct Throttle: JSONResponseBody {
        var failures: Int
        var locked: Bool
        var waitUntilMilliseconds: Int64?

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.member("failures", failures)
                o.member("locked", locked)
                o.time("wait_until", orNull: waitUntilMilliseconds.map { $0 / 1000 })
            }
        }
    }

    init(_ me: MeStatus) {
        self.me = me
    }

    init(_ status: AdminUserStatus) {
        me = status.me
        throttle = Throttle(failures: status.failures, locked: status.locked, waitUntilMilliseconds: status.throttledUntilMilliseconds)
    }

    func write(to json: inout JSONWriter) {
        let record = me.record
        json.object { o in
            o.member("app_passwords", me.appPasswords)
            o.member("backup_codes_remaining", me.backupCodesRemaining)
            o.member("devices", me.devices)
            o.member("domain_policy", PolicyResponse(domain: DomainName(me.user.domain)!, policy: me.policy))
            if let address = record.recoveryEmail {
                o.object("recovery_email") { r in
                    r.member("address", address)
                    r.member("verified", record.recoveryVerified)
                }
            }
            o.member("throttle", ifPresent: throttle)
            o.object("totp") { t in
                t.member("enrolled", record.totpEnvelope != nil)
                if record.totpEnvelope != nil { t.time("since", record.totpSince ?? 0) }
            }
            o.object("two_step") { t in
                t.member("enabled", record.twoStepEnabled)
                t.member("method", orNull: record.method?.rawValue)
            }
            o.member("user", me.user.value)
        }
    }
}

// MARK: Mail

/// `POST /v1/mail/authenticate` (a denial is a problem, not this).
struct MailAuthenticateResponse: JSONResponseBody {
    /// Set for `ok`; nil for `use_primary`.
    var appPasswordID: String?

    func write(to json: inout JSONWriter) {
        json.object { o in
            if let appPasswordID {
                o.member("app_password_id", appPasswordID)
                o.member("result", "ok")
            } else {
                o.member("result", "use_primary")
            }
        }
    }
}

// MARK: Administration

/// `GET`/`PUT /v1/domains/{domain}/policy`, and a user's `domain_policy`.
struct PolicyResponse: JSONResponseBody {
    var domain: DomainName
    var policy: DomainPolicy

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("app_password_reveal", policy.appPasswordReveal)
            o.member("domain", domain.value)
            o.member("methods", policy.methods.map(\.rawValue))
            o.member("mode", policy.mode.rawValue)
            o.member("remember_device_days", policy.rememberDeviceDays)
            o.member("session_hours", policy.sessionHours)
        }
    }
}

/// One line's result of an import: `user` and `error` only when known.
extension ImportLineResult: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("error", ifPresent: error)
            o.member("line", line)
            o.member("ok", ok)
            o.member("user", ifPresent: user)
        }
    }
}

/// `POST /v1/users/import`.
struct ImportResponse: JSONResponseBody {
    var results: [ImportLineResult]

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("failed", results.count { !$0.ok })
            o.member("imported", results.count(where: \.ok))
            o.member("results", results)
        }
    }
}

// MARK: Passkeys

/// JSON text written as it is (a value the service encoded in a standard's own form).
struct RawJSON: JSONResponseBody {
    var text: String

    func write(to json: inout JSONWriter) {
        json.bytes.append(contentsOf: text.utf8)
    }
}

/// `POST /v1/me/passkeys/options` and `POST /v1/login/passkey-options`: `public_key` is the
/// options in WebAuthn's JSON form (binary members base64url), as the service encoded them, for
/// `navigator.credentials.create()` or `.get()`.
struct PasskeyOptionsResponse: JSONResponseBody {
    var webAuthnJSON: String
    var expiresAt: Int64

    func write(to json: inout JSONWriter) {
        json.object { o in
            o.time("expires_at", expiresAt)
            o.member("public_key", RawJSON(text: webAuthnJSON))
        }
    }
}

extension PasskeyInfo: JSONResponseBody {
    func write(to json: inout JSONWriter) {
        json.object { o in
            o.member("backed_up", backedUp)
            o.member("backup_eligible", backupEligible)
            o.time("created_at", createdAt)
            o.member("id", id)
            o.time("last_used_at", orNull: lastUsedAt)
            o.member("name", name)
        }
    }
}

/// `GET /v1/me/passkeys`.
struct PasskeysResponse: JSONResponseBody {
    var passkeys: [PasskeyInfo]

    func write(to json: inout JSONWriter) {
        json.object { o in o.member("passkeys", passkeys) }
    }
}
