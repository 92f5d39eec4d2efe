import GatehouseCore
import GatehouseService
import Hummingbird
import NIOCore

/// Operations endpoints, no API key: `GET /healthz`, `/readyz`, `/metrics`,
/// `/.well-known/jwks.json`.
struct OpsRoutes {
    let gatehouse: Gatehouse
    let metrics: MetricsEndpoint

    var collection: RouteCollection<BasicRequestContext> {
        .area { routes in
            routes.get("/healthz") { _, _ in
                HTTPSupport.json(.ok, StatusResponse(status: "ok"))
            }
            routes.get("/readyz") { _, _ in
                if let reason = await gatehouse.notReadyReason() {
                    return HTTPSupport.json(.serviceUnavailable, StatusResponse(status: "not_ready", reason: reason))
                }
                return HTTPSupport.json(.ok, StatusResponse(status: "ready"))
            }
            routes.get("/metrics") { _, _ in
                metrics.response()
            }
            routes.get("/.well-known/jwks.json") { _, _ in
                let jwks = gatehouse.tokens.keys.keyring.jwks
                return Response(status: .ok, headers: [.contentType: "application/jwk-set+json"], body: ResponseBody(byteBuffer: ByteBuffer(string: jwks)))
            }
        }
    }
}
