import GatehouseService
import HTTPTypes
import Hummingbird

/// The mail servers' checks (mail scope): `POST /v1/mail/authenticate` (JSON, for a mail server
/// that asks itself, such as Dovecot's Lua passdb) and `GET /v1/mail/auth-http` (nginx's mail
/// proxy protocol, ``MailProxyRequest``).
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
                return HTTPSupport.json(.ok, try Self.authenticateAnswer(result, service: body.service))
            }
            routes.get("/v1/mail/auth-http") { request, _ in
                await proxyLogin(request)
            }
        }
    }

    /// The answer to `POST /v1/mail/authenticate` (also written by the channel fast path,
    /// ``LoopRoutes``): 200 with `ok` or `use_primary`, or the `denied` problem.
    static func authenticateAnswer(_ result: MailAuthResult, service: MailService) throws(ServiceError) -> MailAuthenticateResponse {
        switch result {
        case .ok(let id): return MailAuthenticateResponse(appPasswordID: id)
        case .usePrimary: return MailAuthenticateResponse(appPasswordID: nil)
        case .denied: throw ServiceError(.denied, "the password is not an app password of this user for \(service.rawValue)")
        }
    }

    /// One login through nginx's mail proxy. Every answer carries `Auth-Status`; a missing key
    /// or a malformed request also gets its problem body and status (nginx reads only headers,
    /// so its client sees a failure either way).
    func proxyLogin(_ request: Request) async -> Response {
        do {
            try access.require(.mail, request)
        } catch {
            return Self.respond(.refused(.temporaryFailure, service: nil, wait: nil, attempt: 1), problem: error)
        }
        let login: MailProxyRequest
        do {
            login = try MailProxyRequest(request.headers)
        } catch {
            return Self.respond(.refused(.malformed, service: nil, wait: nil, attempt: 1), problem: ServiceError(.invalidRequest, error.detail))
        }
        func refuse(_ refusal: MailProxyAnswer.Refusal, wait: Int?) -> Response {
            Self.respond(.refused(refusal, service: login.service, wait: wait, attempt: login.attempt))
        }
        switch login.method {
        case .plain: break
        case .apop, .cramMD5, .external: return refuse(.unsupportedMethod, wait: 1)
        case .none: return refuse(.authenticationRequired, wait: nil)
        }
        let backend = gatehouse.configuration.mailBackend
        guard let server = backend.server(for: login.service) else { return refuse(.serviceNotOffered(login.service), wait: nil) }
        guard let user = UserID(login.login) else { return refuse(.notAnAddress, wait: 2) }
        do {
            switch try await gatehouse.mailAuthenticate(user: user, password: login.password, service: login.service, clientIP: login.clientIP) {
            case .ok:
                // SMTP has no backend login (nginx passes the user on with XCLIENT).
                var backendLogin: (String, String)?
                if login.service != .smtp, let master = backend.masterUser, let password = backend.masterPassword {
                    backendLogin = (user.value + backend.masterSeparator + master, password)
                }
                return Self.respond(.accepted(server: server, backendLogin: backendLogin))
            case .usePrimary:
                return Self.respond(.accepted(server: server, backendLogin: nil))
            case .denied(let refusal):
                let reason: MailProxyAnswer.Refusal = refusal.reason == .otherService ? .otherService(login.service) : .notAnAppPassword
                return refuse(reason, wait: refusal.waitSeconds)
            }
        } catch where error.code == .rateLimited {
            let seconds = error.retryAfterSeconds ?? 60
            return refuse(.throttled(seconds: seconds), wait: min(seconds, 30))
        } catch {
            return refuse(.temporaryFailure, wait: 5)
        }
    }

    private static func respond(_ answer: MailProxyAnswer, problem: ServiceError? = nil) -> Response {
        var response = problem.map(HTTPSupport.problem) ?? Response(status: .ok, headers: [.cacheControl: "no-store"])
        for field in answer.fields { response.headers.append(HTTPField(name: field.name, value: field.value)) }
        return response
    }
}
