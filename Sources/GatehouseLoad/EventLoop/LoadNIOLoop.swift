import Glibc
import NIOCore
import NIOPosix
import GatehouseSystem

/// The timed run of `gatehouse load` on SwiftNIO: the calling thread becomes a NIO event loop
/// (`MultiThreadedEventLoopGroup.withCurrentThreadAsEventLoop`) that owns the worker, its slots
/// and their channels until the run ends, as one thread owns them in ``LoadEventLoop``.
///
/// The same run as the epoll loop: each of the `slots` runs operations back to back
/// (``LoadWorker/begin(_:)`` and the ``LoadStep``s it returns) on its own keep-alive connection
/// per URL, one request in flight per connection, until the deadline; an operation started
/// before the deadline runs to its end. Answers are framed on bytes by ``LoadResponseParser``
/// (a channel handler passes the bytes on; NIO's HTTP/1 client codec measured costlier). With a
/// rate cap a slot waits for its turn (``LoadShared/slot(interval:)``) on a scheduled task. Every
/// request is bounded by a 10 s timeout, the run by the deadline plus that timeout and 5 s.
///
/// Every member is touched on the event loop only: that is what makes it `Sendable` (NIO's
/// callbacks are `@Sendable` closures).
final class LoadNIOLoop: @unchecked Sendable {
    /// One connection of a slot to one URL.
    struct Connection {
        /// The channel's handler, from the connect on (its context writes the requests).
        fileprivate var handler: LoadNIOHandler?
        var channel: (any Channel)?
        var connecting = false
        /// Whether this connection answered a request before (a close before any byte of the
        /// next answer then means the server closed it while idle: the request is sent again once).
        var reused = false
        /// Bumped on every close: events of an earlier channel of this connection are ignored.
        var generation = 0
        var input: [UInt8] = []
        /// The request, encoded; kept until its answer for the stale-connection retry.
        var output: [UInt8] = []
        /// The request as written: one buffer reused for every request of the connection.
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
    }

    /// One request in flight at a time, and the operation's continuation.
    struct Slot {
        var connections: [Connection]
        var handler: ((Result<LoadResponse, LoadError>) -> LoadStep)?
        /// The connection the request is on, its method and when it was sent.
        var active = -1
        var method = "GET"
        var sentAt: UInt64 = 0
        var retried = false
        var finished = false
    }

    let worker: LoadWorker
    let endpoints: [LoadEndpoint]
    let addresses: [SocketAddress]
    let mix: LoadMix
    let eventLoop: any EventLoop
    let deadline: UInt64
    let interval: UInt64?
    var slots: [Slot]
    /// Slots whose operation goes on (or ends) with this step, run by one task after the current
    /// round of I/O: completions never recurse into the next send, however fast requests fail.
    var runnable: [(slot: Int, step: LoadStep)] = []
    var queued: [(slot: Int, step: LoadStep)] = []
    var drainScheduled = false
    var finishedCount = 0
    var sweep: RepeatedTask?
    var ended = false

    private init(worker: LoadWorker, slots count: Int, eventLoop: any EventLoop, deadline: UInt64, interval: UInt64?) {
        self.worker = worker
        endpoints = worker.config.endpoints
        addresses = endpoints.map(\.socketAddress)
        mix = worker.config.mix
        self.eventLoop = eventLoop
        self.deadline = deadline
        self.interval = interval
        slots = Array(repeating: Slot(connections: Array(repeating: Connection(), count: endpoints.count)), count: count)
    }

    /// Runs `slots` slots of operations on the calling thread until `deadline` (monotonic ns),
    /// then until the ones in flight end; returns when the event loop has shut down.
    static func run(worker: LoadWorker, slots: Int, deadline: UInt64, interval: UInt64?) {
        MultiThreadedEventLoopGroup.withCurrentThreadAsEventLoop { eventLoop in
            let loop = LoadNIOLoop(worker: worker, slots: slots, eventLoop: eventLoop, deadline: deadline, interval: interval)
            loop.start()
        }
    }

    private func start() {
        // Bounded: the run lasts at most 3600 s, plus one request timeout, then it is ended.
        let hardStop = deadline + LoadEventLoop.requestTimeout + 5_000_000_000
        sweep = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
            let now = MonotonicClock.now()
            if now > hardStop { return end() }
            for s in slots.indices where slots[s].handler != nil && now - slots[s].sentAt > LoadEventLoop.requestTimeout {
                let c = slots[s].active
                close(s, c)
                complete(s, .failure(LoadError.transport("timed out waiting for \(endpoints[c].url)")))
            }
        }
        for s in slots.indices { runnable.append((s, .done)) }
        if slots.isEmpty { return end() }
        scheduleDrain()
    }

    /// Ends the run: whatever is still in flight is a transport error; the event loop shuts down.
    private func end() {
        guard !ended else { return }
        ended = true
        sweep?.cancel()
        for s in slots.indices {
            if let handler = slots[s].handler {
                slots[s].handler = nil
                _ = handler(.failure(LoadError.transport("the run ended with the request in flight")))
            }
            for c in slots[s].connections.indices { close(s, c) }
        }
        runnable.removeAll()
        eventLoop.shutdownGracefully { _ in }
    }

    /// Runs the queued steps in a task of their own, once per round of I/O.
    private func scheduleDrain() {
        guard !drainScheduled, !ended else { return }
        drainScheduled = true
        eventLoop.execute { [self] in
            drainScheduled = false
            guard !ended else { return }
            // The steps queued so far (new ones schedule the next task).
            swap(&queued, &runnable)
            for (s, step) in queued { self.start(s, step) }
            queued.removeAll(keepingCapacity: true)
            if finishedCount == slots.count { end() }
        }
    }

    /// Sends the step's request on the slot, or goes on to the next operation.
    private func start(_ s: Int, _ step: LoadStep) {
        if case .send = step { send(s, step) } else { nextOperation(s) }
    }

    /// Starts the slot's next operation, or ends the slot at the deadline.
    private func nextOperation(_ s: Int) {
        // Operations that end without a request (nothing to pick) start the next at once; bounded.
        for _ in 0..<1000 {
            let now = MonotonicClock.now()
            if let interval {
                let slot = worker.shared.slot(interval: interval)
                guard slot < deadline else { return finish(s) }
                if slot > now {
                    eventLoop.scheduleTask(in: .nanoseconds(Int64(slot - now))) { [self] in
                        guard !ended else { return }
                        runnable.append((s, worker.begin(mix.pick(worker.roll() % mix.total))))
                        scheduleDrain()
                    }
                    return
                }
            }
            guard now < deadline else { return finish(s) }
            let step = worker.begin(mix.pick(worker.roll() % mix.total))
            if case .send = step { return send(s, step) }
        }
        // A thousand operations in a row with nothing to send: try again next round.
        runnable.append((s, .done))
        scheduleDrain()
    }

    private func finish(_ s: Int) {
        if !slots[s].finished {
            slots[s].finished = true
            finishedCount += 1
        }
    }

    private func send(_ s: Int, _ step: LoadStep) {
        guard case .send(let request, let handler) = step else { return }
        let c = worker.endpointIndex(request)
        slots[s].handler = handler
        slots[s].active = c
        slots[s].method = request.method
        slots[s].sentAt = MonotonicClock.now()
        slots[s].retried = false
        LoadConnection.encode(request.method, request.path, endpoint: endpoints[c], headers: request.allHeaders, body: request.body, into: &slots[s].connections[c].output)
        transmit(s, c)
    }

    /// Writes the slot's request on connection `c`, connecting first if needed.
    private func transmit(_ s: Int, _ c: Int) {
        guard slots[s].connections[c].channel != nil, let handler = slots[s].connections[c].handler else { return connect(s, c) }
        slots[s].connections[c].buffer.clear()
        slots[s].connections[c].buffer.writeBytes(slots[s].connections[c].output)
        // A failed write closes the channel: the handler's channelInactive reports it.
        handler.write(slots[s].connections[c].buffer)
    }

    private func connect(_ s: Int, _ c: Int) {
        guard !slots[s].connections[c].connecting else { return }
        slots[s].connections[c].connecting = true
        slots[s].connections[c].reused = false
        slots[s].connections[c].input.removeAll(keepingCapacity: true)
        let generation = slots[s].connections[c].generation
        let created = LoadNIOHandler(loop: self, slot: s, connection: c, generation: generation)
        slots[s].connections[c].handler = created
        let handler = NIOLoopBound(created, eventLoop: eventLoop)
        // TCP_NODELAY is on by default in ClientBootstrap.
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Int64(LoadEventLoop.requestTimeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .connect(to: addresses[c])
            .whenComplete { [self] result in connected(s, c, generation, result) }
    }

    private func connected(_ s: Int, _ c: Int, _ generation: Int, _ result: Result<any Channel, any Error>) {
        guard slots[s].connections[c].generation == generation, !ended else {
            // Closed (timed out) while connecting.
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        slots[s].connections[c].connecting = false
        switch result {
        case .success(let channel):
            slots[s].connections[c].channel = channel
            if slots[s].active == c, slots[s].handler != nil { transmit(s, c) }
        case .failure(let error):
            close(s, c)
            complete(s, .failure(LoadError.transport("connect \(endpoints[c].url): \(Self.describe(error))")))
        }
    }

    /// Bytes from connection `c` of slot `s` (its channel of `generation`).
    fileprivate func received(_ s: Int, _ c: Int, _ generation: Int, _ bytes: ByteBuffer) {
        guard slots[s].connections[c].generation == generation else { return }
        slots[s].connections[c].input.append(contentsOf: bytes.readableBytesView)
        guard slots[s].active == c, slots[s].handler != nil else {
            // Bytes nobody asked for: the connection is out of step; drop it.
            return close(s, c)
        }
        do {
            if let parsed = try LoadResponseParser.parse(slots[s].connections[c].input, method: slots[s].method, atEOF: false) {
                deliver(s, c, parsed)
            }
        } catch {
            failed(s, c, error)
        }
    }

    /// The channel of connection `c` closed (the end of the stream, or `error`).
    fileprivate func closed(_ s: Int, _ c: Int, _ generation: Int, error: (any Error)?) {
        guard slots[s].connections[c].generation == generation else { return }
        guard slots[s].active == c, slots[s].handler != nil else { return close(s, c) }  // closed while idle
        let empty = slots[s].connections[c].input.isEmpty
        if error == nil, let parsed = try? LoadResponseParser.parse(slots[s].connections[c].input, method: slots[s].method, atEOF: true) {
            return deliver(s, c, parsed)
        }
        let failure: LoadError
        if let io = error as? IOError {
            failure = .transport(Self.describe(io), stale: empty && (io.errnoCode == ECONNRESET || io.errnoCode == EPIPE))
        } else if let error {
            failure = .transport(Self.describe(error))
        } else {
            failure = .transport(empty ? "connection closed before the response" : "connection closed mid-response", stale: empty)
        }
        failed(s, c, failure)
    }

    private func deliver(_ s: Int, _ c: Int, _ parsed: LoadResponseParser.Parsed) {
        slots[s].connections[c].input.removeFirst(parsed.consumed)
        slots[s].connections[c].reused = true
        if parsed.close { close(s, c) }
        complete(s, .success(parsed.response))
    }

    /// A transport failure on the slot's connection: a kept-alive connection the server closed
    /// while idle gets the request again once on a new one (it never reached the server).
    private func failed(_ s: Int, _ c: Int, _ error: LoadError) {
        let stale = error.code == .staleConnection && slots[s].connections[c].reused
        close(s, c)
        if stale, !slots[s].retried, slots[s].handler != nil {
            slots[s].retried = true
            return transmit(s, c)
        }
        complete(s, .failure(error))
    }

    /// The answer (or error) of the slot's request: the operation goes on, or the next starts.
    private func complete(_ s: Int, _ answer: Result<LoadResponse, LoadError>) {
        guard let handler = slots[s].handler else { return }
        slots[s].handler = nil
        runnable.append((s, handler(answer)))
        scheduleDrain()
    }

    private func close(_ s: Int, _ c: Int) {
        guard c >= 0 else { return }
        // First, so the close's own channelInactive is ignored.
        slots[s].connections[c].generation &+= 1
        slots[s].connections[c].connecting = false
        slots[s].connections[c].input.removeAll(keepingCapacity: true)
        slots[s].connections[c].handler = nil
        if let channel = slots[s].connections[c].channel {
            slots[s].connections[c].channel = nil
            channel.close(promise: nil)
        }
    }

    /// An error as the epoll loop words it: `strerror` of an errno, or NIO's text.
    private static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let timeout = error as? ChannelError, case .connectTimeout = timeout { return "timed out" }
        return "\(error)"
    }
}

/// Passes a connection's bytes and its end to ``LoadNIOLoop``, tagged with the slot, the URL and
/// the connection's generation.
private final class LoadNIOHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let loop: LoadNIOLoop
    let slot: Int
    let connection: Int
    let generation: Int
    /// The error that closes the channel, if one did.
    var error: (any Error)?
    /// While in the pipeline: writes start here, at the pipeline's end next to the socket.
    var context: ChannelHandlerContext?

    init(loop: LoadNIOLoop, slot: Int, connection: Int, generation: Int) {
        self.loop = loop
        self.slot = slot
        self.connection = connection
        self.generation = generation
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(_ bytes: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        loop.received(slot, connection, generation, unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        loop.closed(slot, connection, generation, error: error)
    }
}

extension LoadEndpoint {
    /// The resolved address as NIO's `SocketAddress`.
    var socketAddress: SocketAddress {
        address.withUnsafeBytes { raw in
            family == AF_INET6 ? SocketAddress(raw.loadUnaligned(as: sockaddr_in6.self)) : SocketAddress(raw.loadUnaligned(as: sockaddr_in.self))
        }
    }
}
