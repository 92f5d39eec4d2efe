/// The one error type of GatehouseMail.
///
/// Callers switch on ``code``; ``message`` is for people and logs. A message never contains the
/// SMTP password or the mail body (which holds the code being sent), so it is safe to log.
///
/// ``MailSender`` turns every failed delivery into ``Code/deliveryFailed`` with the last attempt's
/// error as ``underlying``; ``SMTPClient`` reports the individual causes.
public struct MailError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as an opaque, extensible code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidURL
            case invalidMessage
            case connectionFailed
            case timeout
            case protocolError
            case rejected
            case tlsFailed
            case authenticationFailed
            case deliveryFailed
            case cancelled
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// An SMTP URL could not be parsed.
        public static var invalidURL: Self { .init(.invalidURL) }
        /// The message cannot be sent as it is: an address that is not valid, a CR or LF in a
        /// header (header injection), a code with characters a code cannot have. Nothing was sent.
        public static var invalidMessage: Self { .init(.invalidMessage) }
        /// The server could not be reached, or the connection broke.
        public static var connectionFailed: Self { .init(.connectionFailed) }
        /// A step (connecting, or waiting for a reply) took longer than its timeout.
        public static var timeout: Self { .init(.timeout) }
        /// The server sent something that is not an SMTP reply.
        public static var protocolError: Self { .init(.protocolError) }
        /// The server answered with an error reply; ``MailError/replyCode`` has its code (4xx is
        /// temporary, 5xx permanent).
        public static var rejected: Self { .init(.rejected) }
        /// STARTTLS was required but not offered, the TLS handshake or certificate check failed,
        /// or credentials would have had to travel in clear text.
        public static var tlsFailed: Self { .init(.tlsFailed) }
        /// The server refused the credentials, or offers no mechanism this client speaks.
        public static var authenticationFailed: Self { .init(.authenticationFailed) }
        /// ``MailSender`` gave up: every attempt failed, or one failed permanently.
        /// ``MailError/underlying`` is the last attempt's error.
        public static var deliveryFailed: Self { .init(.deliveryFailed) }
        /// The task waiting for the delivery was cancelled; whether the message was delivered is
        /// unknown.
        public static var cancelled: Self { .init(.cancelled) }

        /// A short name of the code, for logs.
        public var description: String {
            switch self.value {
            case .invalidURL: "invalidURL"
            case .invalidMessage: "invalidMessage"
            case .connectionFailed: "connectionFailed"
            case .timeout: "timeout"
            case .protocolError: "protocolError"
            case .rejected: "rejected"
            case .tlsFailed: "tlsFailed"
            case .authenticationFailed: "authenticationFailed"
            case .deliveryFailed: "deliveryFailed"
            case .cancelled: "cancelled"
            }
        }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation (never the password or the body).
    public let message: String
    /// The SMTP reply code, when the server answered with an error (``Code/rejected``,
    /// ``Code/authenticationFailed``, ``Code/tlsFailed``), or the last attempt's for
    /// ``Code/deliveryFailed``.
    public let replyCode: Int?
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
        replyCode: Int? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// Whether trying again later may succeed: connection problems, timeouts, garbled replies and
    /// 4xx replies are temporary; 5xx replies, refused credentials, TLS failures and invalid
    /// input are not.
    public var isTransient: Bool {
        switch self.code {
        case .connectionFailed, .timeout, .protocolError: true
        case .rejected, .authenticationFailed: (self.replyCode.map { (400..<500).contains($0) }) ?? false
        default: false
        }
    }

    /// `code: message`, plus the underlying error when there is one.
    public var description: String {
        var text = "MailError.\(self.code): \(self.message)"
        if let underlying { text += " (\(underlying))" }
        return text
    }
}
