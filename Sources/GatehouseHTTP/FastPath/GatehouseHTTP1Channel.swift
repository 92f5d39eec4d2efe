import GatehouseService
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdCore
import Logging
package import NIOCore
package import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1 child channel with ``RawAuthReader`` ahead of the HTTP/1 decoder and
/// ``FastPathHandler`` placed between the decoder and the conversion to HTTPTypes (Hummingbird's `additionalChannelHandlers` go after
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
    /// How long a connection may take at each stage (`GATEHOUSE_HTTP_*_TIMEOUT_SECONDS`,
    /// `GATEHOUSE_SHUTDOWN_TIMEOUT_SECONDS`).
    let timeouts: FastPathStateMachine.Timeouts
    /// The node's open connections, and how many it serves at once.
    let connections: ConnectionLimit

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try HTTP1DecoderLimits.addServerCodec(to: channel.pipeline.syncOperations)
            let (directRequests, continuation) = AsyncStream.makeStream(of: DirectRequest.self)
            let fastPath = FastPathHandler(responder: gatehouse, timeouts: timeouts, directRequests: continuation, logger: logger)
            let rawWriter = RawResponseWriter()
            try channel.pipeline.syncOperations.addHandler(rawWriter, position: .first)
            try channel.pipeline.syncOperations.addHandler(fastPath)
            try channel.pipeline.syncOperations.addHandler(RawAuthReader(fastPath: fastPath), position: .after(rawWriter))
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            // No idle timeout here: this handler sees only Hummingbird's requests (the fast path's is used).
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            let context = try channel.pipeline.syncOperations.context(handler: fastPath)
            // Over the limit the connection is set up as usual and then closed at once (a failed
            // set-up would be an error of the listening channel); its handling ends with it.
            if !connections.open(channel) {
                connections.refused(logger: logger)
                channel.close(promise: nil)
            }
            return Value(asyncChannel: asyncChannel, directRequests: directRequests, fastPath: NIOLoopBound((fastPath, context), eventLoop: channel.eventLoop))
        }
    }

    /// The connection's one task: Hummingbird's request loop for what is passed on to it, and
    /// beside it the direct requests the fast path collects, answered one at a time (the fast
    /// path sends the next only after this one's answer). Both end when the channel closes, so
    /// a graceful shutdown waits for a direct answer in flight without any bookkeeping.
    ///
    /// The task runs on the connection's event loop (``EventLoopTaskExecutor``): a request's
    /// work starts on the thread that read it, and its answer is written from there, so a code
    /// check crosses threads only to the Redis I/O thread and back.
    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await handleOnEventLoop(value: value, logger: logger)
        }
    }

    private func handleOnEventLoop(value: Value, logger: Logger) async {
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

/// Runs tasks' jobs on a NIO event loop (NIO's own event loops are serial executors for actors,
/// not task executors).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
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

    /// The HTTP/1 response encoder and request decoder (with these limits) at the end of
    /// `pipeline`: those of `configureHTTPServerPipeline` without its pairing, in which the
    /// decoder records every request's method in the encoder and the encoder forgets one only when
    /// it encodes a response head — the requests the fast path answers (their answers skip the
    /// encoder) would pile up there for as long as the connection lives. The fast path tells HEAD
    /// responses apart itself (``FastPathStateMachine/forwardedResponseHead()``).
    package static func addServerCodec(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(HTTPResponseEncoder(configuration: .init()))
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: configuration)))
    }
}

/// The first handler of the pipeline (nearest the socket): passes the encoded bytes of every
/// response through, and gives ``FastPathHandler`` a place to write its own serialised
/// answers that skips the HTTP/1 encoder.
final class RawResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
}

extension HTTPServerBuilder {
    /// HTTP/1 with the channel fast paths of ``FastPathHandler`` in front of `gatehouse`, with
    /// the configuration's timeouts (0: none) and connection limit.
    static func gatehouse(_ gatehouse: GatehouseResponder, configuration: GatehouseConfiguration) -> HTTPServerBuilder {
        func seconds(_ value: Int) -> TimeAmount? { value > 0 ? .seconds(Int64(value)) : nil }
        let timeouts = FastPathStateMachine.Timeouts(
            idle: seconds(configuration.httpIdleTimeoutSeconds),
            head: seconds(configuration.httpHeadTimeoutSeconds),
            body: seconds(configuration.httpBodyTimeoutSeconds),
            shutdown: seconds(configuration.shutdownTimeoutSeconds)
        )
        let connections = ConnectionLimit(maximum: ConnectionLimit.effective(configuration.httpMaxConnections))
        return .init { responder in
            GatehouseHTTP1Channel(responder: responder, gatehouse: gatehouse, timeouts: timeouts, connections: connections)
        }
    }
}

/// The node's open HTTP connections, counted as they open and close, and the most it serves at
/// once (`GATEHOUSE_HTTP_MAX_CONNECTIONS`): a connection beyond it is closed as soon as it is
/// accepted, so a flood of idle sockets cannot use up the node's file descriptors (which its
/// Redis connections need too).
final class ConnectionLimit: Sendable {
    let maximum: Int
    private let count = Atomic<Int>(0)
    private let refusedSinceLog = Atomic<Int>(0)
    /// When a refusal was last logged (uptime nanoseconds): at most one line per 10 s.
    private let lastLog = Atomic<UInt64>(0)

    /// - Parameter maximum: 0 for no limit.
    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Counts `channel` until it closes; false when that is one too many (close it).
    func open(_ channel: any Channel) -> Bool {
        let open = count.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.count.subtract(1, ordering: .relaxed) }
        return maximum == 0 || open <= maximum
    }

    /// The limit a node uses: the configured one, but no more than the process's file descriptor
    /// limit leaves room for (256 are kept for Redis, the embedded server, logs and files).
    static func effective(_ configured: Int) -> Int {
        var limit = rlimit()
        guard configured > 0, getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(Int32.max) else { return configured }
        return max(1, min(configured, Int(limit.rlim_cur) - 256))
    }

    /// How many are open now.
    var current: Int { count.load(ordering: .relaxed) }

    /// Notes a refused connection, and logs how many at most every 10 s.
    func refused(logger: Logger) {
        refusedSinceLog.add(1, ordering: .relaxed)
        let now = NIODeadline.now().uptimeNanoseconds
        let last = lastLog.load(ordering: .relaxed)
        guard now &- last >= 10_000_000_000 || last == 0,
              lastLog.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
        else { return }
        let refused = refusedSinceLog.exchange(0, ordering: .relaxed)
        logger.warning("connections refused: the node serves at most GATEHOUSE_HTTP_MAX_CONNECTIONS at once", metadata: [
            "limit": "\(maximum)", "refused": "\(refused)",
        ])
    }
}
