import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// A request collected by ``FastPathHandler`` (head and bounded body), answered by the
/// responder off the event loop; its answer, body collected, goes back to the loop.
struct DirectRequest: Sendable {
    let head: HTTPRequest
    let body: ByteBuffer

    init(_ head: HTTPRequestHead, body: ByteBuffer) {
        // The conversion leaves the first Host field out: it is the request's authority.
        let fields = HTTPFields(head.headers, splitCookie: false)
        let authority = head.headers.first(name: "host")
        self.head = HTTPRequest(method: HTTPRequest.Method(head.method.rawValue) ?? .get, scheme: "http", authority: authority, path: head.uri, headerFields: fields)
        self.body = body
    }

    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer
    }

    /// The responder's answer. The responder answers its own errors; anything else, and a body
    /// that fails to write, is a 500, as in Hummingbird.
    func answer(with responder: GatehouseResponder, source: ApplicationRequestContextSource) async -> Answer {
        let response: Response
        do {
            response = try await responder.respond(to: Request(head: head, body: RequestBody(buffer: body)), context: BasicRequestContext(source: source))
        } catch {
            response = Response(status: .internalServerError)
        }
        var collector = BodyCollector()
        do { try await response.body.write(collector.writer) } catch { collector.failed = true }
        if collector.failed { return Answer(status: .internalServerError, headers: HTTPFields(), body: ByteBuffer()) }
        return Answer(status: response.status, headers: response.headers, body: collector.buffer.value)
    }
}

/// Collects a response body written through Hummingbird's `ResponseBodyWriter`.
private struct BodyCollector {
    final class Box: @unchecked Sendable {
        // Written only by the task that runs the body's writer, read after it.
        var value = ByteBuffer()
    }
    let buffer = Box()
    var failed = false

    var writer: Writer { Writer(box: buffer) }

    struct Writer: ResponseBodyWriter {
        let box: Box
        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            box.value.writeBuffer(&buffer)
        }
        mutating func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
            for var buffer in buffers { box.value.writeBuffer(&buffer) }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
