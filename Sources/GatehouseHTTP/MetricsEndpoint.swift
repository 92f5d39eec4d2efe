import Hummingbird
import Metrics
import Prometheus

/// The Prometheus registry behind swift-metrics, and `GET /metrics`.
public final class MetricsEndpoint: Sendable {
    let registry: PrometheusCollectorRegistry

    /// The process's registry: swift-metrics can be bootstrapped once per process, so every node
    /// built in one process (a served node, or the nodes of an in-process test) reports here.
    public static let shared = MetricsEndpoint()

    /// Creates the registry and bootstraps swift-metrics with it (``shared`` does this once).
    private init() {
        registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    func response() -> Response {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
    }
}
