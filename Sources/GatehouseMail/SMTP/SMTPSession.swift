import Foundation

/// One SMTP conversation delivering one message, run start to end on a delivery thread with
/// blocking, deadline-bounded I/O (RFC 5321 §3, STARTTLS RFC 3207, AUTH RFC 4954).
///
/// Greeting → EHLO (HELO if refused) → STARTTLS if offered and allowed, then EHLO again →
/// AUTH PLAIN or LOGIN if there are credentials → MAIL FROM → RCPT TO → DATA → QUIT.
struct SMTPSession {
    struct Settings {
        var url: SMTPURL
        var heloName: String
        var connectTimeout: Duration
        var commandTimeout: Duration
    }

    /// What a finished delivery learned, for the log.
    struct Outcome {
        var usedTLS: Bool
        var authenticated: Bool
        var finalReply: String
    }

    private let settings: Settings
    private let cancellation: CancellationFlag
    private var socket: TCPSocket?
    private var tls: TLSSession?
    private var parser = SMTPReplyParser()
    /// False from STARTTLS until its handshake succeeds: a failed handshake leaves the
    /// connection in no state to carry a clear-text QUIT.
    private var canQuit = true

    init(settings: Settings, cancellation: CancellationFlag) {
        self.settings = settings
        self.cancellation = cancellation
    }

    /// Delivers `payload` (the rendered message) from `from` to `to`.
    mutating func deliver(from: String, to: String, message: String) throws(MailError) -> Outcome {
        let url = self.settings.url
        self.socket = try TCPSocket.connect(
            host: url.host,
            port: url.port,
            deadline: .now + self.settings.connectTimeout,
            cancellation: self.cancellation
        )
        defer { self.close() }
        do {
            return try self.converse(from: from, to: to, message: message)
        } catch {
            // The server said no but the connection is fine: end the session politely, so the
            // server does not log an aborted connection. Bounded by a short deadline.
            if self.canQuit, [.rejected, .authenticationFailed, .tlsFailed].contains(error.code) {
                _ = try? self.command("QUIT", step: "quitting", timeout: .seconds(1))
            }
            throw error
        }
    }

    private mutating func converse(from: String, to: String, message: String) throws(MailError) -> Outcome {
        let url = self.settings.url
        let greeting = try self.readReply(step: "waiting for the greeting")
        guard greeting.code == 220 else {
            throw Self.rejected(greeting, step: "greeting")
        }
        var extensions = try self.hello()
        switch url.startTLS {
        case .never:
            break
        case .optional, .require:
            if extensions?.contains("STARTTLS") == true {
                self.canQuit = false
                let reply = try self.command("STARTTLS", step: "sending STARTTLS")
                guard reply.code == 220 else {
                    self.canQuit = true
                    throw MailError(.tlsFailed, "the server refused STARTTLS: \(reply.summary)", replyCode: reply.code)
                }
                guard !self.parser.hasBufferedBytes else {
                    throw MailError(.tlsFailed, "the server sent data after accepting STARTTLS, before the handshake (refused: possible injection)")
                }
                self.tls = try TLSSession.handshake(
                    over: self.socket!,
                    host: url.host,
                    verify: url.verifyCertificate,
                    deadline: .now + self.settings.commandTimeout
                )
                self.canQuit = true
                // RFC 3207 §4.2: forget what the server said before TLS and ask again.
                extensions = try self.hello()
            } else if url.startTLS == .require {
                throw MailError(.tlsFailed, "starttls=require, but the server at \(url.host):\(url.port) does not offer STARTTLS")
            }
        }
        var authenticated = false
        if let user = url.user, let password = url.password {
            guard self.tls != nil || url.startTLS == .never else {
                throw MailError(
                    .tlsFailed,
                    "refusing to send the SMTP password in clear text: the server does not offer STARTTLS (add starttls=never to the URL to allow it on a trusted network)"
                )
            }
            try self.authenticate(user: user, password: password, extensions: extensions ?? SMTPExtensions())
            authenticated = true
        }

        let mail = try self.command("MAIL FROM:<\(from)>", step: "sending MAIL FROM")
        guard mail.isPositive else { throw Self.rejected(mail, step: "MAIL FROM") }
        let recipient = try self.command("RCPT TO:<\(to)>", step: "sending RCPT TO")
        guard recipient.isPositive else { throw Self.rejected(recipient, step: "RCPT TO") }
        let data = try self.command("DATA", step: "sending DATA")
        guard data.code == 354 else { throw Self.rejected(data, step: "DATA") }
        try self.write(smtpDataPayload(message), step: "sending the message")
        let accepted = try self.readReply(step: "waiting for the server to accept the message")
        guard accepted.isPositive else { throw Self.rejected(accepted, step: "end of DATA") }
        // The message is delivered; QUIT is a courtesy and its failure changes nothing.
        _ = try? self.command("QUIT", step: "quitting", timeout: .seconds(2))
        return Outcome(usedTLS: self.tls != nil, authenticated: authenticated, finalReply: accepted.summary)
    }

    /// EHLO, or HELO if the server does not know EHLO. Returns the extensions, `nil` after HELO.
    private mutating func hello() throws(MailError) -> SMTPExtensions? {
        let ehlo = try self.command("EHLO \(self.settings.heloName)", step: "sending EHLO")
        if ehlo.isPositive { return SMTPExtensions(ehlo: ehlo) }
        // 500/502: command unknown; 501/504: some old servers; anything 4xx/5xx else is a refusal.
        guard [500, 501, 502, 504].contains(ehlo.code) else { throw Self.rejected(ehlo, step: "EHLO") }
        let helo = try self.command("HELO \(self.settings.heloName)", step: "sending HELO")
        guard helo.isPositive else { throw Self.rejected(helo, step: "HELO") }
        return nil
    }

    /// AUTH PLAIN (one round trip) if offered, else AUTH LOGIN.
    private mutating func authenticate(user: String, password: String, extensions: SMTPExtensions) throws(MailError) {
        let mechanisms = extensions.parameters("AUTH")
        let reply: SMTPReply
        if mechanisms.contains("PLAIN") {
            let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            reply = try self.command("AUTH PLAIN \(token)", step: "authenticating (AUTH PLAIN)")
        } else if mechanisms.contains("LOGIN") {
            let start = try self.command("AUTH LOGIN", step: "authenticating (AUTH LOGIN)")
            guard start.code == 334 else { throw Self.authenticationRefused(start) }
            let name = try self.command(Data(user.utf8).base64EncodedString(), step: "authenticating (AUTH LOGIN user)")
            guard name.code == 334 else { throw Self.authenticationRefused(name) }
            reply = try self.command(Data(password.utf8).base64EncodedString(), step: "authenticating (AUTH LOGIN password)")
        } else if mechanisms.isEmpty {
            throw MailError(.authenticationFailed, "the SMTP URL has credentials but the server does not offer AUTH")
        } else {
            throw MailError(
                .authenticationFailed,
                "the server offers AUTH \(mechanisms.joined(separator: " ")) but this client speaks only PLAIN and LOGIN"
            )
        }
        guard reply.code == 235 else { throw Self.authenticationRefused(reply) }
    }

    // MARK: I/O

    /// Sends one command line and reads the reply. The command is never put in an error message:
    /// during AUTH it carries the credentials.
    private mutating func command(_ line: String, step: String, timeout: Duration? = nil) throws(MailError) -> SMTPReply {
        try self.write(Array((line + "\r\n").utf8), step: step, timeout: timeout)
        return try self.readReply(step: step, timeout: timeout)
    }

    private mutating func write(_ bytes: [UInt8], step: String, timeout: Duration? = nil) throws(MailError) {
        let deadline = ContinuousClock.now + (timeout ?? self.settings.commandTimeout)
        if let tls = self.tls {
            try tls.write(bytes, until: deadline, step: step)
        } else {
            try self.socket!.write(bytes, until: deadline, step: step)
        }
    }

    private mutating func readReply(step: String, timeout: Duration? = nil) throws(MailError) -> SMTPReply {
        let deadline = ContinuousClock.now + (timeout ?? self.settings.commandTimeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let reply = try self.parser.next() { return reply }
            let count: Int
            if let tls = self.tls {
                count = try tls.read(into: &buffer, until: deadline, step: step)
            } else {
                count = try self.socket!.read(into: &buffer, until: deadline, step: step)
            }
            self.parser.append(buffer[..<count])
        }
    }

    private mutating func close() {
        self.tls?.shutdown()
        self.tls = nil
        self.socket = nil
    }

    // MARK: Errors

    private static func rejected(_ reply: SMTPReply, step: String) -> MailError {
        MailError(.rejected, "the server answered \(reply.summary) to \(step)", replyCode: reply.code)
    }

    private static func authenticationRefused(_ reply: SMTPReply) -> MailError {
        // 4xx (e.g. 454 temporary authentication failure) stays transient through replyCode.
        MailError(.authenticationFailed, "the server refused the SMTP credentials: \(reply.summary)", replyCode: reply.code)
    }
}
