import GatehouseCore
import GatehouseService
import Testing

/// The node's cache of TOTP secrets: bounded in two generations, recently used users kept.
@Suite("TOTP cache")
struct TOTPCacheTests {
    static let secret: [UInt8] = Array("12345678901234567890".utf8)  // RFC 6238's SHA-1 secret

    @Test("an entry gives back the version and a TOTP that makes the RFC 6238 code")
    func roundTrip() throws {
        let cache = TOTPCache(capacity: 10, digits: 8, period: 30)
        cache.put("a@example.com", version: "7", secret: Self.secret)
        let entry = try #require(cache.get("a@example.com"))
        #expect(entry.version == "7")
        // RFC 6238 appendix B: T = 59 s gives 94287082 with SHA-1 and 8 digits.
        #expect(HOTP.format(entry.totp.code(step: 59 / 30), digits: 8) == "94287082")
        #expect(cache.get("b@example.com") == nil)
        cache.remove("a@example.com")
        #expect(cache.get("a@example.com") == nil)
    }

    @Test("at most the capacity; the oldest generation goes, a user read since stays")
    func generations() {
        let cache = TOTPCache(capacity: 4, digits: 6, period: 30)
        for user in ["a", "b", "c"] { cache.put(user, version: "1", secret: Self.secret) }
        // a and b filled the current generation (2 of 4); c started a new one.
        #expect(cache.count == 3)
        #expect(cache.get("a") != nil)  // moved forward: current is now c, a
        cache.put("d", version: "1", secret: Self.secret)  // current full: c, a become previous
        #expect(cache.count == 3)
        #expect(cache.get("b") == nil, "b was in the generation dropped")
        for user in ["a", "c", "d"] { #expect(cache.get(user) != nil, "\(user)") }
        for i in 0..<100 { cache.put("u\(i)", version: "1", secret: Self.secret) }
        #expect(cache.count <= 4)
    }

    @Test("the two tables are kept: many generations make one table, for the second generation")
    func tablesReused() throws {
        let cache = TOTPCache(capacity: 200, digits: 6, period: 30)
        for i in 0..<2_000 { cache.put("u\(i)", version: "1", secret: Self.secret) }  // 20 generations
        #expect(cache.tablesMade == 1)
        #expect(cache.count == 200)
        // The reused tables hold the newest users, as new ones would: u1900...u1999 in the
        // current generation, u1800...u1899 in the previous (a hit there moves the user forward,
        // so only one is read from it).
        for i in 1_900..<2_000 { #expect(cache.get("u\(i)") != nil, "u\(i)") }
        #expect(cache.get("u1799") == nil)
        #expect(cache.get("u1850") != nil)
    }

    @Test("capacity 0 keeps nothing")
    func disabled() {
        let cache = TOTPCache(capacity: 0, digits: 6, period: 30)
        cache.put("a", version: "1", secret: Self.secret)
        #expect(cache.get("a") == nil && cache.count == 0)
    }
}

extension TOTPCacheTests {
    @Test("secrets of every length give back the same codes", arguments: [10, 20, 32, 33, 64])
    func secretLengths(length: Int) throws {
        let secret = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let cache = TOTPCache(capacity: 10, digits: 6, period: 30)
        cache.put("a", version: "1", secret: secret)
        let cached = try #require(cache.get("a"))
        let direct = try TOTP(secret: secret, digits: 6, period: 30)
        for step: UInt64 in [0, 1, 59_000_000] { #expect(cached.totp.code(step: step) == direct.code(step: step)) }
    }
}

extension TOTPCacheTests {
    @Test("users are held apart however alike their names: each gets its own version and secret back")
    func manyUsers() throws {
        let cache = TOTPCache(capacity: 100_000, digits: 6, period: 30)  // one generation holds them all
        let users = (0..<20_000).map { "user-\($0)@example.com" } + ["", "a", "A", "user-1@example.com "]
        for (i, user) in users.enumerated() {
            cache.put(user, version: String(i), secret: (0..<20).map { UInt8(truncatingIfNeeded: i &+ $0) })
        }
        #expect(cache.count == users.count)
        for (i, user) in users.enumerated() {
            let entry = try #require(cache.get(user), "\(user)")
            #expect(entry.version == String(i))
            let direct = try TOTP(secret: (0..<20).map { UInt8(truncatingIfNeeded: i &+ $0) }, digits: 6, period: 30)
            #expect(entry.totp.code(step: 1) == direct.code(step: 1))
        }
        #expect(cache.get("user-20000@example.com") == nil)
    }
}
