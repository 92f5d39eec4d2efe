public import Logging

/// Delivers mail through an ``SMTPClient``, retrying what may succeed on a second try.
///
/// Connection failures, timeouts, garbled replies and 4xx replies are retried after a backoff;
/// 5xx replies, refused credentials and TLS failures are permanent and end the delivery at once.
/// Every failure comes out as ``MailError/Code/deliveryFailed`` with the last attempt's error as
/// ``MailError/underlying`` — the service answers it with 503 — except an
/// ``MailError/Code/invalidMessage`` (the caller's mistake, nothing was sent), which is thrown
/// as it is.
///
/// A retry after a timeout that struck after the message was uploaded can deliver it twice
/// (the server may have accepted it and the reply been lost). For one-time codes that is
/// harmless: the second copy carries the same code.
public final class MailSender: Sendable {
    /// How many times to try and how long to wait in between.
    public struct RetryPolicy: Sendable, Hashable {
        /// Attempts in all, at least 1.
        public var maximumAttempts: Int
        /// The wait before the second, third, … attempt; the last entry repeats.
        public var backoff: [Duration]

        /// Creates a policy: by default 3 attempts, waiting 200 ms and then 1 s.
        public init(maximumAttempts: Int = 3, backoff: [Duration] = [.milliseconds(200), .seconds(1)]) {
            self.maximumAttempts = max(1, maximumAttempts)
            self.backoff = backoff
        }

        /// The wait after failed attempt number `attempt` (1-based).
        func delay(after attempt: Int) -> Duration {
            guard !self.backoff.isEmpty else { return .zero }
            return self.backoff[min(attempt - 1, self.backoff.count - 1)]
        }
    }

    /// The client that makes each attempt.
    public let client: SMTPClient
    /// The retry policy.
    public let retry: RetryPolicy
    private let logger: Logger

    /// Creates a sender over `client`.
    public init(client: SMTPClient, retry: RetryPolicy = .init(), logger: Logger = Logger(label: "gatehouse.mail")) {
        self.client = client
        self.retry = retry
        self.logger = logger
    }

    /// Delivers `message`, retrying temporary failures.
    ///
    /// - Throws: ``MailError/Code/invalidMessage`` if the message cannot be sent at all,
    ///   ``MailError/Code/cancelled`` if the task is cancelled, otherwise
    ///   ``MailError/Code/deliveryFailed``.
    public func send(_ message: MailMessage) async throws(MailError) {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await self.client.send(message)
                if attempt > 1 {
                    self.logger.info("mail delivered after retrying", metadata: ["attempts": "\(attempt)"])
                }
                return
            } catch {
                if error.code == .invalidMessage || error.code == .cancelled { throw error }
                let last = attempt >= self.retry.maximumAttempts
                guard error.isTransient, !last else {
                    self.logger.error(
                        "mail delivery failed",
                        metadata: ["attempts": "\(attempt)", "error.code": "\(error.code)", "error": "\(error.message)"]
                    )
                    let why = error.isTransient ? "gave up after \(attempt) attempts" : "permanent failure on attempt \(attempt)"
                    throw MailError(
                        .deliveryFailed,
                        "mail delivery failed (\(why)): \(error.message)",
                        replyCode: error.replyCode,
                        underlying: error
                    )
                }
                let delay = self.retry.delay(after: attempt)
                self.logger.warning(
                    "mail delivery attempt failed; retrying",
                    metadata: ["attempt": "\(attempt)", "retry_in": "\(delay)", "error.code": "\(error.code)", "error": "\(error.message)"]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw MailError(.cancelled, "the delivery was cancelled while waiting to retry")
                }
            }
        }
    }
}
