/// A user: an email address `local@domain`, lower-cased, at most 254 bytes (docs/api.md, Users).
public struct UserID: Hashable, Sendable, CustomStringConvertible {
    /// The normalised address.
    public let value: String
    /// The part after the last `@`.
    public let domain: String

    /// Validates and normalises `text`; nil for anything that is not a plausible address.
    ///
    /// Refused: empty local part or domain, whitespace or control characters, more than 254
    /// bytes, and `{`/`}` (they would break the Redis hash tag that keeps a user's keys together).
    public init?(_ text: String) {
        let lowered = text.lowercased()
        let bytes = Array(lowered.utf8)
        guard (3...254).contains(bytes.count) else { return nil }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { return nil }
        for b in bytes {
            if b <= 0x20 || b == 0x7F || b == UInt8(ascii: "{") || b == UInt8(ascii: "}") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                return nil
            }
        }
        guard let domain = DomainName(String(decoding: bytes[(at + 1)...], as: UTF8.self)) else { return nil }
        self.value = lowered
        self.domain = domain.value
    }

    public var description: String { value }
}

/// A mail domain: lower-cased labels of letters, digits and hyphens (or IDNA `xn--`), dots between.
public struct DomainName: Hashable, Sendable {
    /// The normalised domain.
    public let value: String

    /// Validates `text`; nil when it is not a domain name.
    public init?(_ text: String) {
        let lowered = text.lowercased()
        let labels = lowered.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...253).contains(lowered.utf8.count), !labels.isEmpty else { return nil }
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-" else { return nil }
            guard label.utf8.allSatisfy({ b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-")
            }) else { return nil }
        }
        self.value = lowered
    }
}
