public import GatehouseCrypto

/// The `otpauth://totp/…` URI that authenticator apps scan (Google's Key Uri Format).
///
/// Label is `issuer:account`; both parts and the `issuer` parameter are percent-encoded with
/// everything except RFC 3986 unreserved characters escaped (so `@` → `%40`, space → `%20`,
/// `:` inside a name → `%3A`), which every authenticator we know decodes.
public struct OTPAuthURI: Sendable, Equatable {
    /// The service name shown in the app.
    public var issuer: String
    /// The account (user) name.
    public var account: String
    /// The raw secret.
    public var secret: [UInt8]
    /// Hash function.
    public var algorithm: HashAlgorithm
    /// Digits.
    public var digits: Int
    /// Period in seconds.
    public var period: Int

    /// Creates a URI description.
    public init(issuer: String, account: String, secret: [UInt8], algorithm: HashAlgorithm = .sha1, digits: Int = 6, period: Int = 30) {
        self.issuer = issuer
        self.account = account
        self.secret = secret
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }

    /// The URI text.
    public var uri: String {
        let label = Self.percentEncode(issuer) + ":" + Self.percentEncode(account)
        return "otpauth://totp/\(label)?secret=\(Base32.encode(secret))&issuer=\(Self.percentEncode(issuer))"
            + "&algorithm=\(algorithm.rawValue.uppercased())&digits=\(digits)&period=\(period)"
    }

    /// Percent-encodes every byte that is not an RFC 3986 unreserved character.
    public static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes; nil on a malformed escape or invalid UTF-8.
    public static func percentDecode(_ text: some StringProtocol) -> String? {
        var out = [UInt8]()
        var it = Array(text.utf8)[...]
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                guard let h = it.popFirst().flatMap(hexValue), let l = it.popFirst().flatMap(hexValue) else { return nil }
                out.append(h << 4 | l)
            } else {
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Parses an `otpauth://totp/` URI (used for imports and tests). Strict: unknown algorithms,
    /// bad digits or period, bad base32 or a label/issuer mismatch give nil.
    public init?(parsing text: String) {
        let prefix = "otpauth://totp/"
        guard text.hasPrefix(prefix) else { return nil }
        let rest = text.dropFirst(prefix.count)
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        // Split the label on the literal ':' before decoding, so an escaped ':' (%3A) inside the
        // issuer or account stays part of that name.
        let rawLabel = parts[0]
        let labelIssuer: String?
        let account: String
        if let colon = rawLabel.firstIndex(of: ":") {
            guard let i = Self.percentDecode(rawLabel[..<colon]), let a = Self.percentDecode(rawLabel[rawLabel.index(after: colon)...]) else { return nil }
            labelIssuer = i
            account = a
        } else {
            guard let a = Self.percentDecode(rawLabel) else { return nil }
            labelIssuer = nil
            account = a
        }
        var params: [String: String] = [:]
        for pair in parts[1].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, let value = Self.percentDecode(kv[1]), params[String(kv[0])] == nil else { return nil }
            params[String(kv[0])] = value
        }
        guard let secretText = params["secret"], let secret = Base32.decode(secretText) else { return nil }
        let issuer = params["issuer"] ?? labelIssuer ?? ""
        if let labelIssuer, labelIssuer != issuer { return nil }
        let algorithm: HashAlgorithm
        switch params["algorithm"]?.uppercased() ?? "SHA1" {
        case "SHA1": algorithm = .sha1
        case "SHA256": algorithm = .sha256
        case "SHA512": algorithm = .sha512
        default: return nil
        }
        guard let digits = Int(params["digits"] ?? "6"), HOTP.supportedDigits.contains(digits),
              let period = Int(params["period"] ?? "30"), (1...3600).contains(period) else { return nil }
        self.init(issuer: issuer, account: account, secret: secret, algorithm: algorithm, digits: digits, period: period)
    }
}
