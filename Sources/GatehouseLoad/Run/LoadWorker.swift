import GatehouseCore
import Synchronization
import GatehouseSystem

/// SplitMix64 (Steele, Lea, Flood 2014), seeded from the system generator.
struct LoadRandom: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One request of an operation, not yet encoded.
struct LoadRequest {
    var method: String
    var path: String
    var key: String
    var headers: [(String, String)] = []
    var json: [(String, String)]? = nil
    /// A user's index: the request goes to the same URL as that user's other requests.
    var affinity: Int? = nil

    /// The JSON body, written as bytes.
    var body: [UInt8]? {
        json.map { pairs in
            var w = JSONWriter(capacity: 512)
            w.raw("{")
            for (index, (name, value)) in pairs.enumerated() {
                if index > 0 { w.raw(",") }
                w.string(name)
                w.raw(":")
                w.string(value)
            }
            w.raw("}")
            return w.bytes
        }
    }

    var allHeaders: [(String, String)] { [("Authorization", "Bearer \(key)")] + headers }
}

/// What an operation does next: send a request and continue with its answer (or the transport
/// error), or nothing (the operation is over). Operations are written once in this form; the
/// event loop (``LoadEventLoop``, or ``LoadNIOLoop`` with `--engine nio`) runs them during the
/// timed run.
enum LoadStep {
    case send(LoadRequest, (Result<LoadResponse, LoadError>) -> LoadStep)
    case done
}

/// The operations and their checks, and one driver's share of the results (not Sendable: one
/// thread owns it). Its blocking connections serve the seeding.
final class LoadWorker {
    let config: LoadConfig
    let shared: LoadShared
    var connections: [LoadConnection]
    var next: Int
    /// Picks operations, users and wrong codes: nothing secret, so a SplitMix64 seeded once
    /// (the system generator is a getrandom(2) call per number).
    var rng = LoadRandom()
    var result = LoadWorkerResult()

    init(config: LoadConfig, shared: LoadShared, index: Int) {
        self.config = config
        self.shared = shared
        connections = config.endpoints.map(LoadConnection.init)
        next = index
    }

    /// Which URL a request goes to: the next one round-robin, or with `affinity` (a user's
    /// index) always the same one: a user's sign-in steps go to one node, as behind a balancer
    /// that hashes on the user, so a finish finds the credential its login/start cached there.
    func endpointIndex(_ request: LoadRequest) -> Int {
        if let affinity = request.affinity { return affinity % config.endpoints.count }
        defer { next &+= 1 }
        return next % config.endpoints.count
    }

    /// Sends `request` on this worker's blocking connection (seeding).
    func send(_ request: LoadRequest) throws(LoadError) -> LoadResponse {
        try connections[endpointIndex(request)].request(request.method, request.path, headers: request.allHeaders, body: request.body)
    }

    func roll() -> Int { Int(rng.next() >> 2) }

    func error(_ key: String) {
        result.errors[key, default: 0] += 1
        shared.errors.add(1, ordering: .relaxed)
    }

    func failure(_ key: String) {
        result.failures[key, default: 0] += 1
        shared.failures.add(1, ordering: .relaxed)
    }

    func transport(_ op: LoadOp, _ e: LoadError) {
        result.transportErrors += 1
        result.errors["\(op.rawValue):transport", default: 0] += 1
        result.lastTransportError = "\(e)"
        shared.errors.add(1, ordering: .relaxed)
    }

    func startRequest(_ user: String, affinity: Int) -> LoadRequest {
        LoadRequest(method: "POST", path: "/v1/login/start", key: config.frontendKey, json: [("user", user)], affinity: affinity)
    }

    func finishRequest(_ challenge: String, code: String, affinity: Int) -> LoadRequest {
        var json = [("challenge", challenge), ("method", "totp"), ("code", code)]
        if let address = config.clientIP(forUser: affinity) { json.append(("client_ip", address)) }
        return LoadRequest(method: "POST", path: "/v1/login/finish", key: config.frontendKey, json: json, affinity: affinity)
    }

    /// login/start on the blocking connection (seeding); the challenge when the answer is `second_step`.
    func startLogin(_ user: String, affinity: Int) throws(LoadError) -> (Int, String?) {
        let reply = try send(startRequest(user, affinity: affinity))
        guard reply.status == 200 else { return (reply.status, nil) }
        return (200, reply.secondStepChallenge)
    }

    /// login/finish on the blocking connection (seeding).
    func finish(_ challenge: String, code: String, affinity: Int) throws(LoadError) -> LoadResponse {
        try send(finishRequest(challenge, code: code, affinity: affinity))
    }

    /// The first step of one operation of kind `op`.
    func begin(_ op: LoadOp) -> LoadStep {
        shared.ops.add(1, ordering: .relaxed)
        switch op {
        case .auth: return auth()
        case .valid: return valid()
        case .wrong: return wrong()
        case .replay: return replay()
        case .check: return check()
        case .wrongcheck: return wrongCheck()
        }
    }

    func auth() -> LoadStep {
        let start = MonotonicClock.now()
        guard let token = shared.randomSession(roll()) else {
            result.kinds[.auth]!.record(ok: false, since: start)
            error("auth:no_session")
            return .done
        }
        return .send(LoadRequest(method: "GET", path: "/v1/auth", key: config.verifyKey, headers: [("Gatehouse-Session", token)])) { [self] answer in
            switch answer {
            case .success(let reply):
                result.kinds[.auth]!.record(ok: reply.status == 204, since: start)
                if reply.status == 401 {
                    failure("session_refused")
                } else if reply.status != 204 {
                    error("auth:\(reply.status)")
                }
            case .failure(let e):
                result.kinds[.auth]!.record(ok: false, since: start)
                transport(.auth, e)
            }
            return .done
        }
    }

    /// login/start for a code operation, then `then` with the challenge; on anything but a
    /// challenge the operation is recorded as failed. `end` runs when the operation ends early.
    func withChallenge(for index: Int, kind: LoadOp, since start: UInt64, end: @escaping () -> Void = {}, then: @escaping (String) -> LoadStep) -> LoadStep {
        .send(startRequest(shared.users[index].name, affinity: index)) { [self] answer in
            switch answer {
            case .success(let reply):
                if reply.status == 200, let challenge = reply.secondStepChallenge { return then(challenge) }
                result.kinds[kind]!.record(ok: false, since: start)
                error("\(kind.rawValue):start_\(reply.status)")
            case .failure(let e):
                result.kinds[kind]!.record(ok: false, since: start)
                transport(kind, e)
            }
            end()
            return .done
        }
    }

    func valid() -> LoadStep {
        guard let pick = shared.reserveValid(roll()) else {
            // Every valid-pool user has spent the current and next step: answer with a session check.
            result.skipped["valid_skipped", default: 0] += 1
            return auth()
        }
        let start = MonotonicClock.now()
        let release = { [shared] in shared.release(pick.index) }
        return withChallenge(for: pick.index, kind: .valid, since: start, end: release) { [self] challenge in
            submitValidCode(.valid, index: pick.index, reservedStep: pick.step, challenge: challenge, since: start, end: release)
        }
    }

    /// One code check alone: a valid code on a challenge opened before the run.
    func check() -> LoadStep {
        guard let pick = shared.reserveCheck(roll()) else {
            // Every pre-opened challenge is used (or every user spent its steps): a session check.
            result.skipped["check_skipped", default: 0] += 1
            return auth()
        }
        let start = MonotonicClock.now()
        return submitValidCode(.check, index: pick.index, reservedStep: pick.step, challenge: pick.challenge, since: start) { [shared] in
            shared.release(pick.index)
        }
    }

    /// Submits the user's code for the reserved step (or the window's oldest, if time moved on)
    /// on `challenge` and records the answer under `kind`: only 200 is right; a throttle, or a 503
    /// with --tolerate-unavailable, is an error; anything else is a refused valid code. `end`
    /// runs when the answer (or the transport error) is in.
    func submitValidCode(_ kind: LoadOp, index: Int, reservedStep: Int64, challenge: String, since start: UInt64, end: @escaping () -> Void) -> LoadStep {
        // The step may have moved on while login/start ran: stay inside the ±1 window.
        let step = max(reservedStep, loadStep() - 1)
        shared.markSubmitted(index, step: step)
        let code = shared.users[index].code(step: step)
        return .send(finishRequest(challenge, code: code, affinity: index)) { [self] answer in
            defer { end() }
            guard case .success(let reply) = answer else {
                if case .failure(let e) = answer {
                    result.kinds[kind]!.record(ok: false, since: start)
                    transport(kind, e)
                }
                return .done
            }
            result.kinds[kind]!.record(ok: reply.status == 200, since: start)
            switch reply.status {
            case 200:
                shared.accepted(index, code: code, step: step, session: reply.sessionToken)
            case 429:
                result.skipped["\(kind.rawValue)_throttled", default: 0] += 1
                error("\(kind.rawValue):429")
            case 503 where config.tolerateUnavailable:
                error("\(kind.rawValue):unavailable")
            default:
                failure("\(kind.rawValue)_refused")
                error("\(kind.rawValue):\(reply.status)")
                if result.refusedValid.count < LoadWorkerResult.refusedValidKept {
                    result.refusedValid.append("\(shared.users[index].name) step \(step) (reserved \(reservedStep), now \(loadStep())): \(reply.status) \(reply.problemCode ?? "-")")
                }
            }
            return .done
        }
    }

    func wrong() -> LoadStep {
        let pool = shared.wrongPool
        let index = pool.lowerBound + roll() % pool.count
        let start = MonotonicClock.now()
        return withChallenge(for: index, kind: .wrong, since: start) { [self] challenge in
            submitRefusedCode(.wrong, index: index, challenge: challenge, code: wrongCode(for: index), since: start)
        }
    }

    /// A code that is none of user `index`'s codes in a ±2 window around now.
    func wrongCode(for index: Int) -> String {
        let user = shared.users[index]
        let current = loadStep()
        let live = Set((current - 2...current + 2).map { user.code(step: $0) })
        var code = "000000"
        for _ in 0..<100 {
            code = HOTP.format(UInt32(rng.next() % 1_000_000), digits: 6)
            if !live.contains(code) { break }
        }
        return code
    }

    /// One wrong code alone, on a challenge opened before the run. The user's first 5 failures
    /// are free, so those must be refused with `401 invalid_code`; after them a throttle (`429`)
    /// is right too.
    func wrongCheck() -> LoadStep {
        guard let pick = shared.reserveWrongCheck(roll(), limit: config.wrongPerChallenge) else {
            // Every pre-opened challenge took its wrong codes: a session check.
            result.skipped["wrongcheck_skipped", default: 0] += 1
            return auth()
        }
        let start = MonotonicClock.now()
        return submitRefusedCode(.wrongcheck, index: pick.index, challenge: pick.challenge, code: wrongCode(for: pick.index), since: start,
                                 throttleExpected: pick.before >= 5, end: { [shared] in shared.release(pick.index) })
    }

    /// Submits a code that must be refused (a wrong or replayed one) and records the answer under
    /// `kind`: 401 `invalid_code` is right, and a throttle too when `throttleExpected`; an
    /// acceptance is a correctness failure (`accepted` then runs). `end` runs when the answer (or
    /// the transport error) is in.
    func submitRefusedCode(_ kind: LoadOp, index: Int, challenge: String, code: String, since start: UInt64, throttleExpected: Bool = true,
                           accepted: @escaping () -> Void = {}, end: @escaping () -> Void = {}) -> LoadStep {
        .send(finishRequest(challenge, code: code, affinity: index)) { [self] answer in
            defer { end() }
            switch answer {
            case .success(let reply):
                let expected = (reply.status == 401 && reply.problemCode == "invalid_code") || (reply.status == 429 && throttleExpected)
                result.kinds[kind]!.record(ok: expected, since: start)
                if reply.status == 429, expected { result.throttled[kind.rawValue, default: 0] += 1 }
                if reply.status == 200 {
                    failure("\(kind.rawValue)_accepted")
                    accepted()
                } else if !expected {
                    error("\(kind.rawValue):\(reply.status)")
                }
            case .failure(let e):
                result.kinds[kind]!.record(ok: false, since: start)
                transport(kind, e)
            }
            return .done
        }
    }

    func replay() -> LoadStep {
        guard let pick = shared.reserveReplay(roll()) else {
            result.skipped["replay_skipped", default: 0] += 1
            return auth()
        }
        let start = MonotonicClock.now()
        let release = { [shared] in shared.release(pick.index) }
        return withChallenge(for: pick.index, kind: .replay, since: start, end: release) { [self] challenge in
            submitRefusedCode(.replay, index: pick.index, challenge: challenge, code: pick.code, since: start, accepted: { [shared] in
                // The server now holds a later step than we know: never use the window again.
                shared.markSubmitted(pick.index, step: loadStep() + 1)
            }, end: release)
        }
    }
}

