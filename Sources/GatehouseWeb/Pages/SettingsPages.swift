import Foundation
import GatehouseCore
import GatehouseService
import HTTPTypes
import Hummingbird

/// The settings page (`/account/settings`): two-step status and turning it off, backup codes,
/// passkeys (where the domain allows them), app passwords (create, reveal where the domain allows
/// it, revoke), remembered devices, sessions and the recent security events.
///
/// Every action is a form post that reads the form, checks its CSRF token, then the session
/// cookie, and only then calls the service — the same calls the `/v1/me` routes make. A
/// change answers 303 back to the page with a fixed notice key in the query (never text of the
/// person's); a secret (new backup codes, a new or revealed app password) is rendered in the
/// post's own answer, so it never sits in a URL, a cookie or the browser's history.
struct SettingsPages: Sendable {
    let kit: PageKit
    let account: AccountPrincipal
    var gatehouse: Gatehouse { kit.gatehouse }

    static let path = "/account/settings"

    /// The signed-in browser: its session, user and session id.
    typealias SignedIn = (principal: Principal, user: UserID, sessionID: String)

    func add(to routes: RouteCollection<BasicRequestContext>) {
        routes.get("/account/settings") { request, _ in await show(request) }
        routes.post("/account/settings/two-step/off") { request, _ in await turnOff(request) }
        routes.post("/account/settings/backup-codes") { request, _ in await newBackupCodes(request) }
        routes.post("/account/settings/passkeys/options") { request, _ in await passkeyOptions(request) }
        routes.post("/account/settings/passkeys") { request, _ in await addPasskey(request) }
        routes.post("/account/settings/passkeys/:id/remove") { request, context in await removePasskey(request, id: Self.passkeyID(context)) }
        routes.post("/account/settings/app-passwords") { request, _ in await createAppPassword(request) }
        routes.post("/account/settings/app-passwords/:id/reveal") { request, context in await revealAppPassword(request, id: Self.itemID(context)) }
        routes.post("/account/settings/app-passwords/:id/delete") { request, context in await revokeAppPassword(request, id: Self.itemID(context)) }
        routes.post("/account/settings/devices/forget-all") { request, _ in await forgetDevices(request, id: nil) }
        routes.post("/account/settings/devices/:id/forget") { request, context in await forgetDevices(request, id: Self.itemID(context) ?? "") }
        routes.post("/account/settings/sessions/sign-out-others") { request, _ in await signOutOthers(request) }
        routes.post("/account/settings/sessions/:id/sign-out") { request, context in await signOutSession(request, id: Self.itemID(context)) }
    }

    /// An item's id from the path, as the JSON API takes it (at most 64 bytes).
    static func itemID(_ context: BasicRequestContext) -> String? {
        guard let id = context.parameters.get("id"), !id.isEmpty, id.utf8.count <= 64 else { return nil }
        return id
    }

    /// A passkey's id from the path: its credential id in base64url, which may be long (up to
    /// 1023 bytes; the JSON API's limit).
    static func passkeyID(_ context: BasicRequestContext) -> String? {
        guard let id = context.parameters.get("id"), !id.isEmpty, id.utf8.count <= 1400 else { return nil }
        return id
    }

    // MARK: Notices after a redirect

    /// The confirmations a redirect may ask for, by key: the URL names a key, never the words,
    /// so no one can make the page say something of their choosing.
    static let notices: [String: String] = [
        "two-step-off": "Two-step verification is off. Your backup codes and app passwords were deleted; mail apps use your normal password again.",
        "app-password-revoked": "The app password was revoked. Apps that used it can no longer sign in with it.",
        "device-forgotten": "The device was forgotten. It will ask for a code at its next sign-in.",
        "devices-forgotten": "All remembered devices were forgotten. Each will ask for a code at its next sign-in.",
        "session-signed-out": "That session was signed out.",
        "others-signed-out": "You were signed out everywhere else. This device stays signed in.",
        "passkey-added": "Passkey added. At your next sign-in, choose “Use a passkey” instead of entering a code.",
        "passkey-removed": "The passkey was removed. It can no longer be used to sign in.",
    ]

    func done(_ key: String) -> Response {
        kit.redirect(Self.path + "?done=" + key)
    }

    // MARK: The page

    /// What a post adds to the page it answers with.
    struct Extras {
        var notice: String?
        var error: PageError?
        /// New backup codes (shown once).
        var backupCodes: [String]?
        /// A new app password (shown once).
        var created: CreatedAppPassword?
        /// A revealed app password: its id and the password.
        var revealed: (id: String, password: String)?
        /// The create form's entries, kept when it is refused.
        var labelEntered = ""
        var servicesEntered: [String] = MailService.allCases.map(\.rawValue)
        /// The passkey name entered, kept when adding it was refused.
        var passkeyNameEntered = ""
    }

    /// `GET /account/settings`.
    func show(_ request: Request) async -> Response {
        let who: SignedIn
        do { who = try account.session(request) } catch { return kit.errorPage(.notSignedIn) }
        var extras = Extras()
        if let key = request.uri.queryParameters.get("done") { extras.notice = Self.notices[String(key)] }
        return await render(request, who, extras)
    }

    /// The page for `who`, with what a post adds.
    func render(_ request: Request, _ who: SignedIn, _ extras: Extras = Extras()) async -> Response {
        let status: MeStatus
        let sessions: [SessionInfo]
        let events: [SecurityEvent]
        let passkeysOffered: Bool
        var passkeys: [PasskeyInfo] = []
        do throws(ServiceError) {
            status = try await gatehouse.status(of: who.user)
            sessions = try await gatehouse.sessions(of: who.user)
            events = try await gatehouse.events(of: who.user, limit: 20)
            // Passkeys come beside a code method, in domains that allow them.
            passkeysOffered = status.record.twoStepEnabled && status.policy.mode != .disabled && status.policy.methods.contains(.passkey)
            if passkeysOffered { passkeys = try await gatehouse.passkeys(of: who.user) }
        } catch {
            return kit.errorPage(PageError(error))
        }
        let csrf = kit.csrf(for: request)
        let policy = status.policy
        let record = status.record
        let twoStepOn = record.twoStepEnabled
        var values: [String: Any] = [
            "title": "Security settings", "wide": true, "signedInAs": who.user.value, "user": who.user.value, "csrf": csrf.token,
            "twoStepOn": twoStepOn, "twoStepUnavailable": policy.mode == .disabled,
            "enforced": twoStepOn && policy.mode == .enforced,
            "canTurnOff": twoStepOn && policy.mode == .optional,
            "backupRemaining": status.backupCodesRemaining, "backupNone": status.backupCodesRemaining == 0,
            "backupLow": (1...3).contains(status.backupCodesRemaining),
            "revealAllowed": policy.appPasswordReveal,
            "canCreateAppPassword": twoStepOn && policy.mode != .disabled,
            "labelEntered": extras.labelEntered,
            "serviceIMAP": extras.servicesEntered.contains("imap"), "servicePOP": extras.servicesEntered.contains("pop3"),
            "serviceSMTP": extras.servicesEntered.contains("smtp"),
        ]
        if let method = record.method {
            values["methodWords"] = SettingsWords.method(method)
            values["disableLabel"] = method == .totp
                ? "A code from your authenticator app, or one of your backup codes"
                : "One of your backup codes (xxxxx-xxxxx)"
        }
        if let address = record.recoveryEmail {
            values["recoveryEmail"] = Gatehouse.maskAddress(address)
            values["recoveryVerified"] = record.recoveryVerified
        }
        if let notice = extras.notice { values["notice"] = notice }
        if let error = extras.error { values["error"] = error.message; values["errorCode"] = error.code.name }

        values["appPasswords"] = status.appPasswords.map(Self.row)
        values["hasAppPasswords"] = !status.appPasswords.isEmpty
        values["devices"] = status.devices.map(Self.row)
        values["hasDevices"] = !status.devices.isEmpty
        values["sessions"] = sessions.map { Self.row($0, current: $0.id == who.sessionID) }
        values["hasOtherSessions"] = sessions.contains { $0.id != who.sessionID }
        values["events"] = events.map(Self.row)
        values["hasEvents"] = !events.isEmpty
        values["passkeysOffered"] = passkeysOffered
        values["passkeys"] = passkeys.map(Self.row)
        values["hasPasskeys"] = !passkeys.isEmpty
        values["passkeyNameEntered"] = extras.passkeyNameEntered

        var scripts: [String] = passkeysOffered ? ["passkey.js"] : []
        if let codes = extras.backupCodes {
            values["hasBackupCodes"] = true
            values["backupCodes"] = codes
            values["backupCodesDownload"] = Self.download(codes, user: who.user)
            scripts.append("print.js")
        }
        if let created = extras.created {
            values["newPassword"] = created.password
            values["newPasswordLabel"] = created.label
            scripts.append("copy.js")
        }
        if let revealed = extras.revealed {
            values["revealedPassword"] = revealed.password
            values["revealedLabel"] = status.appPasswords.first { $0.id == revealed.id }?.label ?? ""
            if !scripts.contains("copy.js") { scripts.append("copy.js") }
        }
        values["scripts"] = scripts
        return kit.page("settings", values, status: extras.error?.status ?? .ok, cookies: csrf.newCookie.map { [$0] } ?? [])
    }

    /// The backup codes as a text file, for the download link (a `data:` URL: the codes never
    /// travel again, and nothing is stored for a later download).
    static func download(_ codes: [String], user: UserID) -> String {
        var text = "Backup codes for \(user.value)\nEach code works once. Keep them somewhere safe.\n\n"
        for (index, code) in codes.enumerated() { text += "\(index + 1). \(code)\n" }
        return "data:text/plain;charset=utf-8," + (text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
    }

    // Every row sets every key its template reads, so that no name falls through to the page's.

    static func row(_ password: AppPasswordInfo) -> [String: Any] {
        var lastUsed = "Never used"
        if let at = password.lastUsedAt {
            lastUsed = SettingsWords.time(at)
            if let service = password.lastUsedService { lastUsed += " · " + SettingsWords.service(service) }
            if let ip = password.lastUsedIP { lastUsed += " · from " + ip }
        }
        return [
            "id": password.id, "label": password.label, "services": SettingsWords.services(password.services),
            "created": SettingsWords.time(password.createdAt), "createdISO": SettingsWords.iso(password.createdAt), "lastUsed": lastUsed,
        ]
    }

    static func row(_ device: RememberedDevice) -> [String: Any] {
        // Remembering is itself a sign-in on the device, so a device always has a last use.
        var lastUsed = SettingsWords.time(device.lastUsedAt ?? device.createdAt)
        if let ip = device.lastIP { lastUsed += " · from " + ip }
        return [
            "id": device.id, "device": SettingsWords.device(userAgent: device.userAgent), "userAgent": device.userAgent ?? "",
            "created": SettingsWords.time(device.createdAt), "createdISO": SettingsWords.iso(device.createdAt), "lastUsed": lastUsed,
        ]
    }

    static func row(_ session: SessionInfo, current: Bool) -> [String: Any] {
        [
            "id": session.id, "isCurrent": current, "device": SettingsWords.device(userAgent: session.userAgent),
            "userAgent": session.userAgent ?? "", "created": SettingsWords.time(session.createdAt),
            "createdISO": SettingsWords.iso(session.createdAt), "how": SettingsWords.signedIn(amr: session.methods),
            "ip": session.clientIP ?? "Unknown",
        ]
    }

    static func row(_ passkey: PasskeyInfo) -> [String: Any] {
        [
            "id": passkey.id, "name": passkey.name, "synced": passkey.backedUp,
            "created": SettingsWords.time(passkey.createdAt), "createdISO": SettingsWords.iso(passkey.createdAt),
            "lastUsed": passkey.lastUsedAt.map(SettingsWords.time) ?? "Never used",
        ]
    }

    static func row(_ event: SecurityEvent) -> [String: Any] {
        [
            "type": event.type, "words": SettingsWords.event(event), "at": SettingsWords.time(event.at), "atISO": SettingsWords.iso(event.at),
            "hasIP": event.clientIP != nil, "ip": event.clientIP ?? "",
        ]
    }

    // MARK: Actions

    /// Reads the form, checks its CSRF token, then the session cookie — in that order, so a
    /// forged post learns nothing and changes nothing — and runs `action`.
    func act(_ request: Request, _ action: (Form, SignedIn) async -> Response) async -> Response {
        await kit.posted(request, back: Self.path) { form in
            let who: SignedIn
            do { who = try account.session(request) } catch { return kit.errorPage(.notSignedIn) }
            return await action(form, who)
        }
    }

    /// `POST /account/settings/two-step/off` (`code`: an authenticator code or a backup code).
    func turnOff(_ request: Request) async -> Response {
        await act(request) { form, who in
            let code = (form["code"] ?? "").trimmingCharacters(in: .whitespaces)
            guard !code.isEmpty, code.utf8.count <= 32 else {
                return await render(request, who, Extras(error: PageError(.invalidRequest, "Enter a code from your authenticator app or one of your backup codes.")))
            }
            do throws(ServiceError) {
                try await gatehouse.disableTwoStep(who.principal, code: code, clientIP: nil)
                return done("two-step-off")
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/backup-codes`: a new set, shown in this answer only.
    func newBackupCodes(_ request: Request) async -> Response {
        await act(request) { _, who in
            do throws(ServiceError) {
                let codes = try await gatehouse.regenerateBackupCodes(who.principal)
                return await render(request, who, Extras(notice: "Here are your new backup codes. Your old codes no longer work.", backupCodes: codes))
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/passkeys/options` (from passkey.js): the options for
    /// `navigator.credentials.create()` as JSON, or the refusal in words (no fresh sign-in, two-step
    /// off, not allowed) with its status. Form, CSRF token, then session, as every action here.
    func passkeyOptions(_ request: Request) async -> Response {
        await kit.posted(request, json: true) { _ in
            let who: SignedIn
            do { who = try account.session(request) } catch { return kit.jsonError(.notSignedIn) }
            do throws(ServiceError) {
                let options = try await gatehouse.startPasskeyRegistration(who.principal)
                return kit.json(#"{"public_key":"# + options.webAuthnJSON + "}")
            } catch {
                return kit.jsonError(PageError(error))
            }
        }
    }

    /// `POST /account/settings/passkeys` (`name`, and `client_data_json` and `attestation_object`
    /// in base64url, which passkey.js puts in the form): the new passkey, checked against the
    /// registration the options started.
    func addPasskey(_ request: Request) async -> Response {
        await act(request) { form, who in
            let name = form["name"] ?? ""
            var extras = Extras(passkeyNameEntered: String(name.prefix(64)))
            guard let clientData = SignInPages.bytes(form["client_data_json"]), let attestation = SignInPages.bytes(form["attestation_object"]) else {
                extras.error = PageError(
                    .invalidRequest, "Your browser sent no passkey. Adding one needs a browser that supports passkeys, with JavaScript on."
                )
                return await render(request, who, extras)
            }
            do throws(ServiceError) {
                _ = try await gatehouse.finishPasskeyRegistration(who.principal, name: name, clientDataJSON: clientData, attestationObject: attestation)
                return done("passkey-added")
            } catch {
                extras.error = error.code == .challengeExpired
                    ? PageError(
                        PageError.Code(name: error.code.name), "Adding the passkey took too long or was already finished (each try lasts 5 minutes). Add it again.",
                        title: "Try again", status: .unauthorized
                    )
                    : PageError(error)
                return await render(request, who, extras)
            }
        }
    }

    /// `POST /account/settings/passkeys/{id}/remove`.
    func removePasskey(_ request: Request, id: String?) async -> Response {
        await act(request) { _, who in
            do throws(ServiceError) {
                guard let id else { throw ServiceError(.notFound, "no such passkey") }
                try await gatehouse.deletePasskey(user: who.user, id: id)
                return done("passkey-removed")
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/app-passwords` (`label`, `services` checkboxes): the new password,
    /// shown in this answer.
    func createAppPassword(_ request: Request) async -> Response {
        await act(request) { form, who in
            let labelText = form["label"] ?? ""
            let chosen = form.all("services")
            var extras = Extras(labelEntered: String(labelText.prefix(64)), servicesEntered: chosen)
            guard !chosen.isEmpty else {
                extras.error = PageError(.invalidRequest, "Choose what the app password is for: IMAP, POP, SMTP or more than one.")
                return await render(request, who, extras)
            }
            do throws(ServiceError) {
                let label = try AppPasswordLabel(labelText)
                let services = try MailService.list(chosen)
                extras.created = try await gatehouse.createAppPassword(user: who.user, label: label, services: services)
                extras.labelEntered = ""
                extras.servicesEntered = MailService.allCases.map(\.rawValue)
                extras.notice = "App password created. Copy it into your mail app now."
            } catch {
                extras.error = PageError(error)
            }
            return await render(request, who, extras)
        }
    }

    /// `POST /account/settings/app-passwords/{id}/reveal`: the password, in this answer, where
    /// the domain allows revealing and the session's second step is recent.
    func revealAppPassword(_ request: Request, id: String?) async -> Response {
        await act(request) { _, who in
            guard let id else { return await render(request, who, Extras(error: PageError(ServiceError(.notFound, "no such app password")))) }
            do throws(ServiceError) {
                let password = try await gatehouse.revealAppPassword(who.principal, id: id)
                return await render(request, who, Extras(revealed: (id, password)))
            } catch {
                return await render(request, who, Extras(error: revealError(error, user: who.user)))
            }
        }
    }

    /// The service answers `reauthentication_required` for three reasons; the person needs to
    /// know which one, since only one of them is fixed by signing in again.
    func revealError(_ error: ServiceError, user: UserID) -> PageError {
        guard error.code == .reauthenticationRequired else { return PageError(error) }
        if let domain = DomainName(user.domain), !gatehouse.policy(of: domain).appPasswordReveal {
            return PageError(
                PageError.Code(name: error.code.name), "Your provider does not allow showing app passwords again. Revoke it and create a new one if you need it.",
                title: "Not allowed", status: .forbidden
            )
        }
        // The service's answer for a password stored without a sealed copy (made while the
        // domain did not allow revealing).
        if error.detail.contains("revealing was off") {
            return PageError(
                PageError.Code(name: error.code.name), "This app password was created before your provider allowed showing app passwords again, so it cannot be shown. Revoke it and create a new one.",
                title: "Cannot be shown", status: .conflict
            )
        }
        return PageError(error)
    }

    /// `POST /account/settings/app-passwords/{id}/delete`.
    func revokeAppPassword(_ request: Request, id: String?) async -> Response {
        await act(request) { _, who in
            do throws(ServiceError) {
                guard let id else { throw ServiceError(.notFound, "no such app password") }
                try await gatehouse.deleteAppPassword(user: who.user, id: id)
                return done("app-password-revoked")
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/devices/{id}/forget` and `…/devices/forget-all` (`id` nil).
    func forgetDevices(_ request: Request, id: String?) async -> Response {
        await act(request) { _, who in
            do throws(ServiceError) {
                if let id, id.isEmpty { throw ServiceError(.notFound, "no such device") }
                try await gatehouse.forgetDevices(of: who.user, id: id)
                guard id == nil else { return done("device-forgotten") }
                // This browser's own remember cookie names a device that no longer exists.
                var response = done("devices-forgotten")
                response.setCookie(kit.expired(CookieName.remember))
                return response
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/sessions/{id}/sign-out`: another of the person's sessions.
    func signOutSession(_ request: Request, id: String?) async -> Response {
        await act(request) { _, who in
            guard id != who.sessionID else {
                return await render(request, who, Extras(error: PageError(
                    .invalidRequest, "That is the session you are using now. Use “Sign out” at the bottom of the page to end it."
                )))
            }
            do throws(ServiceError) {
                guard let id else { throw ServiceError(.notFound, "no such session") }
                try await gatehouse.revokeSession(of: who.user, id: id)
                return done("session-signed-out")
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }

    /// `POST /account/settings/sessions/sign-out-others`: every session but this browser's.
    func signOutOthers(_ request: Request) async -> Response {
        await act(request) { _, who in
            do throws(ServiceError) {
                try await gatehouse.revokeOtherSessions(of: who.user, keep: who.sessionID)
                return done("others-signed-out")
            } catch {
                return await render(request, who, Extras(error: PageError(error)))
            }
        }
    }
}
