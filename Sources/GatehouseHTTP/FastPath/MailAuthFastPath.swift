import GatehouseCore
import GatehouseService
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// `POST /v1/mail/authenticate` answered from the channel pipeline: mail servers ask it on every
/// login (Dovecot's Lua passdb, over kept-alive connections), and through the connection's task
/// a check cost two more thread hops (to the concurrent executor and back) than its one Redis
/// round trip. Here the request is read on the event loop, the script runs with a completion
/// on the Redis client's I/O thread, and the answer goes back to the event loop to be written:
/// the Redis I/O thread is the only other thread a check wakes.
///
/// Only a well-formed request from a key with the `mail` scope is taken; anything else (no key,
/// another scope (or two `Authorization` fields: no caller), a body the responder would refuse) goes to the
/// responder as before, which answers it and its problem. The answers are the route's own
/// (``MailRoutes/authenticateAnswer(_:service:)``, ``HTTPSupport/problemParts(_:)``), counted in
/// the same response counter.
struct MailAuthFastPath: Sendable {
    let gatehouse: Gatehouse
    let counters: GatehouseResponder.ResponseCounters

    static let path = "/v1/mail/authenticate"

    /// The request's fields if this path answers it; nil: the responder does.
    func take(_ head: HTTPRequestHead, body: ByteBuffer, caller: APIKeyRegistry.Entry?) -> MailAuthenticateBody? {
        guard head.method == .POST, head.uri == Self.path, let caller, caller.scopes.contains(.mail),
              body.readableBytes <= HTTPSupport.maximumBodyBytes
        else { return nil }
        let members: [String: JSONValue]? = body.withUnsafeReadableBytes { bytes in
            try? JSONObjectReader.members(bytes, allowed: MailAuthenticateBody.members)
        }
        guard let members else { return nil }
        return try? MailAuthenticateBody(RequestFields(members: members))
    }

    /// Checks the login; `completion` gets the answer on the Redis client's I/O thread (or a
    /// task's, when a security event is recorded first).
    func answer(_ request: MailAuthenticateBody, logger: Logger, completion: @escaping @Sendable (DirectRequest.Answer) -> Void) {
        let counters = self.counters
        gatehouse.mailAuthenticate(user: request.user, password: request.password, service: request.service, clientIP: request.clientIP) { result in
            let answer: DirectRequest.Answer
            do throws(ServiceError) {
                var json = JSONWriter(capacity: 256)
                try MailRoutes.authenticateAnswer(result.get(), service: request.service).write(to: &json)
                answer = DirectRequest.Answer(status: .ok, headers: HTTPSupport.jsonHeaders, body: ByteBuffer(bytes: json.bytes))
            } catch {
                if error.code == .unavailable {
                    logger.warning("request failed: state store unavailable", metadata: ["path": "\(Self.path)"])
                }
                let problem = HTTPSupport.problemParts(error)
                answer = DirectRequest.Answer(status: problem.status, headers: problem.headers, body: ByteBuffer(bytes: problem.body))
            }
            counters.increment(status: answer.status.code)
            completion(answer)
        }
    }
}
