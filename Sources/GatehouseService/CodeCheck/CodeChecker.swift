import Glibc
import Synchronization
import GatehouseRedis

/// Runs `CodeCheckScript` and turns its reply into an outcome.
public struct CodeChecker: Sendable {
    /// What one attempt came to.
    public enum Outcome: Sendable, Equatable {
        /// Accepted; `epoch` is the user's security epoch at that moment.
        case accepted(epoch: UInt64)
        /// Wrong or replayed (the caller must not be able to tell which).
        case rejected(attemptsRemaining: Int, replay: Bool)
        case throttled(retryAfterSeconds: Int)
        case locked
        case ipLimited(retryAfterSeconds: Int)
        /// The credential changed since the node loaded it; reload and retry.
        case stale
        /// The challenge already completed.
        case consumed
    }

    /// The keys of one attempt.
    public struct Keys: Sendable {
        public var userRecord: String
        public var throttle: String
        /// The mode's record: the TOTP step key of earlier releases (read only; see
        /// `CodeCheckScript`), backup-code set, pending email code or pending passkey challenge.
        public var modeRecord: String
        public var ipCounter: String
        public var challengeMarker: String
        /// The user's session list (written on a successful sign-in).
        public var sessions: String
        /// The user's security event log (a list).
        public var events: String

        public init(userRecord: String, throttle: String, modeRecord: String, ipCounter: String, challengeMarker: String, sessions: String, events: String) {
            self.userRecord = userRecord
            self.throttle = throttle
            self.modeRecord = modeRecord
            self.ipCounter = ipCounter
            self.challengeMarker = challengeMarker
            self.sessions = sessions
            self.events = events
        }
    }

    /// What the script writes besides the check itself (see `CodeCheckScript`).
    public struct Effects: Sendable {
        /// The session to record on success (id and record JSON), and the session list's TTL.
        public var session: (id: String, record: String)?
        public var sessionListTTLSeconds = 0
        /// The event detail (the method) and client IP of the events the attempt writes.
        public var eventDetail = ""
        public var clientIP: String?
        /// The event type written on success (`nil`: none).
        public var successEvent: String?
        public var eventsKept = Gatehouse.eventsKept
        public init() {}
    }

    let redis: RedisClient
    let settings: GatehouseConfiguration.Throttle
    /// Reservations of the address budget this node owes back (Redis Cluster only).
    let refunds = AddressRefunds()
    /// The throttle record outlives a quiet day so "100 consecutive failures" means consecutive.
    public static let throttleTTLSeconds = 30 * 24 * 3600
    var throttleTTLSeconds: Int { Self.throttleTTLSeconds }

    /// What is being checked.
    public enum Candidate: Sendable {
        /// An authenticator code: the step the node matched it to (nil = no match).
        case totp(matchedStep: UInt64?)
        /// A backup code's keyed hash (KEYS[3] is the set of unused ones).
        case backupCode(hash: String)
        /// An emailed code's keyed hash, bound to the challenge it was sent for.
        case emailCode(hash: String, challengeID: String, triesPerCode: Int)
        /// A passkey assertion the node verified (or not) against `challenge`, the pending
        /// passkey challenge of sign-in `challengeID`; `counters` is the passkeys' counter hash.
        case passkey(verified: Bool, challenge: String, challengeID: String, credentialID: String, signCount: UInt32, counters: String)
    }

    /// The script's KEYS and ARGV for one attempt: the one place their order is written down
    /// (the node's calls and `gatehouse debug code-check-args`, which the end-to-end benchmark
    /// feeds to `redis-benchmark`, both use it).
    public static func invocation(
        keys: Keys, credentialVersion: String, candidate: Candidate, settings: GatehouseConfiguration.Throttle,
        challengeTTLSeconds: Int, throttleTTLSeconds: Int, effects: Effects,
        addressBudgetInScript: Bool = true
    ) -> (keys: [String], arguments: [String]) {
        let mode: String, value: String, challengeID: String, tries: Int
        switch candidate {
        case .totp(let step): (mode, value, challengeID, tries) = ("totp", step.map { String($0) } ?? "-1", "", 0)
        case .backupCode(let hash): (mode, value, challengeID, tries) = ("set", hash, "", 0)
        case .emailCode(let hash, let cid, let t): (mode, value, challengeID, tries) = ("email", hash, cid, t)
        case .passkey(let verified, _, let cid, _, _, _): (mode, value, challengeID, tries) = ("passkey", verified ? "1" : "0", cid, 0)
        }
        var keys = [keys.userRecord, keys.throttle, keys.modeRecord, keys.ipCounter, keys.challengeMarker, keys.sessions, keys.events]
        var arguments: [String] = [
            credentialVersion, value,
            String(settings.freeFailures), String(settings.maximumBackoffSeconds * 1000), String(settings.lockAfterFailures),
            addressBudgetInScript ? String(settings.ipFailureLimit) : "", String(settings.ipWindowSeconds), String(challengeTTLSeconds),
            String(throttleTTLSeconds), mode, challengeID, String(tries),
            effects.session?.id ?? "", effects.session?.record ?? "", String(effects.sessionListTTLSeconds),
            "1", effects.eventDetail, effects.clientIP ?? "", String(effects.eventsKept), effects.successEvent ?? "",
        ]
        if case .passkey(_, let challenge, _, let credentialID, let signCount, let counters) = candidate {
            keys.append(counters)
            arguments += [challenge, credentialID, String(signCount)]
        }
        return (keys, arguments)
    }

    /// One attempt.
    ///
    /// On a Redis Cluster, when the address counter is not one of the user's own keys, the
    /// address budget is reserved first on its own master (``AddressBudgetScript``), and owed
    /// back (with the next reservation) unless the attempt was a wrong code.
    func check(keys: Keys, credentialVersion: String, candidate: Candidate, challengeTTLSeconds: Int, effects: Effects) async throws -> Outcome {
        var keys = keys
        var addressCounter: String?
        if !runsInOneCall(keys) {
            let owed = refunds.take(keys.ipCounter)
            let reserved = try await redis.eval(
                AddressBudgetScript.reserve, keys: [keys.ipCounter],
                arguments: [String(settings.ipFailureLimit), String(settings.ipWindowSeconds), String(owed)]
            )
            guard let items = reserved.array, let status = items.first?.string else {
                throw RedisError(.unexpectedReply, "address budget returned \(reserved)")
            }
            if status == "ip_limited" { return .ipLimited(retryAfterSeconds: max(1, Int(items.count > 1 ? items[1].integer ?? 1 : 1))) }
            addressCounter = keys.ipCounter
            keys.ipCounter = keys.throttle  // in the user's slot; not touched with ARGV[6] ""
        }
        // When the script fails (outcome unknown) the reservation is kept: counting the attempt
        // as a failure errs towards the limit, which only this address feels.
        let call = Self.invocation(
            keys: keys, credentialVersion: credentialVersion, candidate: candidate, settings: settings,
            challengeTTLSeconds: challengeTTLSeconds,
            throttleTTLSeconds: throttleTTLSeconds, effects: effects, addressBudgetInScript: addressCounter == nil
        )
        let outcome = try await self.run(call)
        if let addressCounter, !Self.isFailure(outcome) {
            refunds.owe(addressCounter)
        }
        return outcome
    }

    /// Whether `outcome` counts against the address budget (the script's own rule: a wrong or
    /// replayed code, nothing else).
    static func isFailure(_ outcome: Outcome) -> Bool {
        if case .rejected = outcome { return true }
        return false
    }

    /// Whether two keys carry the same `{…}` hash tag (so one script may name both).
    static func sameSlotTag(_ a: String, _ b: String) -> Bool {
        func tag(_ key: String) -> Substring? {
            guard let open = key.firstIndex(of: "{"), let close = key[open...].firstIndex(of: "}") else { return nil }
            return key[open...close]
        }
        return tag(a) != nil && tag(a) == tag(b)
    }

    /// Whether ``check(keys:credentialVersion:candidate:challengeTTLSeconds:effects:completion:)``
    /// can take an attempt on these keys: the script alone decides it (no address budget to
    /// reserve on another Redis Cluster master first).
    func runsInOneCall(_ keys: Keys) -> Bool {
        !redis.isCluster || Self.sameSlotTag(keys.ipCounter, keys.userRecord)
    }

    /// The same attempt for a caller outside Swift concurrency, when ``runsInOneCall(_:)``:
    /// the script's one round trip, `completion` where the Redis client hands the reply over
    /// (``RedisClient/send(_:completion:)``: the caller's event loop, or the pool's I/O thread).
    func check(
        keys: Keys, credentialVersion: String, candidate: Candidate, challengeTTLSeconds: Int, effects: Effects,
        completion: @escaping @Sendable (Result<Outcome, any Error>) -> Void
    ) {
        precondition(runsInOneCall(keys), "an attempt that reserves an address budget first runs through check(keys:…) async")
        let call = Self.invocation(
            keys: keys, credentialVersion: credentialVersion, candidate: candidate, settings: settings,
            challengeTTLSeconds: challengeTTLSeconds,
            throttleTTLSeconds: throttleTTLSeconds, effects: effects
        )
        redis.eval(CodeCheckScript.script, keys: call.keys, arguments: call.arguments) { result in
            completion(result.flatMap { reply in Result { try Self.outcome(reply) } })
        }
    }

    private func run(_ call: (keys: [String], arguments: [String])) async throws -> Outcome {
        try Self.outcome(await redis.eval(CodeCheckScript.script, keys: call.keys, arguments: call.arguments))
    }

    /// The script's reply as an outcome.
    private static func outcome(_ reply: RedisValue) throws -> Outcome {
        guard let items = reply.array, let status = items.first?.string else {
            throw RedisError(.unexpectedReply, "code check returned \(reply)")
        }
        func int(_ i: Int) -> Int { i < items.count ? Int(items[i].integer ?? 0) : 0 }
        switch status {
        case "ok":
            let epoch = items.count > 1 ? (items[1].string.flatMap { UInt64($0) } ?? items[1].integer.map { UInt64(clamping: $0) } ?? 0) : 0
            return .accepted(epoch: epoch)
        case "invalid": return .rejected(attemptsRemaining: int(1), replay: int(2) == 1)
        case "throttled": return .throttled(retryAfterSeconds: max(1, (int(1) + 999) / 1000))
        case "locked": return .locked
        case "ip_limited": return .ipLimited(retryAfterSeconds: max(1, int(1)))
        case "stale": return .stale
        case "consumed": return .consumed
        default: throw RedisError(.unexpectedReply, "code check returned \(reply)")
        }
    }
}

/// The client-IP key part: IPv4 as is, IPv6 by its /64. nil for text that is not an IP.
public func ipBudgetKey(_ text: String) -> String? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
        var out = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &v4, &out, socklen_t(out.count))
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
        // Keep the first 8 bytes (the /64), zero the interface identifier.
        withUnsafeMutableBytes(of: &v6) { raw in for i in 8..<16 { raw[i] = 0 } }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &v6, &out, socklen_t(out.count))
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/64"
    }
    return nil
}

/// The address-budget reservations a node owes back (``AddressBudgetScript``): a count per
/// address counter key, taken out whole by the next reservation for that address. Bounded: past
/// `capacity` addresses a new refund is dropped, which leaves that counter high (the safe side)
/// until its window ends.
final class AddressRefunds: Sendable {
    static let capacity = 65_536
    private let owed = Mutex<[String: Int]>([:])

    func owe(_ key: String) {
        owed.withLock { owed in
            if owed[key] != nil || owed.count < Self.capacity { owed[key, default: 0] += 1 }
        }
    }

    /// What is owed for `key`, now handed over (0 if nothing).
    func take(_ key: String) -> Int {
        owed.withLock { $0.removeValue(forKey: key) } ?? 0
    }
}
