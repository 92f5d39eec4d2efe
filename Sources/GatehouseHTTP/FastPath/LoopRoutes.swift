import GatehouseCore
import GatehouseService
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// The two POST routes answered from the channel pipeline, without the connection's task:
///
/// - `POST /v1/login/finish`, the sign-in every user makes (`benchmarks/e2e.sh` measures it);
/// - `POST /v1/mail/authenticate`, which mail servers ask on every login (Dovecot's Lua passdb,
///   over kept-alive connections).
///
/// Through the connection's task a request also pays for the conversion to HTTPTypes, a
/// Hummingbird `Request` and `Response`, the router, the async body and the collected answer.
/// Here the body is read on the event loop, the service runs its Redis script with a completion
/// (sent and answered on this loop's own Redis connection, or the pool's I/O thread while that
/// connection is not up: docs/redis-client.md), and the answer is written on the event loop.
///
/// Only a well-formed request from a key with the route's scope is taken; anything else (no key,
/// another scope (or two `Authorization` fields: no caller), a body the route would refuse, a
/// passkey assertion) goes to the responder as before, which answers it and its problem. The
/// answers are the routes' own (``LoginResponse``, ``MailRoutes/authenticateAnswer(_:service:)``,
/// ``HTTPSupport/problemParts(_:)``), counted in the same response counter.
struct LoopRoutes: Sendable {
    let gatehouse: Gatehouse
    let counters: GatehouseResponder.ResponseCounters

    /// Whether `uri` is one of these routes' paths (the caller's key is looked up only then).
    static func serves(_ uri: String) -> Bool {
        uri == "/v1/login/finish" || uri == "/v1/mail/authenticate"
    }

    /// Answers the request when one of these routes takes it: `completion` gets the answer on
    /// this event loop, the Redis client's I/O thread or a task's thread. False: the responder
    /// answers it.
    func answer(
        _ head: HTTPRequestHead, body: ByteBuffer, caller: APIKeyRegistry.Entry?, logger: Logger,
        completion: @escaping @Sendable (DirectRequest.Answer) -> Void
    ) -> Bool {
        guard head.method == .POST, let caller else { return false }
        let counters = self.counters
        switch head.uri {
        case "/v1/login/finish":
            guard caller.scopes.contains(.frontend), let request = Self.read(LoginFinishBody.self, body), request.assertion == nil else { return false }
            gatehouse.finishLogin(
                challenge: request.challenge, method: request.method, code: request.code, remember: request.remember,
                clientIP: request.clientIP, userAgent: request.userAgent
            ) { result in
                completion(Self.answer(result.map { LoginResponse(result: $0) }, capacity: 512, path: "/v1/login/finish", logger: logger, counters: counters))
            }
        case "/v1/mail/authenticate":
            guard caller.scopes.contains(.mail), let request = Self.read(MailAuthenticateBody.self, body) else { return false }
            gatehouse.mailAuthenticate(user: request.user, password: request.password, service: request.service, clientIP: request.clientIP) { result in
                let answer = result.flatMap { result in
                    Result { () throws(ServiceError) in try MailRoutes.authenticateAnswer(result, service: request.service) }
                }
                completion(Self.answer(answer, capacity: 256, path: "/v1/mail/authenticate", logger: logger, counters: counters))
            }
        default:
            return false
        }
        return true
    }

    /// The body's fields, or nil for any body the route refuses (the responder then answers it).
    private static func read<Body: StrictRequestBody>(_ type: Body.Type, _ body: ByteBuffer) -> Body? {
        guard body.readableBytes <= HTTPSupport.maximumBodyBytes else { return nil }
        let members: [String: JSONValue]? = body.withUnsafeReadableBytes { bytes in
            try? JSONObjectReader.members(bytes, allowed: Body.members)
        }
        guard let members else { return nil }
        return try? Body(RequestFields(members: members))
    }

    /// The JSON answer, or the problem (as ``GatehouseResponder/respond(to:context:)`` answers and logs it).
    private static func answer(
        _ result: Result<some JSONResponseBody, ServiceError>, capacity: Int, path: String, logger: Logger,
        counters: GatehouseResponder.ResponseCounters
    ) -> DirectRequest.Answer {
        let answer: DirectRequest.Answer
        switch result {
        case .success(let body):
            var json = JSONWriter(capacity: capacity)
            body.write(to: &json)
            answer = DirectRequest.Answer(status: .ok, headers: HTTPSupport.jsonHeaders, body: ByteBuffer(bytes: json.bytes))
        case .failure(let error):
            if error.code == .unavailable {
                logger.warning("request failed: state store unavailable", metadata: ["path": "\(path)"])
            }
            let problem = HTTPSupport.problemParts(error)
            answer = DirectRequest.Answer(status: problem.status, headers: problem.headers, body: ByteBuffer(bytes: problem.body))
        }
        counters.increment(status: answer.status.code)
        return answer
    }
}
