import GatehouseService
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
package import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1 child channel with ``FastPathHandler`` placed between the HTTP/1
/// decoder and the conversion to HTTPTypes (Hummingbird's `additionalChannelHandlers` go after
/// that conversion, which was a third of the `/v1/auth` fast path's cost). Everything else is as in
/// `HTTP1Channel`: the same decoder limits, the connection state handler, and `handleHTTP`; the
/// idle timeout is the fast path's (``FastPathStateMachine``), since the state handler sees only
/// the requests passed on to Hummingbird.
struct GatehouseHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    /// The async channel Hummingbird reads, the direct requests the fast path collects, and the
    /// fast path (with its context) to hand their answers back to.
    struct Value: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let directRequests: AsyncStream<DirectRequest>
        let fastPath: NIOLoopBound<(handler: FastPathHandler, context: ChannelHandlerContext)>
        var channel: any Channel { asyncChannel.channel }
    }

    let responder: HTTPChannelHandler.Responder
    let gatehouse: GatehouseResponder
    /// How long a keep-alive connection may go without a request (`GATEHOUSE_HTTP_IDLE_TIMEOUT_SECONDS`).
    let idleTimeout: TimeAmount?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: HTTP1DecoderLimits.configuration
            )
            let (directRequests, continuation) = AsyncStream.makeStream(of: DirectRequest.self)
            let fastPath = FastPathHandler(responder: gatehouse, idleTimeout: idleTimeout, directRequests: continuation, logger: logger)
            try channel.pipeline.syncOperations.addHandler(RawResponseWriter(), position: .first)
            try channel.pipeline.syncOperations.addHandler(fastPath)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            // No idle timeout here: this handler sees only Hummingbird's requests (the fast path's is used).
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            let context = try channel.pipeline.syncOperations.context(handler: fastPath)
            return Value(asyncChannel: asyncChannel, directRequests: directRequests, fastPath: NIOLoopBound((fastPath, context), eventLoop: channel.eventLoop))
        }
    }

    /// The connection's one task: Hummingbird's request loop for what is passed on to it, and
    /// beside it the direct requests the fast path collects, answered one at a time (the fast
    /// path sends the next only after this one's answer). Both end when the channel closes, so
    /// a graceful shutdown waits for a direct answer in flight without any bookkeeping.
    func handle(value: Value, logger: Logger) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await handleHTTP(asyncChannel: value.asyncChannel, logger: logger) }
            let source = ApplicationRequestContextSource(channel: value.channel, logger: logger)
            let fastPath = value.fastPath
            for await request in value.directRequests {
                let answer = await request.answer(with: gatehouse, source: source)
                fastPath.eventLoop.execute {
                    fastPath.value.handler.answered(answer, context: fastPath.value.context)
                }
            }
        }
    }
}

/// The HTTP/1 decoder's limits on every connection: Hummingbird's
/// (`HTTP1Channel.Configuration.DecoderConfiguration`'s defaults), passed explicitly: NIO's own
/// default allows 65,534 header fields. A head beyond them is refused with `400` and the
/// connection is closed (docs/api.md, Defaults and limits). The fuzzer decodes with the same.
package enum HTTP1DecoderLimits {
    package static let configuration: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 80 * 1024
        limits.maxHeaderListSize = 80 * 1024
        limits.maxHeaderFieldCount = 1000
        return limits
    }()
}

/// The first handler of the pipeline (nearest the socket): passes the encoded bytes of every
/// response through, and gives ``FastPathHandler`` a place to write its own serialised
/// answers that skips the HTTP/1 encoder.
final class RawResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
}

extension HTTPServerBuilder {
    /// HTTP/1 with the channel fast paths of ``FastPathHandler`` in front of `gatehouse`.
    /// `idleTimeoutSeconds` 0: keep-alive connections are never closed for idleness.
    static func gatehouse(_ gatehouse: GatehouseResponder, idleTimeoutSeconds seconds: Int) -> HTTPServerBuilder {
        let idleTimeout = seconds > 0 ? TimeAmount.seconds(Int64(seconds)) : nil
        return .init { responder in GatehouseHTTP1Channel(responder: responder, gatehouse: gatehouse, idleTimeout: idleTimeout) }
    }
}
