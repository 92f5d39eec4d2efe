import Foundation
public import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Delivers mail to one SMTP server (`GATEHOUSE_SMTP_URL`), one connection per message.
///
/// Each ``send(_:)`` runs the whole SMTP conversation on a dedicated thread (never on Swift's
/// cooperative pool) with every step bounded by a timeout, so a call always returns. It makes one
/// attempt; ``MailSender`` adds retries.
///
/// ```swift
/// let client = SMTPClient(configuration: .init(url: try SMTPURL("smtp://mail.internal:25")))
/// try await client.send(message)
/// ```
public final class SMTPClient: Sendable {
    /// How to reach the server and how long to wait.
    public struct Configuration: Sendable {
        /// The server, credentials and STARTTLS policy.
        public var url: SMTPURL
        /// Bound on connecting (TCP).
        public var connectTimeout: Duration
        /// Bound on each step after that: each command's reply, the TLS handshake, the message
        /// upload and the server's verdict on it.
        public var commandTimeout: Duration
        /// The name sent with EHLO/HELO.
        public var heloName: String
        /// Deliveries (threads) in flight at once; more wait their turn without a thread.
        public var maximumConcurrentDeliveries: Int

        /// Creates a configuration. `heloName` defaults to this machine's host name.
        public init(
            url: SMTPURL,
            connectTimeout: Duration = .seconds(10),
            commandTimeout: Duration = .seconds(30),
            heloName: String? = nil,
            maximumConcurrentDeliveries: Int = 8
        ) {
            self.url = url
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.heloName = heloName ?? Self.hostName()
            self.maximumConcurrentDeliveries = maximumConcurrentDeliveries
        }

        private static func hostName() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
            let name = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            // EHLO takes a domain or an address literal; anything odd falls back to localhost.
            let usable = !name.isEmpty && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
            }
            return usable ? name : "localhost"
        }
    }

    /// The configuration the client was created with.
    public let configuration: Configuration
    private let logger: Logger
    private let gate: DeliveryGate

    /// Creates a client. Nothing connects until ``send(_:)``.
    public init(configuration: Configuration, logger: Logger = Logger(label: "gatehouse.mail")) {
        self.configuration = configuration
        self.logger = logger
        self.gate = DeliveryGate(limit: configuration.maximumConcurrentDeliveries)
    }

    /// Delivers `message` in one attempt.
    ///
    /// - Throws: ``MailError/Code/invalidMessage`` before connecting if the message cannot be
    ///   sent; otherwise the cause: ``MailError/Code/connectionFailed``, ``MailError/Code/timeout``,
    ///   ``MailError/Code/rejected`` (with ``MailError/replyCode``), ``MailError/Code/tlsFailed``,
    ///   ``MailError/Code/authenticationFailed``, ``MailError/Code/protocolError`` or
    ///   ``MailError/Code/cancelled``.
    public func send(_ message: MailMessage) async throws(MailError) {
        let rendered = try message.render(date: Date(), messageID: MailMessage.makeMessageID(domain: message.senderDomain))
        try await self.gate.acquire()
        defer { self.gate.release() }

        let settings = SMTPSession.Settings(
            url: self.configuration.url,
            heloName: self.configuration.heloName,
            connectTimeout: self.configuration.connectTimeout,
            commandTimeout: self.configuration.commandTimeout
        )
        let cancellation = CancellationFlag()
        let start = ContinuousClock.now
        let result: Result<SMTPSession.Outcome, MailError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                do throws(MailError) {
                    try DeliveryThread.run {
                        var session = SMTPSession(settings: settings, cancellation: cancellation)
                        continuation.resume(returning: Result { () throws(MailError) in
                            try session.deliver(from: message.from, to: message.to, message: rendered)
                        })
                    }
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        } onCancel: {
            cancellation.cancel()
        }

        // Log the recipient's domain only: the address is personal data and the log is not
        // the place for it.
        let domain = message.to.split(separator: "@").last.map(String.init) ?? ""
        switch result {
        case .success(let outcome):
            self.logger.debug(
                "mail delivered",
                metadata: [
                    "smtp.server": "\(self.configuration.url.host):\(self.configuration.url.port)",
                    "mail.recipient_domain": "\(domain)",
                    "smtp.tls": "\(outcome.usedTLS)",
                    "smtp.reply": "\(outcome.finalReply)",
                    "duration": "\(ContinuousClock.now - start)",
                ]
            )
        case .failure(let error):
            self.logger.debug(
                "mail delivery attempt failed",
                metadata: [
                    "smtp.server": "\(self.configuration.url.host):\(self.configuration.url.port)",
                    "mail.recipient_domain": "\(domain)",
                    "error": "\(error)",
                ]
            )
            throw error
        }
    }
}
