import Foundation
import GatehouseService
import Hummingbird
import NIOCore

/// Administration (admin scope): domain policies, users, the import.
struct AdminRoutes {
    let access: Access
    var gatehouse: Gatehouse { access.gatehouse }

    /// The largest import accepted.
    static let maximumImportBytes = 8 << 20

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.get("/v1/domains/:domain/policy") { request, context in
                try access.require(.admin, request)
                let domain = try Self.domain(context)
                return HTTPSupport.json(.ok, PolicyResponse(domain: domain, policy: gatehouse.policy(of: domain)))
            }
            routes.put("/v1/domains/:domain/policy") { request, context in
                var request = request
                try access.require(.admin, request)
                let domain = try Self.domain(context)
                let body = try await PolicyBody.read(from: &request)
                let policy = body.applied(to: gatehouse.policy(of: domain))
                try await gatehouse.setPolicy(policy, for: domain)
                return HTTPSupport.json(.ok, PolicyResponse(domain: domain, policy: policy))
            }
            routes.post("/v1/users/import") { request, _ in
                var request = request
                try access.require(.admin, request)
                let buffer: ByteBuffer
                do { buffer = try await request.collectBody(upTo: Self.maximumImportBytes) } catch { throw HTTPSupport.invalid("the import is larger than 8 MiB") }
                guard let text = String(validating: Array(buffer.readableBytesView), as: UTF8.self) else {
                    throw HTTPSupport.invalid("the import must be UTF-8 NDJSON")
                }
                return HTTPSupport.json(.ok, ImportResponse(results: await gatehouse.importUsers(ndjson: text)))
            }
            routes.get("/v1/users/:user") { request, context in
                let user = try self.user(request, context)
                return HTTPSupport.json(.ok, MeResponse(try await gatehouse.adminStatus(of: user)))
            }
            routes.delete("/v1/users/:user/two-step") { request, context in
                try await gatehouse.adminReset(user(request, context))
                return Response(status: .noContent)
            }
            routes.post("/v1/users/:user/unlock") { request, context in
                try await gatehouse.unlock(user(request, context))
                return Response(status: .noContent)
            }
            routes.get("/v1/users/:user/events") { request, context in
                let user = try self.user(request, context)
                return HTTPSupport.json(.ok, EventsResponse(events: try await gatehouse.events(of: user)))
            }
            routes.post("/v1/users/:user/sessions/revoke-all") { request, context in
                try await gatehouse.revokeAllSessions(of: user(request, context))
                return Response(status: .noContent)
            }
        }
    }

    /// The path's domain, percent-decoded.
    static func domain(_ context: BasicRequestContext) throws(ServiceError) -> DomainName {
        guard let domain = DomainName(context.parameters.get("domain")?.removingPercentEncoding ?? "") else { throw HTTPSupport.invalid("not a domain name") }
        return domain
    }

    /// After the admin key is checked: the path's user, percent-decoded.
    func user(_ request: Request, _ context: BasicRequestContext) throws(ServiceError) -> UserID {
        try access.require(.admin, request)
        return try HTTPSupport.user(context.parameters.get("user")?.removingPercentEncoding ?? "")
    }
}
