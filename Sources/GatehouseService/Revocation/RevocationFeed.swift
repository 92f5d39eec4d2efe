import Foundation
import GatehouseSystem
public import GatehouseRedis
public import Logging
import Synchronization

/// The revocation feed: a Redis stream every node appends to and follows.
///
/// Entry kinds (field `k`): `sid` (one session revoked: `sid`, `exp`), `epoch` (a user's
/// security epoch raised: `u`, `ep`), `policy` (a domain's policy changed: `d`, `p` = JSON or
/// empty for "back to default"), `cred` (a user's second-step credentials changed: `u`; nodes
/// drop cached secrets). The stream is trimmed with `MINID` to the longest token lifetime.
public final class RevocationFeed: Sendable {
    /// An entry of the feed.
    public enum Event: Sendable, Equatable {
        case sessionRevoked(sid: String, expiresAt: Int64)
        case epochRaised(user: String, epoch: UInt64)
        case policyChanged(domain: String, policy: DomainPolicy?)
        case credentialsChanged(user: String)
    }

    let redis: RedisClient
    let streamKey: String
    let policiesKey: String
    let view: RevocationView
    let retentionSeconds: Int64
    let logger: Logger
    private let credentialListeners = Mutex<[@Sendable (String) -> Void]>([])
    /// Monotonic seconds of the last moment the follower was known connected.
    private let lastHealthy = Atomic<Int64>(MonotonicClock.seconds())
    private let follower: Mutex<RedisStreamFollower?> = Mutex(nil)

    init(redis: RedisClient, keys: RedisKeys, view: RevocationView, retentionSeconds: Int64, logger: Logger) {
        self.redis = redis
        self.streamKey = keys.global("revocations")
        self.policiesKey = keys.global("policies")
        self.view = view
        self.retentionSeconds = retentionSeconds
        self.logger = logger
    }

    /// Registers a callback for `credentialsChanged` (the TOTP cache uses it).
    func onCredentialsChanged(_ listener: @escaping @Sendable (String) -> Void) {
        credentialListeners.withLock { $0.append(listener) }
    }

    /// Appends `event` and applies it locally at once (this node does not wait for its own echo).
    public func publish(_ event: Event, now: Int64) async throws {
        apply(event, now: now)
        let minID = RedisStreamID.before(milliseconds: UInt64(max(0, now - retentionSeconds)) * 1000)
        _ = try await redis.xadd(streamKey, fields: Self.fields(of: event), trim: .minID(minID, approximate: true))
    }

    static func fields(of event: Event) -> [RedisStreamField] {
        switch event {
        case .sessionRevoked(let sid, let exp):
            [RedisStreamField("k", "sid"), RedisStreamField("sid", sid), RedisStreamField("exp", String(exp))]
        case .epochRaised(let user, let epoch):
            [RedisStreamField("k", "epoch"), RedisStreamField("u", user), RedisStreamField("ep", String(epoch))]
        case .policyChanged(let domain, let policy):
            [RedisStreamField("k", "policy"), RedisStreamField("d", domain), RedisStreamField("p", policy.map(PolicyCodec.encode) ?? "")]
        case .credentialsChanged(let user):
            [RedisStreamField("k", "cred"), RedisStreamField("u", user)]
        }
    }

    static func event(from entry: RedisStreamEntry) -> Event? {
        switch entry["k"] {
        case "sid":
            guard let sid = entry["sid"], let exp = entry["exp"].flatMap({ Int64($0) }) else { return nil }
            return .sessionRevoked(sid: sid, expiresAt: exp)
        case "epoch":
            guard let u = entry["u"], let ep = entry["ep"].flatMap({ UInt64($0) }) else { return nil }
            return .epochRaised(user: u, epoch: ep)
        case "policy":
            guard let d = entry["d"], let p = entry["p"] else { return nil }
            return .policyChanged(domain: d, policy: p.isEmpty ? nil : PolicyCodec.decode(p))
        case "cred":
            return entry["u"].map { .credentialsChanged(user: $0) }
        default:
            return nil
        }
    }

    func apply(_ event: Event, now: Int64) {
        switch event {
        case .sessionRevoked(let sid, let exp): view.revokeSession(sid, expiresAt: exp, now: now)
        case .epochRaised(let user, let epoch): view.raiseEpoch(of: user, to: epoch)
        case .policyChanged(let domain, let policy): view.setPolicy(policy, for: domain)
        case .credentialsChanged(let user):
            for listener in credentialListeners.withLock({ $0 }) { listener(user) }
        }
    }

    /// Loads every stored policy (policies outlive the stream's retention), then follows the
    /// stream from `now - retention` until cancelled.
    func run(client: RedisClient, now: @escaping @Sendable () -> Int64) async throws {
        let start = RedisStreamID.before(milliseconds: UInt64(max(0, now() - retentionSeconds)) * 1000)
        let follower = RedisStreamFollower(
            client: client, stream: streamKey, startingAfter: start, logger: logger
        ) { [weak self] entries in
            guard let self else { return }
            let t = now()
            for entry in entries {
                if let event = Self.event(from: entry) { self.apply(event, now: t) } else {
                    self.logger.warning("ignoring malformed revocation entry", metadata: ["id": "\(entry.id)"])
                }
            }
        }
        self.follower.withLock { $0 = follower }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Policies first (bounded retries): a node must not report ready without them.
                for attempt in 0..<Int.max {
                    do {
                        try await self.loadPolicies()
                        break
                    } catch {
                        if attempt % 10 == 0 { self.logger.warning("cannot load domain policies yet: \(error)") }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
                self.policiesLoaded.store(true, ordering: .releasing)
                try await follower.run()
            }
            group.addTask {
                while !Task.isCancelled {
                    if follower.status.isConnected { self.lastHealthy.store(MonotonicClock.seconds(), ordering: .relaxed) }
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private let policiesLoaded = Atomic<Bool>(false)

    func loadPolicies() async throws {
        let reply = try await redis.send(["HGETALL", policiesKey])
        guard let items = reply.array, items.count % 2 == 0 else { throw RedisError(.unexpectedReply, "HGETALL policies") }
        var policies: [String: DomainPolicy] = [:]
        for i in stride(from: 0, to: items.count, by: 2) {
            if let d = items[i].string, let p = items[i + 1].string.flatMap(PolicyCodec.decode) { policies[d] = p }
        }
        view.replacePolicies(policies)
    }

    /// Policies loaded and the stream's backlog delivered.
    public var isCaughtUp: Bool {
        policiesLoaded.load(ordering: .acquiring) && (follower.withLock { $0 }?.status.isCaughtUp ?? false)
    }

    /// Seconds since the follower was last known connected (or since start, before it ever was).
    public var secondsSinceHealthy: Int64 {
        MonotonicClock.seconds() - lastHealthy.load(ordering: .relaxed)
    }

}

/// JSON for stored policies (Foundation's coder: policies are tiny and rarely written).
enum PolicyCodec {
    static func encode(_ policy: DomainPolicy) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(policy)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ text: String) -> DomainPolicy? {
        try? JSONDecoder().decode(DomainPolicy.self, from: Data(text.utf8))
    }
}
