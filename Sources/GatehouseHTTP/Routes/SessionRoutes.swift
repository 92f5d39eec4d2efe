import GatehouseService
import Hummingbird

/// Sessions: `POST /v1/sessions/verify` (verify scope), `/refresh`, `/revoke` (frontend scope).
struct SessionRoutes {
    let access: Access
    var gatehouse: Gatehouse { access.gatehouse }

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.post("/v1/sessions/verify") { request, _ in
                var request = request
                try access.require(.verify, request)
                let body = try await TokenBody.read(from: &request)
                return HTTPSupport.json(.ok, VerifiedSessionResponse(claims: try gatehouse.verifySession(body.token)))
            }
            routes.post("/v1/sessions/refresh") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await TokenBody.read(from: &request)
                return HTTPSupport.json(.ok, RefreshedSessionResponse(session: try await gatehouse.refreshSession(body.token)))
            }
            routes.post("/v1/sessions/revoke") { request, _ in
                var request = request
                try access.require(.frontend, request)
                let body = try await TokenBody.read(from: &request)
                try await gatehouse.revokeSession(HTTPSupport.shortString(body.token, field: "token"))
                return Response(status: .noContent)
            }
        }
    }
}
