/// The one error type of `GatehouseCore` outside the token verifier (which has `TokenError`, so
/// that its hot path can throw a small typed value without boxing).
public struct CoreError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as a comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// Text that is not valid base32/base64url/JSON/URI for the purpose.
        public static let invalidEncoding = Code("invalid_encoding")
        /// A parameter is out of its allowed range (digits, period, key length, …).
        public static let invalidParameter = Code("invalid_parameter")
        /// A keyring or data-key file is malformed or inconsistent.
        public static let invalidKeyFile = Code("invalid_key_file")
        /// A file could not be read or written.
        public static let fileAccess = Code("file_access")
        /// An envelope did not decrypt (wrong key, user, purpose or tampered).
        public static let envelopeRejected = Code("envelope_rejected")
        /// QR encoding failed (input too long for any QR version).
        public static let qrEncoding = Code("qr_encoding")
        /// The underlying crypto failed.
        public static let crypto = Code("crypto")
        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// Human-readable explanation; never contains secrets.
    public let message: String
    /// The error underneath, if any.
    public let underlying: (any Error)?
    /// Where it was raised.
    public let file: String
    /// Line where it was raised.
    public let line: Int

    /// Creates an error; `file`/`line` default to the call site.
    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }
}
