import Foundation

/// A user: an email address `local@domain` in its one canonical form, at most 254 bytes
/// (docs/api.md, Users).
public struct UserID: Hashable, Sendable, CustomStringConvertible {
    /// The canonical address.
    public let value: String
    /// The part after the last `@`.
    public let domain: String

    /// Validates `text` and puts it in canonical form (``canonical(_:)``); nil for anything that
    /// is not a plausible address or has no canonical form.
    ///
    /// Refused: empty local part or domain, whitespace or control characters, more than 254
    /// bytes, and `{`/`}` (they would break the Redis hash tag that keeps a user's keys together).
    public init?(_ text: String) {
        guard let canonical = Self.canonical(text) else { return nil }
        let bytes = Array(canonical.utf8)
        guard (3...254).contains(bytes.count) else { return nil }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { return nil }
        for b in bytes {
            if b <= 0x20 || b == 0x7F || b == UInt8(ascii: "{") || b == UInt8(ascii: "}") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                return nil
            }
        }
        guard let domain = DomainName(String(decoding: bytes[(at + 1)...], as: UTF8.self)) else { return nil }
        self.init(value: canonical, domain: domain.value)
    }

    /// The user of a token this deployment's keyring signed: the address was validated when the
    /// token was made, so an all-ASCII canonical address with something on each side of its last
    /// `@` is taken as it is (a byte scan, nothing built but the domain); anything else goes
    /// through ``init(_:)``'s full check.
    public init?(signed text: String) {
        let utf8 = text.utf8
        // One pass: no byte outside ASCII and no upper-case letter (the canonical form of ASCII).
        guard utf8.count <= 254, !utf8.contains(where: { $0 >= 0x80 || (0x41...0x5A).contains($0) }),
              let at = utf8.lastIndex(of: UInt8(ascii: "@")), at != utf8.startIndex, utf8.index(after: at) != utf8.endIndex
        else {
            self.init(text)
            return
        }
        self.init(value: text, domain: String(text[utf8.index(after: at)...]))
    }

    private init(value: String, domain: String) {
        self.value = value
        self.domain = domain
    }

    /// The one form an address is stored, compared and signed in — the only place it is made:
    ///
    /// - all ASCII: ASCII lower-casing (`Kate@Example.org` → `kate@example.org`);
    /// - otherwise refused (nil) when any character is a control, format (bidi controls, zero-width
    ///   characters, the BOM), separator, private-use or unassigned character, or a
    ///   compatibility character (one that NFKC changes: the KELVIN SIGN, full-width letters,
    ///   ligatures…), so no address can pass for another one that looks the same; else put in
    ///   Unicode NFC, lower-cased, and in NFC again (`Jose\u{301}` and `José` are one user).
    public static func canonical(_ text: String) -> String? {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            return String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        }
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
                return nil
            default:
                break
            }
            if scalar.properties.isDefaultIgnorableCodePoint { return nil }
            let alone = String(scalar)
            guard alone.precomposedStringWithCompatibilityMapping.unicodeScalars.elementsEqual(alone.unicodeScalars) else { return nil }
        }
        return text.precomposedStringWithCanonicalMapping.lowercased().precomposedStringWithCanonicalMapping
    }

    /// Whether `text` is in canonical form (a signed token's `sub` must be). For all-ASCII text
    /// (nearly every address) that is a byte scan with nothing built: the token was signed for a
    /// valid address, so only the form is in question.
    public static func isCanonical(_ text: String) -> Bool {
        var ascii = true
        for b in text.utf8 {
            if b >= 0x80 { ascii = false; break }
            if (0x41...0x5A).contains(b) { return false }
        }
        if ascii { return !text.isEmpty }
        guard let user = UserID(text) else { return false }
        return user.value.unicodeScalars.elementsEqual(text.unicodeScalars)
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
