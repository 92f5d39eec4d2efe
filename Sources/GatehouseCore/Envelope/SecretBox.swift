public import Foundation
public import GatehouseCrypto

/// The data-key file: AES-256 keys for secrets at rest, with ids so they can rotate.
///
/// ```json
/// {"version":1,"active":"d20261130-91ab","keys":{"d20261130-91ab":"<base64url 32 bytes>"}}
/// ```
/// New envelopes use `active`; any listed key opens envelopes that name it.
public struct DataKeyFile: Codable, Sendable, Equatable {
    /// Format version (1).
    public var version: Int
    /// The id of the key new envelopes are sealed with.
    public var active: String
    /// All keys by id, base64url of exactly 32 bytes.
    public var keys: [String: String]
    /// The pepper for keyed hashes of backup codes, email codes and app passwords (base64url,
    /// 32 bytes). It never rotates with the data keys: rotating it would orphan every stored hash.
    public var pepper: String?

    /// Creates a document.
    public init(version: Int = 1, active: String, keys: [String: String], pepper: String? = nil) {
        self.version = version
        self.active = active
        self.keys = keys
        self.pepper = pepper
    }

    /// A document with one fresh random key.
    public static func generate(random: some SecureRandomSource = SystemRandom()) throws(CryptoError) -> DataKeyFile {
        let id = "d" + (try random.bytes(6)).map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
        return DataKeyFile(active: id, keys: [id: Base64URL.encode(try random.bytes(32))], pepper: Base64URL.encode(try random.bytes(32)))
    }

    /// Adds a new random key and makes it active (old envelopes still open).
    public mutating func rotate(random: some SecureRandomSource = SystemRandom()) throws(CryptoError) -> String {
        let fresh = try Self.generate(random: random)
        if pepper == nil { pepper = Self.derivedPepper(keys[active]!) }
        keys[fresh.active] = fresh.keys[fresh.active]
        active = fresh.active
        return fresh.active
    }

    /// Parses and validates.
    public init(json: Data) throws(CoreError) {
        do { self = try JSONDecoder().decode(DataKeyFile.self, from: json) } catch {
            throw CoreError(.invalidKeyFile, "data-key file is not valid JSON of the expected shape", underlying: error)
        }
        guard version == 1 else { throw CoreError(.invalidKeyFile, "unsupported data-key file version") }
        guard keys[active] != nil else { throw CoreError(.invalidKeyFile, "active data key \(active) is not in keys") }
        for (id, key) in keys {
            guard KeyringFile.isValidKeyID(id) else { throw CoreError(.invalidKeyFile, "invalid data key id") }
            guard Base64URL.decode(key)?.count == 32 else { throw CoreError(.invalidKeyFile, "data key \(id) must be base64url of 32 bytes") }
        }
        if let pepper, Base64URL.decode(pepper)?.count != 32 { throw CoreError(.invalidKeyFile, "pepper must be base64url of 32 bytes") }
    }

    /// Files written before the pepper existed derive one from their active key.
    static func derivedPepper(_ key: String) -> String {
        Base64URL.encode(HMACKey(.sha256, key: Base64URL.decode(key) ?? []).authenticationCode(for: Array("gatehouse/v1/pepper".utf8)))
    }

    /// The pepper in force.
    public var effectivePepper: [UInt8] { Base64URL.decode(pepper ?? Self.derivedPepper(keys[active]!))! }

    /// The document as JSON.
    public func jsonData() throws(CoreError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return try encoder.encode(self) } catch { throw CoreError(.invalidKeyFile, "cannot encode data keys", underlying: error) }
    }
}

/// Envelope encryption of secrets at rest (TOTP secrets, revealable app passwords).
///
/// An envelope is the text `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The AES-GCM
/// additional data is `gatehouse/v1|<key id>|<purpose>|<user>`, so a ciphertext copied to
/// another user's record, or used for another purpose, or relabelled with another key id, fails
/// to open.
public struct SecretBox: Sendable {
    private let keys: [String: [UInt8]]
    private let activeID: String
    /// Keyed hashing of codes and app passwords (HMAC-SHA256 with the server pepper).
    public let pepper: HMACKey
    private let random: any SecureRandomSource

    /// Prepares the keys of a data-key document.
    public init(_ file: DataKeyFile, random: any SecureRandomSource = SystemRandom()) {
        self.keys = file.keys.compactMapValues { Base64URL.decode($0) }
        self.activeID = file.active
        self.random = random
        self.pepper = HMACKey(.sha256, key: file.effectivePepper)
    }

    /// Loads the data-key file at `path`.
    public static func load(path: String) throws(CoreError) -> SecretBox {
        SecretBox(try DataKeyFile(json: KeyFiles.read(path: path)))
    }

    /// The id of the key new envelopes use.
    public var activeKeyID: String { activeID }

    private static func aad(keyID: String, purpose: String, user: String) -> [UInt8] {
        Array("gatehouse/v1|\(keyID)|\(purpose)|\(user)".utf8)
    }

    /// Seals `plaintext` for `user` and `purpose` (e.g. `totp`, `app-password`).
    public func seal(_ plaintext: [UInt8], user: String, purpose: String) throws(CoreError) -> String {
        let key = keys[activeID]!
        do {
            let box = try AES256GCM.seal(plaintext, key: key, aad: Self.aad(keyID: activeID, purpose: purpose, user: user), random: random)
            return "v1.\(activeID).\(Base64URL.encode(box))"
        } catch {
            throw CoreError(.crypto, "sealing failed", underlying: error)
        }
    }

    /// Opens an envelope sealed for the same `user` and `purpose`.
    public func open(_ envelope: String, user: String, purpose: String) throws(CoreError) -> [UInt8] {
        let parts = envelope.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1" else { throw CoreError(.envelopeRejected, "not a v1 envelope") }
        let keyID = String(parts[1])
        guard let key = keys[keyID] else { throw CoreError(.envelopeRejected, "unknown data key \(keyID)") }
        guard let box = Base64URL.decode(parts[2]) else { throw CoreError(.envelopeRejected, "envelope body is not base64url") }
        do {
            return try AES256GCM.open(box, key: key, aad: Self.aad(keyID: keyID, purpose: purpose, user: user))
        } catch {
            throw CoreError(.envelopeRejected, "envelope does not open for this user and purpose", underlying: error)
        }
    }
}
