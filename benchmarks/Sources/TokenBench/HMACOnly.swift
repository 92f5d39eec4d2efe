import BenchSupport
import GatehouseCore
import GatehouseCrypto

/// Gatehouse's HMAC alone (GatehouseCrypto's prepared `HMACSHA256Key`, the type the keyring
/// verifies with, same derived key) over the token's signing input: the cryptographic floor of a
/// verify, and the like-for-like partner of `openssl speed -hmac`. verify ÷ this is how much the
/// parsing around the MAC costs. (A file of its own: jwt-kit also has an `HMACKey`.)
struct HMACOnly {
    private let key: HMACSHA256Key
    private let input: [UInt8]

    init(ring: Keyring, token: String, signingInputLength: Int) throws {
        guard let derived = ring.derivedKey(kid: ring.activeKeyID, kind: .session) else { throw BenchFailure("no derived session key") }
        key = HMACSHA256Key(key: derived)
        input = Array(token.utf8.prefix(signingInputLength))
    }

    func run(_ n: Int) {
        input.withUnsafeBytes { message in
            withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { mac in
                for _ in 0..<n {
                    key.authenticate(message, into: mac)
                    blackHole(mac[0])
                }
            }
        }
    }
}
