import GatehouseService
import Hummingbird

/// Sign-in and account recovery (frontend scope): `POST /v1/login/start`, `/handoff`, `/email-code`,
/// `/finish`, `POST /v1/recovery/start`, `/finish`, `/consume`. A well-formed `login/finish` with
/// a code is usually answered on the event loop (``LoopRoutes``), with the same answers; this
/// route answers the rest (a passkey assertion, a body it refuses).
struct LoginRoutes {
    let access: Access
    var gatehouse: Gatehouse { access.gatehouse }

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.post("/v1/login/start") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await LoginStartBody.read(from: &request)
                let result = try await gatehouse.startLogin(
                    user: body.user, clientIP: body.clientIP, userAgent: body.userAgent, rememberToken: body.rememberToken
                )
                return HTTPSupport.json(.ok, LoginResponse(result: result), capacity: 512)
            }
            routes.post("/v1/login/finish") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await LoginFinishBody.read(from: &request)
                let result = if let assertion = body.assertion {
                    try await gatehouse.finishPasskeyLogin(
                        challenge: body.challenge, assertion: assertion, remember: body.remember, clientIP: body.clientIP, userAgent: body.userAgent
                    )
                } else {
                    try await gatehouse.finishLogin(
                        challenge: body.challenge, method: body.method, code: body.code, remember: body.remember,
                        clientIP: body.clientIP, userAgent: body.userAgent
                    )
                }
                return HTTPSupport.json(.ok, LoginResponse(result: result), capacity: 512)
            }
            routes.post("/v1/login/handoff") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await HandoffBody.read(from: &request)
                let made = try await gatehouse.createHandoff(body.handoff)
                let base = gatehouse.configuration.web.publicURL ?? ""
                return HTTPSupport.json(.created, HandoffResponse(url: base + "/account/continue?ticket=" + made.ticket, expiresAt: made.expiresAt))
            }
            routes.post("/v1/login/passkey-options") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await PasskeyOptionsBody.read(from: &request)
                let options = try await gatehouse.startPasskeyLogin(challenge: body.challenge)
                return HTTPSupport.json(.ok, PasskeyOptionsResponse(webAuthnJSON: options.webAuthnJSON, expiresAt: gatehouse.now + options.timeoutSeconds))
            }
            routes.post("/v1/login/email-code") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await EmailCodeBody.read(from: &request)
                let sent = try await gatehouse.sendLoginCode(challenge: body.challenge)
                return HTTPSupport.json(.accepted, CodeSentResponse(sentTo: sent.sentTo, expiresAt: sent.expiresAt))
            }
            routes.post("/v1/recovery/start") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await RecoveryStartBody.read(from: &request)
                gatehouse.startRecovery(user: body.user)
                return Response(status: .accepted)
            }
            routes.post("/v1/recovery/finish") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await RecoveryFinishBody.read(from: &request)
                let reset = try await gatehouse.finishRecovery(user: body.user, code: body.code, clientIP: body.clientIP)
                return HTTPSupport.json(.ok, ResetTokenResponse(token: reset.token, expiresAt: reset.expiresAt))
            }
            routes.post("/v1/recovery/consume") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await ResetTokenBody.read(from: &request)
                return HTTPSupport.json(.ok, UserResponse(user: try await gatehouse.consumeReset(body.resetToken)))
            }
        }
    }
}
