public import Foundation
public import GatehouseCrypto
import Synchronization

/// The keyring file (docs/tokens.md): token-signing secrets with their life-cycle state.
///
/// ```json
/// {"version":1,"keys":[{"kid":"k20261130-5f2a","secret":"<base64url ≥32 bytes>","state":"active",
///   "created_at":"2026-11-30T11:00:00Z","session_alg":"HS256"}]}
/// ```
/// Exactly one key is `active` (it signs); `verify` keys still verify; `retired` keys do nothing
/// and are kept only so an operator can see what was there. `session_alg` (default `HS256`)
/// chooses how this key signs *session* tokens; `EdDSA` derives an Ed25519 key from the secret
/// (seed = HMAC-SHA256(secret, "gatehouse/v1/session/ed25519")) and publishes it in the JWKS.
public struct KeyringFile: Codable, Sendable, Equatable {
    /// A key's life-cycle state.
    public enum State: String, Codable, Sendable {
        case active, verify, retired
    }

    /// One entry.
    public struct Entry: Codable, Sendable, Equatable {
        /// Key id, `[A-Za-z0-9._-]{1,64}`.
        public var kid: String
        /// base64url secret of at least 32 bytes.
        public var secret: String
        /// State.
        public var state: State
        /// When created (RFC 3339), informational.
        public var createdAt: String?
        /// Session-token algorithm for this key.
        public var sessionAlgorithm: TokenAlgorithm?

        enum CodingKeys: String, CodingKey {
            case kid, secret, state
            case createdAt = "created_at"
            case sessionAlgorithm = "session_alg"
        }

        /// Creates an entry.
        public init(kid: String, secret: String, state: State, createdAt: String? = nil, sessionAlgorithm: TokenAlgorithm? = nil) {
            self.kid = kid
            self.secret = secret
            self.state = state
            self.createdAt = createdAt
            self.sessionAlgorithm = sessionAlgorithm
        }
    }

    /// Format version (1).
    public var version: Int
    /// The keys.
    public var keys: [Entry]

    /// Creates a keyring document.
    public init(version: Int = 1, keys: [Entry]) {
        self.version = version
        self.keys = keys
    }

    /// Parses and validates a keyring document.
    public init(json: Data) throws(CoreError) {
        do {
            self = try JSONDecoder().decode(KeyringFile.self, from: json)
        } catch {
            throw CoreError(.invalidKeyFile, "keyring is not valid JSON of the expected shape", underlying: error)
        }
        try validate()
    }

    /// The document as pretty JSON.
    public func jsonData() throws(CoreError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { return try encoder.encode(self) } catch {
            throw CoreError(.invalidKeyFile, "cannot encode keyring", underlying: error)
        }
    }

    /// Checks the invariants: version 1, exactly one active key, unique well-formed kids,
    /// secrets of at least 32 bytes.
    public func validate() throws(CoreError) {
        guard version == 1 else { throw CoreError(.invalidKeyFile, "unsupported keyring version \(version)") }
        guard keys.filter({ $0.state == .active }).count == 1 else {
            throw CoreError(.invalidKeyFile, "keyring must have exactly one active key")
        }
        var seen = Set<String>()
        for key in keys {
            guard Self.isValidKeyID(key.kid) else { throw CoreError(.invalidKeyFile, "invalid kid (allowed: A-Z a-z 0-9 . _ -, 1 to 64)") }
            guard seen.insert(key.kid).inserted else { throw CoreError(.invalidKeyFile, "duplicate kid \(key.kid)") }
            guard let secret = Base64URL.decode(key.secret), secret.count >= 32 else {
                throw CoreError(.invalidKeyFile, "key \(key.kid): secret must be base64url of at least 32 bytes")
            }
        }
    }

    /// True for `[A-Za-z0-9._-]{1,64}`.
    public static func isValidKeyID(_ kid: String) -> Bool {
        let bytes = Array(kid.utf8)
        return (1...64).contains(bytes.count) && bytes.allSatisfy { b in
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    /// A new random entry with a kid of the form `k<yyyymmdd>-<8 hex>`.
    public static func newEntry(
        state: State, sessionAlgorithm: TokenAlgorithm? = nil, now: Date = Date(),
        random: some SecureRandomSource = SystemRandom()
    ) throws(CryptoError) -> Entry {
        let secret = try random.bytes(32)
        let suffix = try random.bytes(4).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let day = ISO8601DateFormatter.string(from: now, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
            .replacingOccurrences(of: "-", with: "")
        let created = ISO8601DateFormatter.string(from: now, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withInternetDateTime])
        return Entry(kid: "k\(day)-\(suffix)", secret: Base64URL.encode(secret), state: state, createdAt: created, sessionAlgorithm: sessionAlgorithm)
    }

    /// Rotation step 1: a new active key; the old active key becomes `verify`, so tokens it signed
    /// keep working until they expire.
    public mutating func rotate(sessionAlgorithm: TokenAlgorithm? = nil, random: some SecureRandomSource = SystemRandom()) throws(CryptoError) -> Entry {
        let inherited = sessionAlgorithm ?? keys.first(where: { $0.state == .active })?.sessionAlgorithm
        for i in keys.indices where keys[i].state == .active { keys[i].state = .verify }
        let entry = try Self.newEntry(state: .active, sessionAlgorithm: inherited, random: random)
        keys.append(entry)
        return entry
    }

    /// Rotation step 2: stop verifying with `kid` (after the longest token lifetime has passed).
    public mutating func retire(kid: String) throws(CoreError) {
        guard let i = keys.firstIndex(where: { $0.kid == kid }) else { throw CoreError(.invalidParameter, "no key \(kid)") }
        guard keys[i].state != .active else { throw CoreError(.invalidParameter, "the active key cannot be retired; rotate first") }
        keys[i].state = .retired
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A keyring prepared for signing and verifying: derived per-kind HMAC keys and Ed25519 keys are
/// computed once when the file is loaded. Immutable; a reload makes a new one.
public final class Keyring: Sendable {
    // a class, so handing a key around is one retain, not five (kid, kidBytes, hmac,
    // signingKey, encodedHeaders) plus a 100-byte copy.
    final class PreparedKey: Sendable {
        init(kid: String, kidBytes: [UInt8], state: KeyringFile.State, sessionAlgorithm: TokenAlgorithm, hmac: [HMACKey],
             signingKey: Ed25519PrivateKey?, encodedHeaders: [[UInt8]]) {
            self.kid = kid; self.kidBytes = kidBytes; self.state = state; self.sessionAlgorithm = sessionAlgorithm
            sessionHMAC = HMACSHA256Key(hmac[TokenKind.session.rawValue]); rememberHMAC = HMACSHA256Key(hmac[TokenKind.remember.rawValue])
            challengeHMAC = HMACSHA256Key(hmac[TokenKind.challenge.rawValue]); resetHMAC = HMACSHA256Key(hmac[TokenKind.reset.rawValue])
            self.signingKey = signingKey; self.encodedHeaders = encodedHeaders
        }
        let kid: String
        let kidBytes: [UInt8]
        let state: KeyringFile.State
        let sessionAlgorithm: TokenAlgorithm
        // The per-kind HMAC-SHA256 keys, each a stored `let` rather than an array element (an
        // element is copied out before a method runs on it, with a retain of the array), and
        // each the two digest states alone (`HMACSHA256Key`, no enum payload to copy).
        private let sessionHMAC: HMACSHA256Key
        private let rememberHMAC: HMACSHA256Key
        private let challengeHMAC: HMACSHA256Key
        private let resetHMAC: HMACSHA256Key
        let signingKey: Ed25519PrivateKey?
        /// base64url of the protected header, per kind, precomputed for signing.
        let encodedHeaders: [[UInt8]]

        func algorithm(for kind: TokenKind) -> TokenAlgorithm {
            kind == .session ? sessionAlgorithm : .hs256
        }

        /// Writes the HMAC-SHA256 of `message` under this key's derived key for `kind` to the
        /// first 32 bytes of `mac`.
        func authenticate(_ kind: TokenKind, _ message: UnsafeRawBufferPointer, into mac: UnsafeMutableRawBufferPointer) {
            switch kind {
            case .session: sessionHMAC.authenticate(message, into: mac)
            case .remember: rememberHMAC.authenticate(message, into: mac)
            case .challenge: challengeHMAC.authenticate(message, into: mac)
            case .reset: resetHMAC.authenticate(message, into: mac)
            }
        }
    }

    /// Keys that may verify (active and verify), active first.
    let verifying: [PreparedKey]
    /// The document this was made from.
    public let file: KeyringFile

    /// Prepares a validated keyring document.
    public init(_ file: KeyringFile) throws(CoreError) {
        try file.validate()
        var prepared: [PreparedKey] = []
        for entry in file.keys where entry.state != .retired {
            let secret = Base64URL.decode(entry.secret)!  // validated above
            let master = HMACKey(.sha256, key: secret)
            let hmac = TokenKind.allCases.map { kind in
                HMACKey(.sha256, key: master.authenticationCode(for: Array(kind.derivationLabel.utf8)))
            }
            let sessionAlgorithm = entry.sessionAlgorithm ?? .hs256
            var signingKey: Ed25519PrivateKey?
            if sessionAlgorithm == .edDSA {
                let seed = master.authenticationCode(for: Array("gatehouse/v1/session/ed25519".utf8))
                do { signingKey = try Ed25519PrivateKey(seed: seed) } catch {
                    throw CoreError(.crypto, "cannot derive Ed25519 key for \(entry.kid)", underlying: error)
                }
            }
            let headers = TokenKind.allCases.map { kind -> [UInt8] in
                var w = JSONWriter(capacity: 96)
                w.raw("{\"alg\":")
                w.string((kind == .session ? sessionAlgorithm : .hs256).rawValue)
                w.raw(",\"kid\":")
                w.string(entry.kid)
                w.raw(",\"typ\":")
                w.string(kind.typ)
                w.raw("}")
                var out = [UInt8]()
                w.bytes.withUnsafeBytes { Base64URL.encode($0, into: &out) }
                return out
            }
            prepared.append(PreparedKey(
                kid: entry.kid, kidBytes: Array(entry.kid.utf8), state: entry.state,
                sessionAlgorithm: sessionAlgorithm, hmac: hmac, signingKey: signingKey, encodedHeaders: headers
            ))
        }
        self.verifying = prepared.filter { $0.state == .active } + prepared.filter { $0.state != .active }
        self.file = file
    }

    /// The active key's id.
    public var activeKeyID: String { verifying.first(where: { $0.state == .active })!.kid }

    /// The derived HMAC key of `kid` for `kind` (operators and interop tests use it).
    public func derivedKey(kid: String, kind: TokenKind) -> [UInt8]? {
        guard let entry = file.keys.first(where: { $0.kid == kid }), let secret = Base64URL.decode(entry.secret) else { return nil }
        return HMACKey(.sha256, key: secret).authenticationCode(for: Array(kind.derivationLabel.utf8))
    }

    /// HMAC keys derived for `label` (e.g. `gatehouse/v1/csrf`) from every key that may verify,
    /// the active key's first: what the active key makes, every verifying key accepts, so a key
    /// rotation does not break forms already on screen.
    public func derivedKeys(label: String) -> [HMACKey] {
        verifying.compactMap { prepared in
            guard let entry = file.keys.first(where: { $0.kid == prepared.kid }), let secret = Base64URL.decode(entry.secret) else { return nil }
            return HMACKey(.sha256, key: HMACKey(.sha256, key: secret).authenticationCode(for: Array(label.utf8)))
        }
    }

    /// The JWKS document (RFC 7517) with the Ed25519 public keys of keys that may verify
    /// session tokens. Empty `keys` when no key uses EdDSA.
    public var jwks: String {
        var w = JSONWriter()
        w.raw("{\"keys\":[")
        var first = true
        for key in verifying {
            guard let signing = key.signingKey else { continue }
            if !first { w.raw(",") }
            first = false
            w.raw("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"kid\":")
            w.string(key.kid)
            w.raw(",\"x\":")
            w.string(Base64URL.encode(signing.publicKey.rawRepresentation))
            w.raw("}")
        }
        w.raw("]}")
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// Loads and prepares the keyring file at `path`.
    public static func load(path: String) throws(CoreError) -> Keyring {
        try Keyring(KeyringFile(json: KeyFiles.read(path: path)))
    }
}

/// Holds the current keyring and swaps it atomically on reload, so verification running on other
/// threads always sees one whole keyring, old or new — never a mix, never a pause.
public final class KeyringStore: Sendable {
    private let current: Mutex<Keyring>

    /// Starts with `keyring`.
    public init(_ keyring: Keyring) { current = Mutex(keyring) }

    /// The keyring in force now.
    public var keyring: Keyring { current.withLock { $0 } }

    /// Replaces the keyring.
    public func replace(with keyring: Keyring) { current.withLock { $0 = keyring } }

    /// Re-reads `path`; on any error the current keyring stays in force and the error is thrown.
    @discardableResult
    public func reload(path: String) throws(CoreError) -> Keyring {
        let fresh = try Keyring.load(path: path)
        replace(with: fresh)
        return fresh
    }
}
