import GatehouseCrypto
public import GatehouseService

/// The configured API keys, held only as SHA-256 hashes and compared in constant time.
public struct APIKeyRegistry: Sendable {
    struct Entry: Sendable {
        var name: String
        var scopes: Set<APIKeyConfiguration.Scope>
        var hash: [UInt8]
    }
    private let entries: [Entry]

    /// Hashes the configured secrets; the plain secrets are not kept.
    public init(_ keys: [APIKeyConfiguration]) {
        entries = keys.map { Entry(name: $0.name, scopes: $0.scopes, hash: Digest.hash(.sha256, Array($0.secret.utf8))) }
    }

    /// Who presented `secret`, if anyone. Every entry is compared (no early exit).
    func authenticate(_ secret: Substring) -> Entry? {
        let hash = Digest.hash(.sha256, Array(secret.utf8))
        var found: Entry?
        for entry in entries where ConstantTime.equals(entry.hash, hash) {
            found = entry
        }
        return found
    }
}
