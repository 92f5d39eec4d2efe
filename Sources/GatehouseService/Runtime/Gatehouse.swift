import Foundation
public import GatehouseCore
import GatehouseCrypto
public import GatehouseRedis
public import Logging
public import ServiceLifecycle
import Synchronization

/// One Gatehouse node's service layer: the Redis client, token authority, secret box, the
/// revocation view and feed, the Redis clock and the code checker, and every operation of
/// the HTTP API (docs/api.md) as a method. Stateless apart from caches that the feed keeps honest.
public final class Gatehouse: Sendable, Service {
    public let configuration: GatehouseConfiguration
    public let redis: RedisClient
    public let redisConfiguration: RedisConfiguration
    public let tokens: TokenAuthority
    public let secrets: SecretBox
    public let view: RevocationView
    public let feed: RevocationFeed
    public let clock: RedisClock
    public let logger: Logger
    let keys: RedisKeys
    let checker: CodeChecker
    let random: any SecureRandomSource
    let mailer: any CodeMailer
    let totpCache: TOTPCache
    /// Refused second steps are logged (at notice) at most 20 times per 10 s per node.
    let failureLog = LogBudget(lines: 20, window: .seconds(10))
    /// Moves the clocks in tests (``ClockOffset``); nil on a served node.
    let clockOffset: ClockOffset?

    /// Builds a node from configuration, a keyring store and a secret box.
    public init(
        configuration: GatehouseConfiguration, redisURL: String, keyring: KeyringStore, secrets: SecretBox,
        mailer: any CodeMailer = NoMailer(), clockOffset: ClockOffset? = nil, logger: Logger
    ) throws(ServiceError) {
        self.configuration = configuration
        self.clockOffset = clockOffset
        self.mailer = mailer
        self.logger = logger
        self.totpCache = TOTPCache(capacity: configuration.totpCacheEntries, digits: configuration.totp.digits, period: configuration.totp.period)
        let url: RedisURL
        do { url = try RedisURL(redisURL) } catch { throw ServiceError(.invalidRequest, "GATEHOUSE_REDIS_URL: \(error.message)") }
        var redisConfiguration = RedisConfiguration(url: url)
        redisConfiguration.poolSize = configuration.redisConnections
        redisConfiguration.eventLoopConnections = configuration.redisLoopConnections
        redisConfiguration.connectTimeout = .seconds(1)
        redisConfiguration.commandTimeout = .seconds(2)
        redisConfiguration.clientName = "gatehouse"
        self.redisConfiguration = redisConfiguration
        self.redis = RedisClient(configuration: redisConfiguration, logger: logger)
        self.keys = RedisKeys(prefix: configuration.redisPrefix)
        self.tokens = TokenAuthority(issuer: configuration.issuer, keys: keyring)
        self.secrets = secrets
        self.view = RevocationView()
        self.feed = RevocationFeed(
            redis: redis, keys: keys, view: view,
            retentionSeconds: max(configuration.lifetimes.sessionAbsoluteSeconds, Int64(DomainPolicy.rememberDeviceDaysRange.upperBound) * 86400) + 3600,
            logger: logger
        )
        self.clock = RedisClock(client: redis, logger: logger)
        self.checker = CodeChecker(redis: redis, settings: configuration.throttle)
        self.random = SystemRandom()
        feed.onCredentialsChanged { [totpCache] user in totpCache.remove(user) }
    }

    /// Runs the Redis client, the clock sampler and the revocation follower until shutdown.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.redis.run() }
            group.addTask { try await self.clock.run() }
            group.addTask {
                try await self.feed.run(client: self.redis) { Self.unixNow() }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Local wall-clock seconds (token times).
    static func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// Now, for token times.
    public var now: Int64 { Self.unixNow() + (clockOffset?.seconds ?? 0) }

    /// Redis's clock, for OTP steps; the local clock until the first sample.
    var redisNow: Int64 { clock.lastSample == nil ? now : clock.nowSeconds() + (clockOffset?.seconds ?? 0) }

    // MARK: Readiness

    /// Why the node is not ready, or nil when it is.
    public func notReadyReason() async -> String? {
        do { try await redis.ping() } catch { return "redis unreachable" }
        guard feed.isCaughtUp else { return "revocation feed not caught up" }
        guard let sample = clock.lastSample else { return "redis clock not sampled yet" }
        if abs(sample.offsetMicroseconds) > Int64(configuration.totp.maximumClockOffsetSeconds) * 1_000_000 {
            return "clock offset to redis is \(sample.offsetMicroseconds / 1_000_000) s"
        }
        return nil
    }

    // MARK: Keys

    func userKey(_ user: UserID, _ parts: String...) -> String {
        Self.userKey(prefix: keys.prefix, user, parts)
    }

    /// `<prefix>:{<user>}:<part>:…`: what `RedisKeys.user` builds, without its checks (a UserID is
    /// already lower-cased and free of braces: its initialiser refuses them). This runs several
    /// times per request.
    static func userKey(prefix: String, _ user: UserID, _ parts: String...) -> String {
        userKey(prefix: prefix, user, parts)
    }

    static func userKey(prefix: String, _ user: UserID, _ parts: [String]) -> String {
        var key = prefix
        key.reserveCapacity(prefix.utf8.count + user.value.utf8.count + 32)
        key += ":{"
        key += user.value
        key += "}"
        for p in parts {
            key += ":"
            key += p
        }
        return key
    }

    /// The per-address failure counter. Without a `client_ip` the counter is the user's own
    /// (a shared "unknown" bucket would let one caller exhaust everybody's budget).
    func ipKey(_ clientIP: String?, user: UserID) -> String {
        guard let prefix = clientIP.flatMap(ipBudgetKey) else { return userKey(user, "ip", "none") }
        return keys.global("ip", "{\(prefix)}")
    }

    /// A random url-safe id of `byteCount` bytes (default 16).
    func newID(byteCount: Int = 16) throws(ServiceError) -> String {
        do { return Base64URL.encode(try random.bytes(byteCount)) } catch { throw ServiceError(.unavailable, "random source failed", underlying: error) }
    }

    /// Session ids are 11 random bytes (88 bits; 15 characters): unique far beyond any session
    /// count, and short enough that Swift stores the verified `sid` inline — one heap allocation
    /// less on every `/v1/auth`. The id is not a secret (the signed token is).
    func newSessionID() throws(ServiceError) -> String { try newID(byteCount: 11) }

    /// The keyed hash of a code or password (hex).
    func keyedHash(_ text: String) -> String {
        Self.keyedHash(text, pepper: secrets.pepper)
    }

    /// HMAC-SHA-256 of `text` with `pepper`, lower-case hex.
    static func keyedHash(_ text: String, pepper: HMACKey) -> String {
        let mac = pepper.authenticationCode(for: Array(text.utf8))
        return String(unsafeUninitializedCapacity: mac.count * 2) { buffer in
            var i = 0
            for byte in mac {
                buffer[i] = hexDigits[Int(byte >> 4)]
                buffer[i + 1] = hexDigits[Int(byte & 0x0f)]
                i += 2
            }
            return i
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}

/// Decrypted TOTP secrets by user, with their credential version, so a code check needs no second
/// Redis read after login/start. Emptied per user by the feed's `cred` entries, and the
/// code-check script refuses a stale version anyway.
///
/// Bounded by `capacity` entries in two generations: new entries go into the current one; when it
/// holds half the capacity it becomes the previous one and the old previous one is dropped. A hit
/// in the previous generation moves the entry forward, so users in the middle of signing in stay
/// while the oldest go. The secret is kept, not the prepared key: a prepared key is sized for
/// SHA-512 (about 450 bytes) and preparing it again costs two hash blocks per check. An entry is
/// one 80-byte slot of a hash table kept under three-quarters full, with nothing else on the heap:
/// the user is held as a 128-bit keyed digest of the name (a name of 16 bytes or more would be a
/// heap object of its own, about 80 bytes more per entry), the version and a secret of up to 32
/// bytes inline. The default, 180,000, is two generations of 90,000, each in a table of 131,072
/// slots (10 MiB). The two tables are kept for the cache's life: a new generation empties and
/// reuses the dropped one's table.
package final class TOTPCache: Sendable {
    package struct Entry: Sendable {
        package var version: String
        package var totp: TOTP
    }
    private struct Stored {
        var version: String
        var secret: InlineSecret
    }
    /// A secret of up to 32 bytes (20 is usual) held in the entry itself; longer ones on the heap.
    private struct InlineSecret {
        private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        private var count: UInt8 = 0
        private var long: [UInt8]?

        init(_ bytes: [UInt8]) {
            guard bytes.count <= 32 else {
                long = bytes
                return
            }
            count = UInt8(bytes.count)
            withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes) }
        }

        var bytes: [UInt8] {
            if let long { return long }
            return withUnsafeBytes(of: words) { Array($0.prefix(Int(count))) }
        }
    }
    /// A user's name as the cache holds it: two 64-bit hashes from Swift's `Hasher` (SipHash-1-3,
    /// seeded at random per process), each over a random value of this cache followed by the name.
    /// Two users share one only by a 2⁻¹²⁸ chance per pair, and nobody outside the process sees the
    /// digests to aim at one.
    private struct UserDigest: Hashable {
        var high: UInt64
        var low: UInt64
    }
    private struct Generations {
        var current: [UserDigest: Stored] = [:]
        var previous: [UserDigest: Stored] = [:]
        /// Tables made at a generation's start (the first generation's grows as it fills).
        var tablesMade = 0
    }
    private let generations = Mutex(Generations())
    private let digestKeys: (UInt64, UInt64)
    /// Most entries held (both generations); 0 caches nothing.
    package let capacity: Int
    let digits: Int
    let period: Int

    package init(capacity: Int, digits: Int, period: Int) {
        self.capacity = capacity
        self.digits = digits
        self.period = period
        var random = SystemRandomNumberGenerator()
        digestKeys = (random.next(), random.next())
    }

    private func digest(_ user: String) -> UserDigest {
        var high = Hasher(), low = Hasher()
        high.combine(digestKeys.0)
        high.combine(user)
        low.combine(digestKeys.1)
        low.combine(user)
        return UserDigest(high: UInt64(bitPattern: Int64(high.finalize())), low: UInt64(bitPattern: Int64(low.finalize())))
    }

    /// How many entries are held, for tests and metrics.
    package var count: Int { generations.withLock { $0.current.count + $0.previous.count } }

    /// How many tables were made when a generation started, for tests: one for the second
    /// generation, none after it.
    package var tablesMade: Int { generations.withLock { $0.tablesMade } }

    package func get(_ user: String) -> Entry? {
        let key = digest(user)
        let stored: Stored? = generations.withLock { g in
            if let hit = g.current[key] { return hit }
            guard let hit = g.previous.removeValue(forKey: key) else { return nil }
            Self.insert(key, hit, into: &g, capacity: capacity)
            return hit
        }
        guard let stored, let totp = try? TOTP(secret: stored.secret.bytes, digits: digits, period: period) else { return nil }
        return Entry(version: stored.version, totp: totp)
    }

    /// Keeps `secret` (already checked to make a TOTP) for `user` at credential `version`.
    package func put(_ user: String, version: String, secret: [UInt8]) {
        guard capacity > 0 else { return }
        let key = digest(user)
        generations.withLock { g in
            g.previous.removeValue(forKey: key)
            Self.insert(key, Stored(version: version, secret: InlineSecret(secret)), into: &g, capacity: capacity)
        }
    }

    private static func insert(_ key: UserDigest, _ stored: Stored, into g: inout Generations, capacity: Int) {
        let generation = max(1, capacity / 2)
        if g.current[key] == nil, g.current.count >= generation {
            // The full generation becomes the previous one, and the dropped one's table is emptied
            // in place and filled again: after the second generation starts, the cache allocates
            // and frees nothing. (A table made new for each generation and the dropped one freed
            // left the freed 10 MiB with whichever thread's malloc arena it came from, where
            // `malloc_trim` does not reach the top of a thread's heap; the next table, made on
            // another thread, then added 10 MiB for good.)
            swap(&g.previous, &g.current)
            g.current.removeAll(keepingCapacity: true)
            // The second generation's table is made at full size at once, rather than grown by
            // doubling through every smaller size.
            let before = g.current.capacity
            g.current.reserveCapacity(generation)
            if g.current.capacity != before { g.tablesMade += 1 }
        }
        g.current[key] = stored
    }

    package func remove(_ user: String) {
        let key = digest(user)
        generations.withLock { g in
            g.current.removeValue(forKey: key)
            g.previous.removeValue(forKey: key)
        }
    }
}
