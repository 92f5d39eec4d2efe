public import GatehouseService
public import Hummingbird
public import HummingbirdCore

/// What the application layer takes from the HTTP edge: the responder, and the HTTP/1 server
/// that puts the channel fast path (``FastPathHandler``) in front of it.
public struct HTTPEdge: Sendable {
    /// Answers every request the fast path does not answer itself.
    public let responder: GatehouseResponder
    /// Hummingbird's HTTP/1 server with the fast path in its channel pipeline.
    public let server: HTTPServerBuilder

    /// The edge of one node: API keys are hashed here and the plain secrets are not kept.
    /// - Parameter pages: routes served beside the API (the web pages), through the same router.
    public init(gatehouse: Gatehouse, apiKeys: [APIKeyConfiguration], metrics: MetricsEndpoint = .shared, pages: RouteCollection<BasicRequestContext>? = nil) {
        let responder = GatehouseResponder(gatehouse: gatehouse, apiKeys: APIKeyRegistry(apiKeys), metrics: metrics, pages: pages)
        self.responder = responder
        self.server = .gatehouse(responder, configuration: gatehouse.configuration)
    }
}
