import GatehouseService
import Hummingbird

/// The mail servers' check (mail scope): `POST /v1/mail/authenticate`.
struct MailRoutes {
    let access: Access
    var gatehouse: Gatehouse { access.gatehouse }

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.post("/v1/mail/authenticate") { request, _ in
                var request = request
                try access.require(.mail, request)
                let body = try await MailAuthenticateBody.read(from: &request)
                let result = try await gatehouse.mailAuthenticate(user: body.user, password: body.password, service: body.service, clientIP: body.clientIP)
                switch result {
                case .ok(let id): return HTTPSupport.json(.ok, MailAuthenticateResponse(appPasswordID: id))
                case .usePrimary: return HTTPSupport.json(.ok, MailAuthenticateResponse(appPasswordID: nil))
                case .denied: throw ServiceError(.denied, "the password is not an app password of this user for \(body.service.rawValue)")
                }
            }
        }
    }
}
