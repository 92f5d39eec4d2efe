import Foundation
import GatehouseCore
import GatehouseService
import Hummingbird

/// A user's own account (frontend scope, a session or challenge token): `/v1/me` and below.
///
/// Where a body has values to check, the caller is resolved first (``Access/principal(_:)``) and
/// the values after, in argument order, as the answers have always been ordered.
struct SelfServiceRoutes {
    let access: Access
    var gatehouse: Gatehouse { access.gatehouse }

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.get("/v1/me") { request, _ in
                try access.require(.frontend, request)
                return HTTPSupport.json(.ok, MeResponse(try await gatehouse.status(of: access.principal(request).user)))
            }
            addTwoStep(routes)
            addAppPasswords(routes)
            addPasskeys(routes)
            addDevicesAndSessions(routes)
        }
    }

    /// TOTP enrolment, email two-step, turning it off, recovery email, backup codes.
    func addTwoStep(_ routes: RouteCollection<BasicRequestContext>) {
        routes.post("/v1/me/totp") { request, _ in
            var request = request
            try access.require(.frontend, request)
            _ = try await EmptyBody.read(from: &request, emptyAllowed: true)
            return HTTPSupport.json(.ok, PendingTOTPResponse(pending: try await gatehouse.startTOTPEnrollment(access.principal(request))))
        }
        routes.post("/v1/me/totp/confirm") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await TOTPConfirmBody.read(from: &request)
            let enabled = try await gatehouse.confirmTOTPEnrollment(
                access.principal(request), code: HTTPSupport.shortString(body.code, field: "code", max: 64),
                clientIP: HTTPSupport.clientIP(body.clientIP), userAgent: HTTPSupport.userAgent(body.userAgent)
            )
            return HTTPSupport.json(.ok, TwoStepEnabledResponse(enabled: enabled))
        }
        routes.post("/v1/me/two-step") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await EnableTwoStepBody.read(from: &request)
            let enabled = try await gatehouse.enableEmailTwoStep(
                access.principal(request), clientIP: HTTPSupport.clientIP(body.clientIP), userAgent: HTTPSupport.userAgent(body.userAgent)
            )
            return HTTPSupport.json(.ok, TwoStepEnabledResponse(enabled: enabled))
        }
        routes.delete("/v1/me/two-step") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await CodeBody.read(from: &request)
            try await gatehouse.disableTwoStep(
                access.principal(request), code: HTTPSupport.shortString(body.code, field: "code", max: 64), clientIP: HTTPSupport.clientIP(body.clientIP)
            )
            return Response(status: .noContent)
        }
        routes.put("/v1/me/recovery-email") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await RecoveryEmailBody.read(from: &request)
            let expires = try await gatehouse.setRecoveryEmail(access.principal(request), address: HTTPSupport.shortString(body.email, field: "email", max: 254))
            return HTTPSupport.json(.accepted, CodeSentResponse(sentTo: Gatehouse.maskAddress(body.email.lowercased()), expiresAt: expires))
        }
        routes.post("/v1/me/recovery-email/confirm") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await CodeBody.read(from: &request)
            let address = try await gatehouse.confirmRecoveryEmail(
                access.principal(request), code: HTTPSupport.shortString(body.code, field: "code", max: 64), clientIP: HTTPSupport.clientIP(body.clientIP)
            )
            return HTTPSupport.json(.ok, RecoveryEmailConfirmedResponse(address: address))
        }
        routes.post("/v1/me/backup-codes") { request, _ in
            try access.require(.frontend, request)
            return HTTPSupport.json(.ok, BackupCodesResponse(codes: try await gatehouse.regenerateBackupCodes(access.principal(request))))
        }
        routes.post("/v1/me/password-changed") { request, _ in
            try access.require(.frontend, request)
            try await gatehouse.passwordChanged(access.principal(request))
            return Response(status: .noContent)
        }
    }

    /// App passwords: list, create, delete, reveal.
    func addAppPasswords(_ routes: RouteCollection<BasicRequestContext>) {
        routes.get("/v1/me/app-passwords") { request, _ in
            try access.require(.frontend, request)
            return HTTPSupport.json(.ok, AppPasswordsResponse(appPasswords: try await gatehouse.appPasswords(of: access.principal(request).user)))
        }
        routes.post("/v1/me/app-passwords") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await AppPasswordBody.read(from: &request)
            let created = try await gatehouse.createAppPassword(user: access.principal(request).user, label: body.label, services: body.services)
            return HTTPSupport.json(.created, CreatedAppPasswordResponse(created: created))
        }
        routes.delete("/v1/me/app-passwords/:id") { request, context in
            let id = try Self.itemID(context)
            try access.require(.frontend, request)
            try await gatehouse.deleteAppPassword(user: access.principal(request).user, id: id)
            return Response(status: .noContent)
        }
        routes.get("/v1/me/app-passwords/:id/reveal") { request, context in
            let id = try Self.itemID(context)
            try access.require(.frontend, request)
            let password = try await gatehouse.revealAppPassword(access.principal(request), id: id)
            return HTTPSupport.json(.ok, RevealedAppPasswordResponse(id: id, password: password))
        }
    }

    /// Passkeys: registration options, registering, listing, removing.
    func addPasskeys(_ routes: RouteCollection<BasicRequestContext>) {
        routes.post("/v1/me/passkeys/options") { request, _ in
            var request = request
            try access.require(.frontend, request)
            _ = try await EmptyBody.read(from: &request, emptyAllowed: true)
            let options = try await gatehouse.startPasskeyRegistration(access.principal(request))
            return HTTPSupport.json(.ok, PasskeyOptionsResponse(webAuthnJSON: options.webAuthnJSON, expiresAt: gatehouse.now + options.timeoutSeconds))
        }
        routes.post("/v1/me/passkeys") { request, _ in
            var request = request
            try access.require(.frontend, request)
            let body = try await PasskeyRegistrationBody.read(from: &request)
            let created = try await gatehouse.finishPasskeyRegistration(
                access.principal(request), name: body.name, clientDataJSON: body.clientDataJSON, attestationObject: body.attestationObject
            )
            return HTTPSupport.json(.created, created)
        }
        routes.get("/v1/me/passkeys") { request, _ in
            try access.require(.frontend, request)
            return HTTPSupport.json(.ok, PasskeysResponse(passkeys: try await gatehouse.passkeys(of: access.principal(request).user)))
        }
        routes.delete("/v1/me/passkeys/:id") { request, context in
            guard let id = context.parameters.get("id"), id.utf8.count <= 1400 else { throw Access.noSuchEndpoint }
            try access.require(.frontend, request)
            try await gatehouse.deletePasskey(user: access.principal(request).user, id: id)
            return Response(status: .noContent)
        }
    }

    /// Remembered devices, sessions and the security log.
    func addDevicesAndSessions(_ routes: RouteCollection<BasicRequestContext>) {
        routes.get("/v1/me/devices") { request, _ in
            try access.require(.frontend, request)
            return HTTPSupport.json(.ok, DevicesResponse(devices: try await gatehouse.devices(of: access.principal(request).user)))
        }
        routes.delete("/v1/me/devices") { request, _ in
            try access.require(.frontend, request)
            try await gatehouse.forgetDevices(of: access.principal(request).user, id: nil)
            return Response(status: .noContent)
        }
        routes.delete("/v1/me/devices/:id") { request, context in
            let id = try Self.itemID(context)
            try access.require(.frontend, request)
            try await gatehouse.forgetDevices(of: access.principal(request).user, id: id)
            return Response(status: .noContent)
        }
        routes.get("/v1/me/sessions") { request, _ in
            try access.require(.frontend, request)
            let session = try access.session(request)
            return HTTPSupport.json(.ok, SessionsResponse(sessions: try await gatehouse.sessions(of: session.user), currentID: session.claims.sessionID))
        }
        routes.delete("/v1/me/sessions") { request, _ in
            try access.require(.frontend, request)
            let session = try access.session(request)
            try await gatehouse.revokeOtherSessions(of: session.user, keep: session.claims.sessionID)
            return Response(status: .noContent)
        }
        routes.delete("/v1/me/sessions/:id") { request, context in
            let id = try Self.itemID(context)
            try access.require(.frontend, request)
            try await gatehouse.revokeSession(of: access.session(request).user, id: id)
            return Response(status: .noContent)
        }
        routes.get("/v1/me/events") { request, _ in
            try access.require(.frontend, request)
            return HTTPSupport.json(.ok, EventsResponse(events: try await gatehouse.events(of: access.principal(request).user)))
        }
    }

    /// An app password's or device's id as the path has it (not percent-decoded); one longer than
    /// 64 bytes names no endpoint (404 before the API key is looked at, as documented).
    static func itemID(_ context: BasicRequestContext) throws(ServiceError) -> String {
        guard let id = context.parameters.get("id"), id.utf8.count <= 64 else { throw Access.noSuchEndpoint }
        return id
    }
}
