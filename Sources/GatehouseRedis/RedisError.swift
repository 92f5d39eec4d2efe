/// The one error type of GatehouseRedis.
///
/// Callers switch on ``code``; ``message`` is for people and logs. The codes separate the cases a
/// caller must treat differently: a command that was never sent (``Code/connectionUnavailable``,
/// safe to retry), one that was sent but whose outcome is unknown (``Code/connectionLost``,
/// ``Code/timeout``), and an error reply from the server (``Code/serverError``).
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as an opaque, extensible code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidURL
            case invalidArgument
            case connectionUnavailable
            case connectionLost
            case timeout
            case protocolError
            case replyTooLarge
            case serverError
            case unexpectedReply
            case clientClosed
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A Redis URL could not be parsed.
        public static var invalidURL: Self { .init(.invalidURL) }
        /// An argument cannot be used (for example a user name containing `{` in a key).
        public static var invalidArgument: Self { .init(.invalidArgument) }
        /// No connection could carry the command within its deadline; the command was never
        /// sent, so retrying it is safe.
        public static var connectionUnavailable: Self { .init(.connectionUnavailable) }
        /// The connection failed after the command was written: it may or may not have run.
        public static var connectionLost: Self { .init(.connectionLost) }
        /// The server sent no reply within the command timeout: the command may or may not have
        /// run, and the connection it was on has been closed.
        public static var timeout: Self { .init(.timeout) }
        /// The server sent bytes that are not RESP; the connection has been closed.
        public static var protocolError: Self { .init(.protocolError) }
        /// A reply exceeded the configured size limit; the connection has been closed.
        public static var replyTooLarge: Self { .init(.replyTooLarge) }
        /// The server answered with an error reply (`-ERR …`, `-NOSCRIPT …`, `-WRONGTYPE …`).
        public static var serverError: Self { .init(.serverError) }
        /// The server's reply does not have the shape the typed helper expects.
        public static var unexpectedReply: Self { .init(.unexpectedReply) }
        /// The client (or follower) has been shut down.
        public static var clientClosed: Self { .init(.clientClosed) }

        /// A short name of the code, for logs.
        public var description: String {
            switch self.value {
            case .invalidURL: "invalidURL"
            case .invalidArgument: "invalidArgument"
            case .connectionUnavailable: "connectionUnavailable"
            case .connectionLost: "connectionLost"
            case .timeout: "timeout"
            case .protocolError: "protocolError"
            case .replyTooLarge: "replyTooLarge"
            case .serverError: "serverError"
            case .unexpectedReply: "unexpectedReply"
            case .clientClosed: "clientClosed"
            }
        }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation; for ``Code/serverError`` the server's full error line.
    public let message: String
    /// The error that caused this one, if any.
    public let underlying: (any Error)?
    /// The file that raised the error (`#fileID`).
    public let file: String
    /// The line that raised the error.
    public let line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// For ``Code/serverError``: the error's first word (`ERR`, `NOSCRIPT`, `WRONGTYPE`, …).
    public var serverErrorPrefix: Substring? {
        guard self.code == .serverError else { return nil }
        return self.message.split(separator: " ", maxSplits: 1).first
    }

    /// `code: message`, plus the underlying error when there is one.
    public var description: String {
        var text = "RedisError.\(self.code): \(self.message)"
        if let underlying { text += " (\(underlying))" }
        return text
    }
}
