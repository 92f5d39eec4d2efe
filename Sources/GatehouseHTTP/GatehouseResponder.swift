import HTTPTypes
public import GatehouseService
public import Hummingbird
import Logging
import Metrics
import Synchronization

/// The HTTP API: `GET /v1/auth` answered first, every other request through Hummingbird's
/// ``Router`` (the areas in `Routes/`). Problems are produced only here, at the HTTP edge: a
/// route throws ``ServiceError`` and this answers it with ``HTTPSupport/problem(_:)``.
public struct GatehouseResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let authCheck: AuthCheck
    let responseCounters = ResponseCounters()
    let router: RouterResponder<Context>

    /// Creates the responder.
    public init(gatehouse: Gatehouse, apiKeys: APIKeyRegistry, metrics: MetricsEndpoint, pages: RouteCollection<Context>? = nil) {
        self.authCheck = AuthCheck(gatehouse: gatehouse, apiKeys: apiKeys)
        self.router = Self.router(access: Access(gatehouse: gatehouse, authCheck: authCheck), metrics: metrics, pages: pages)
    }

    /// Every route but `GET /v1/auth`.
    static func router(access: Access, metrics: MetricsEndpoint, pages: RouteCollection<Context>?) -> RouterResponder<Context> {
        let router = Router(context: Context.self)
        router.addRoutes(OpsRoutes(gatehouse: access.gatehouse, metrics: metrics).collection)
        router.addRoutes(SessionRoutes(access: access).collection)
        router.addRoutes(LoginRoutes(access: access).collection)
        router.addRoutes(SelfServiceRoutes(access: access).collection)
        router.addRoutes(MailRoutes(access: access).collection)
        router.addRoutes(AdminRoutes(access: access).collection)
        if let pages { router.addRoutes(pages) }
        // Added after the routes, so it wraps only the router's not-found responder (a route's
        // responder takes the middlewares added before it): an unknown path, or a known path
        // with a method it does not serve, is the API's 404 problem, not Hummingbird's empty 404.
        router.add(middleware: NoSuchEndpoint())
        return router.buildResponder()
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        // The hot path first: no body, no allocation beyond the token's claim strings.
        if path == "/v1/auth", request.method == .get {
            return auth(request)
        }
        let response: Response
        do {
            // The router skips empty segments ("/v1//me/", "/v1/me/"); the API never did.
            guard !Self.hasEmptySegment(path) else { throw Access.noSuchEndpoint }
            response = try await router.respond(to: request, context: context)
        } catch let error as ServiceError {
            if error.code == .unavailable {
                context.logger.warning("request failed: state store unavailable", metadata: ["path": "\(Self.loggable(path))"])
            }
            response = HTTPSupport.problem(error)
        }
        responseCounters.increment(status: response.status.code)
        return response
    }

    /// Whether `path` has an empty segment: `//` anywhere, or a `/` at the end of a longer path.
    static func hasEmptySegment(_ path: String) -> Bool {
        var previousSlash = false
        for byte in path.utf8 {
            let slash = byte == UInt8(ascii: "/")
            if slash, previousSlash { return true }
            previousSlash = slash
        }
        return previousSlash && path.utf8.count > 1
    }

    /// `gatehouse_http_responses_total{status}`: one counter per status, made on first use and
    /// kept (making a counter goes through the metrics factory's registry lookup every time).
    final class ResponseCounters: Sendable {
        private let counters = Mutex<[Int: Counter]>([:])

        func increment(status: Int) {
            let counter = counters.withLock { counters in
                if let counter = counters[status] { return counter }
                let counter = Counter(label: "gatehouse_http_responses_total", dimensions: [("status", String(status))])
                counters[status] = counter
                return counter
            }
            counter.increment()
        }
    }

    /// Paths are logged without anything after a user segment's domain (no secrets are ever in
    /// paths, but keep lines short and uniform).
    static func loggable(_ path: String) -> String { String(path.prefix(120)) }

    // MARK: /v1/auth

    /// The same answer as the channel fast path (``FastPathHandler``) gives; requests reach
    /// here only when the connection has another request in flight through Hummingbird.
    func auth(_ request: Request) -> Response {
        let answer = authCheck.decide(request.headers)
        return Response(status: answer.status, headers: answer.headerFields)
    }
}

/// The router's answer for a path or method it has no route for (see
/// ``GatehouseResponder/router(access:metrics:)``).
struct NoSuchEndpoint: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        throw Access.noSuchEndpoint
    }
}
