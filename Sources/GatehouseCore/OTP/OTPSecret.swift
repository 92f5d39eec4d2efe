public import GatehouseCrypto

/// A fresh authenticator secret.
public enum OTPSecret {
    /// Default secret length in bytes: 160 bits, as RFC 4226 recommends and enrolment uses.
    public static let defaultLength = 20

    /// `length` bytes from the CSPRNG (at least 20).
    public static func generate(length: Int = defaultLength, random: any SecureRandomSource = SystemRandom()) throws(CryptoError) -> [UInt8] {
        precondition(length >= 20, "TOTP secrets are at least 160 bits")
        return try random.bytes(length)
    }

    /// The lengths accepted for a secret brought from elsewhere (a user import): from 80 bits,
    /// the floor some providers used (RFC 4226 asks for 128), to 1024 bits.
    public static let importedLengths: ClosedRange<Int> = 10...128

    /// A secret given as text, as a user import's `totp_secret` carries it: base32 in either case
    /// (``Base32``: ASCII letters and digits, no padding, spaces or dashes) of ``importedLengths``
    /// bytes; nil otherwise. (Not upper-cased first: Unicode upper-cases `ſ` to `S` and `ı` to `I`,
    /// which would let other spellings of a secret through.)
    public static func parse(base32 text: String) -> [UInt8]? {
        guard let secret = Base32.decode(text), importedLengths.contains(secret.count) else { return nil }
        return secret
    }
}
