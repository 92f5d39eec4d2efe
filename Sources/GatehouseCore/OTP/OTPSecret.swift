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
}
