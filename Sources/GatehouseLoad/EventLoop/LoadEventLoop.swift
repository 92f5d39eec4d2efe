// Why a hand-written epoll(7) loop and not SwiftNIO: the generator runs on the same two cores as
// the node and the Redis it measures, so every cycle it spends is taken from what it measures, and
// its CPU per request is the figure that matters (benchmarks/RESULTS.md follows it). This loop does
// only what the generator needs: one request in flight per connection, answers framed on bytes by
// `LoadResponseParser`, each operation's next step run from the loop itself, no channel pipeline
// or futures in between. The same run on SwiftNIO (`LoadNIOLoop`, `--engine nio`, framing with
// the same parser) costs more: in two runs of benchmarks/load-engines.sh on 2026-12-03 (5
// interleaved repetitions per engine against one node, 50 in flight) the ratio nio/epoll of the
// generator's median CPU per request was 1.38 and 1.43 for session checks (auth=100: 5.8 against
// 8.0 µs, 10.2 against 14.5 µs) and 1.18 and 1.31 for code checks (check=100: 16.7 against 19.7
// µs, 22.7 against 29.8 µs); NIO's HTTP/1 client codec in place of the parser cost more again.
// The project prefers NIO only within 20% (ratio ≤ 1.20), so this loop stays the default; rerun
// the script when NIO or the toolchain changes (figures in benchmarks/RESULTS.md). This is the
// only file that imports CEpoll.
import CEpoll
import Glibc
import GatehouseSystem

/// The timed run of `gatehouse load`: one thread drives many connections with epoll(7), each
/// with one request in flight, like `redis-benchmark` and `wrk` (50 blocking threads cost a
/// thread wake-up per answer, on the same two cores as the node and Redis).
///
/// Each of the loop's `slots` runs operations back to back (``LoadWorker/begin(_:)`` and the
/// ``LoadStep``s it returns) on its own keep-alive connection per URL, until the deadline; an
/// operation started before the deadline runs to its end. With a rate cap, a slot waits for
/// its turn (``LoadShared/slot(interval:)``) before each operation. Every request is bounded by
/// a 10 s timeout, every loop by counts and time.
final class LoadEventLoop {
    /// One connection of a slot to one URL.
    struct Connection {
        var fd: Int32 = -1
        var connecting = false
        /// Whether this connection answered a request before (a close before any byte of the
        /// next answer then means the server closed it while idle: the request is sent again once).
        var reused = false
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var wantsWrite = false
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
        /// With a rate cap: the operation starts at this time (0 = not waiting).
        var waitUntil: UInt64 = 0
        var finished = false
    }

    static let requestTimeout: UInt64 = 10_000_000_000

    let worker: LoadWorker
    let endpoints: [LoadEndpoint]
    let mix: LoadMix
    var slots: [Slot]
    let epoll: Int32
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    /// Slots whose operation goes on (or ends) with this step, run after the current round's
    /// events: completions never recurse into the next send, however fast requests fail.
    var runnable: [(slot: Int, step: LoadStep)] = []
    var finishedCount = 0

    init(worker: LoadWorker, slots count: Int) throws(LoadError) {
        self.worker = worker
        endpoints = worker.config.endpoints
        mix = worker.config.mix
        slots = Array(repeating: Slot(connections: Array(repeating: Connection(), count: endpoints.count)), count: count)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw LoadError(.runFailed, "epoll_create1: \(String(cString: strerror(errno)))") }
    }

    deinit {
        for s in slots.indices { for c in slots[s].connections.indices { close(s, c) } }
        Glibc.close(epoll)
    }

    /// Runs operations until `deadline` (monotonic ns), then until the ones in flight end.
    func run(deadline: UInt64, interval: UInt64?) {
        for s in slots.indices { runnable.append((s, .done)) }
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var lastSweep = MonotonicClock.now()
        // Bounded: the run lasts at most 3600 s, plus one request timeout; a round is at most 100 ms.
        let hardStop = deadline + Self.requestTimeout + 5_000_000_000
        var queued: [(slot: Int, step: LoadStep)] = []
        for _ in 0..<1_000_000_000 {
            // The steps queued so far (new ones wait for the next round).
            swap(&queued, &runnable)
            for (s, step) in queued { start(s, step, deadline: deadline, interval: interval) }
            queued.removeAll(keepingCapacity: true)
            if finishedCount == slots.count { break }
            let now = MonotonicClock.now()
            if now > hardStop { break }
            // Sleep until an answer, the next rate slot, or a sweep for timeouts.
            var timeout = runnable.isEmpty ? 100 : 0
            if interval != nil {
                for slot in slots where slot.waitUntil > 0 {
                    timeout = min(timeout, slot.waitUntil > now ? Int((slot.waitUntil - now + 999_999) / 1_000_000) : 0)
                }
            }
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), Int32(timeout)) }
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let tag = events[i].data.u64
                handle(Int(tag >> 8), Int(tag & 0xFF), events: events[i].events)
            }
            let after = MonotonicClock.now()
            if interval != nil {
                for s in slots.indices where slots[s].waitUntil > 0 && slots[s].waitUntil <= after {
                    slots[s].waitUntil = 0
                    runnable.append((s, worker.begin(mix.pick(worker.roll() % mix.total))))
                }
            }
            if after - lastSweep > 100_000_000 {
                lastSweep = after
                for s in slots.indices where slots[s].handler != nil && after - slots[s].sentAt > Self.requestTimeout {
                    let c = slots[s].active
                    close(s, c)
                    complete(s, .failure(LoadError.transport("timed out waiting for \(endpoints[c].url)")))
                }
            }
        }
        // Whatever is still in flight past the hard stop is a transport error.
        for s in slots.indices where slots[s].handler != nil {
            close(s, slots[s].active)
            _ = slots[s].handler?(.failure(LoadError.transport("the run ended with the request in flight")))
            slots[s].handler = nil
        }
    }

    /// Starts the slot's next operation, or ends the slot at the deadline.
    private func nextOperation(_ s: Int, deadline: UInt64, interval: UInt64?) {
        // Operations that end without a request (nothing to pick) start the next at once; bounded.
        for _ in 0..<1000 {
            let now = MonotonicClock.now()
            if let interval {
                let slot = worker.shared.slot(interval: interval)
                guard slot < deadline else { return finish(s) }
                if slot > now {
                    slots[s].waitUntil = slot
                    return
                }
            }
            guard now < deadline else { return finish(s) }
            let step = worker.begin(mix.pick(worker.roll() % mix.total))
            if case .send = step { return send(s, step) }
        }
        // A thousand operations in a row with nothing to send: try again next round.
        runnable.append((s, .done))
    }

    private func finish(_ s: Int) {
        if !slots[s].finished {
            slots[s].finished = true
            finishedCount += 1
        }
    }

    /// Sends the step's request on the slot, or goes on to the next operation.
    private func start(_ s: Int, _ step: LoadStep, deadline: UInt64, interval: UInt64?) {
        if case .send = step { send(s, step) } else { nextOperation(s, deadline: deadline, interval: interval) }
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

    /// Sends the slot's request bytes (from the start) on connection `c`, connecting first if needed.
    private func transmit(_ s: Int, _ c: Int) {
        slots[s].connections[c].sent = 0
        if slots[s].connections[c].fd < 0 {
            do {
                let fd = try endpoints[c].openSocket(nonBlocking: true)
                slots[s].connections[c].fd = fd
                slots[s].connections[c].reused = false
                slots[s].connections[c].input.removeAll(keepingCapacity: true)
                var event = epoll_event()
                event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue
                event.data.u64 = UInt64(s) << 8 | UInt64(c)
                epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
                slots[s].connections[c].wantsWrite = true
                if endpoints[c].connect(fd) != 0 {
                    guard errno == EINPROGRESS else {
                        let e = errno
                        close(s, c)
                        return complete(s, .failure(LoadError.transport("connect \(endpoints[c].url): \(String(cString: strerror(e)))")))
                    }
                    slots[s].connections[c].connecting = true
                    return  // EPOLLOUT says when
                }
            } catch {
                return complete(s, .failure(error))
            }
        }
        flush(s, c)
    }

    private func flush(_ s: Int, _ c: Int) {
        let fd = slots[s].connections[c].fd
        while slots[s].connections[c].sent < slots[s].connections[c].output.count {
            let sent = slots[s].connections[c].sent
            let n = slots[s].connections[c].output.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n >= 0 {
                slots[s].connections[c].sent += n
                continue
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK {
                setWantsWrite(s, c, true)
                return
            }
            return failed(s, c, LoadError.transport("send: \(String(cString: strerror(e)))", stale: e == EPIPE || e == ECONNRESET))
        }
        setWantsWrite(s, c, false)
    }

    private func setWantsWrite(_ s: Int, _ c: Int, _ wants: Bool) {
        guard slots[s].connections[c].wantsWrite != wants, slots[s].connections[c].fd >= 0 else { return }
        slots[s].connections[c].wantsWrite = wants
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (wants ? EPOLLOUT.rawValue : 0)
        event.data.u64 = UInt64(s) << 8 | UInt64(c)
        epoll_ctl(epoll, EPOLL_CTL_MOD, slots[s].connections[c].fd, &event)
    }

    private func handle(_ s: Int, _ c: Int, events: UInt32) {
        guard s < slots.count, c < endpoints.count, slots[s].connections[c].fd >= 0 else { return }
        if slots[s].connections[c].connecting, events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(slots[s].connections[c].fd, SOL_SOCKET, SO_ERROR, &error, &length)
            slots[s].connections[c].connecting = false
            guard error == 0 else {
                close(s, c)
                return complete(s, .failure(LoadError.transport("connect \(endpoints[c].url): \(String(cString: strerror(error)))")))
            }
            flush(s, c)
            guard slots[s].connections[c].fd >= 0 else { return }
        } else if events & EPOLLOUT.rawValue != 0, slots[s].active == c, slots[s].handler != nil {
            flush(s, c)
            guard slots[s].connections[c].fd >= 0 else { return }
        }
        if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            readable(s, c)
        }
    }

    private func readable(_ s: Int, _ c: Int) {
        let fd = slots[s].connections[c].fd
        for _ in 0..<1024 {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                slots[s].connections[c].input.append(contentsOf: chunk[0..<n])
                guard slots[s].active == c, slots[s].handler != nil else {
                    // Bytes nobody asked for: the connection is out of step; drop it.
                    return close(s, c)
                }
                do {
                    if let parsed = try LoadResponseParser.parse(slots[s].connections[c].input, method: slots[s].method, atEOF: false) {
                        return deliver(s, c, parsed)
                    }
                } catch {
                    return failed(s, c, error)
                }
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return }
            // The end of the stream, or an error.
            guard slots[s].active == c, slots[s].handler != nil else { return close(s, c) }  // closed while idle
            let empty = slots[s].connections[c].input.isEmpty
            if n == 0, let parsed = try? LoadResponseParser.parse(slots[s].connections[c].input, method: slots[s].method, atEOF: true) {
                return deliver(s, c, parsed)
            }
            let error = n == 0
                ? LoadError.transport(empty ? "connection closed before the response" : "connection closed mid-response", stale: empty)
                : LoadError.transport("recv: \(String(cString: strerror(e)))", stale: e == ECONNRESET && empty)
            return failed(s, c, error)
        }
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
    }

    private func close(_ s: Int, _ c: Int) {
        guard c >= 0, slots[s].connections[c].fd >= 0 else { return }
        epoll_ctl(epoll, EPOLL_CTL_DEL, slots[s].connections[c].fd, nil)
        Glibc.close(slots[s].connections[c].fd)
        slots[s].connections[c].fd = -1
        slots[s].connections[c].connecting = false
        slots[s].connections[c].wantsWrite = false
        slots[s].connections[c].input.removeAll(keepingCapacity: true)
    }
}
