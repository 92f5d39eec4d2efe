/// The one error type of `GatehouseCrypto`.
///
/// `code` is opaque (compare against the static members); `message` is for operators and never
/// contains key material, plaintext or codes.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as a comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case randomUnavailable, invalidKey, invalidInput, authenticationFailed, libcrypto
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The kernel CSPRNG could not be read.
        public static let randomUnavailable = Code(.randomUnavailable)
        /// A key had the wrong length or could not be loaded.
        public static let invalidKey = Code(.invalidKey)
        /// Input had the wrong shape (length, nonce size, …).
        public static let invalidInput = Code(.invalidInput)
        /// A ciphertext or signature did not authenticate.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// libcrypto reported an internal failure.
        public static let libcrypto = Code(.libcrypto)
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation without secrets.
    public let message: String
    /// Where the error was raised.
    public let file: String
    /// Line where the error was raised.
    public let line: Int

    /// Creates an error; `file`/`line` default to the call site.
    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "CryptoError(\(code)): \(message)" }
}
