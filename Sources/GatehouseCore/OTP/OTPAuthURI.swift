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
        percentDecode(bytes: Array(text.utf8)[...])
    }

    private static func percentDecode(bytes: ArraySlice<UInt8>) -> String? {
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out = [UInt8]()
        var it = bytes
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
    ///
    /// Read as bytes, the way the URI was written: the label splits at its first `:`, the query at
    /// `&` and each pair at its first `=` (a combining mark after a separator does not hide it, as
    /// it would in Swift's Characters). `digits` and `period` are plain decimal numbers; the
    /// algorithm is `SHA1`, `SHA256` or `SHA512` in any ASCII case; an issuer in the label must be
    /// the issuer parameter byte for byte. Parameter names are compared as written; unknown ones
    /// are ignored.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        let prefix = Array("otpauth://totp/".utf8)
        guard bytes.starts(with: prefix) else { return nil }
        let rest = bytes[prefix.count...]
        guard let question = rest.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        // Split the label on the literal ':' before decoding, so an escaped ':' (%3A) inside the
        // issuer or account stays part of that name.
        let rawLabel = rest[..<question]
        let labelIssuer: String?
        let account: String
        if let colon = rawLabel.firstIndex(of: UInt8(ascii: ":")) {
            guard let i = Self.percentDecode(bytes: rawLabel[..<colon]), let a = Self.percentDecode(bytes: rawLabel[(colon + 1)...]) else {
                return nil
            }
            labelIssuer = i
            account = a
        } else {
            guard let a = Self.percentDecode(bytes: rawLabel) else { return nil }
            labelIssuer = nil
            account = a
        }
        var params: [[UInt8]: String] = [:]
        for pair in rest[(question + 1)...].split(separator: UInt8(ascii: "&")) {
            guard let equals = pair.firstIndex(of: UInt8(ascii: "=")), let value = Self.percentDecode(bytes: pair[(equals + 1)...]) else {
                return nil
            }
            let name = Array(pair[..<equals])
            guard params[name] == nil else { return nil }
            params[name] = value
        }
        func parameter(_ name: StaticString) -> String? {
            params[Array(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))]
        }
        guard let secretText = parameter("secret"), let secret = Base32.decode(secretText) else { return nil }
        let issuer = parameter("issuer") ?? labelIssuer ?? ""
        if let labelIssuer, !labelIssuer.utf8.elementsEqual(issuer.utf8) { return nil }
        let algorithm: HashAlgorithm
        switch parameter("algorithm").map(Self.asciiUppercased) ?? "SHA1" {
        case "SHA1": algorithm = .sha1
        case "SHA256": algorithm = .sha256
        case "SHA512": algorithm = .sha512
        default: return nil
        }
        guard let digits = Self.plainDecimal(parameter("digits") ?? "6"), HOTP.supportedDigits.contains(digits),
              let period = Self.plainDecimal(parameter("period") ?? "30"), (1...3600).contains(period) else { return nil }
        self.init(issuer: issuer, account: account, secret: secret, algorithm: algorithm, digits: digits, period: period)
    }

    /// Upper case for ASCII letters only (Unicode's upper-casing turns `ſ` into `S`).
    private static func asciiUppercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) ? $0 - 32 : $0 }, as: UTF8.self)
    }

    /// `0` or a decimal without sign or leading zero, of at most 9 digits; nil for anything else.
    private static func plainDecimal(_ text: String) -> Int? {
        let digits = Array(text.utf8)
        guard (1...9).contains(digits.count), digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              digits.count == 1 || digits[0] != UInt8(ascii: "0") else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }
}
