/// The text of the mails that carry a one-time code, written for the person who receives them:
/// what the code is for, the code on a line of its own, how long it works, and what to do if they
/// did not ask for it.
///
/// The code is the only secret in the message: no links with tokens, no account details beyond
/// the issuer's name. Subjects name the purpose but not the code, so the code does not show in
/// notification previews and mailbox lists.
///
/// ```swift
/// let mail = try CodeMail.signIn(code: "123456", issuer: "Example Mail", validForMinutes: 10)
/// try await sender.send(mail.message(from: "no-reply@example.com", to: user.recoveryAddress))
/// ```
public struct CodeMail: Sendable, Hashable {
    /// What a code is for.
    public enum Purpose: Sendable, Hashable {
        /// Confirming that a newly added recovery address receives mail.
        case recoveryAddressVerification
        /// The second step of signing in.
        case signIn
        /// Resetting a forgotten password.
        case passwordReset
    }

    /// What the code is for.
    public let purpose: Purpose
    /// The code itself.
    public let code: String
    /// The service's name as users know it (`GATEHOUSE_ISSUER`).
    public let issuer: String
    /// How long the code works.
    public let validForMinutes: Int
    /// The subject line, e.g. "Your Example Mail sign-in code".
    public let subject: String
    /// The plain-text body.
    public let body: String

    /// A mail with a code that confirms a recovery address.
    public static func recoveryAddressVerification(code: String, issuer: String, validForMinutes: Int) throws(MailError) -> CodeMail {
        try CodeMail(purpose: .recoveryAddressVerification, code: code, issuer: issuer, validForMinutes: validForMinutes)
    }

    /// A mail with a second-step sign-in code.
    public static func signIn(code: String, issuer: String, validForMinutes: Int) throws(MailError) -> CodeMail {
        try CodeMail(purpose: .signIn, code: code, issuer: issuer, validForMinutes: validForMinutes)
    }

    /// A mail with a password-reset code.
    public static func passwordReset(code: String, issuer: String, validForMinutes: Int) throws(MailError) -> CodeMail {
        try CodeMail(purpose: .passwordReset, code: code, issuer: issuer, validForMinutes: validForMinutes)
    }

    /// Creates the text for `purpose`.
    ///
    /// - Throws: ``MailError/Code/invalidMessage`` if the code is empty or has characters other
    ///   than ASCII letters, digits and `-`, if the issuer is empty or has a line break, or if
    ///   `validForMinutes` is not positive.
    public init(purpose: Purpose, code: String, issuer: String, validForMinutes: Int) throws(MailError) {
        guard !code.isEmpty, code.count <= 64,
              code.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") })
        else {
            throw MailError(.invalidMessage, "a code must be 1 to 64 ASCII letters, digits or dashes")
        }
        let issuer = issuer.trimmingWhitespace
        guard !issuer.isEmpty else { throw MailError(.invalidMessage, "the issuer name is empty") }
        try MailMessage.validateHeaderText(issuer, field: "issuer name")
        guard validForMinutes > 0 else {
            throw MailError(.invalidMessage, "a code must be valid for at least one minute")
        }
        self.purpose = purpose
        self.code = code
        self.issuer = issuer
        self.validForMinutes = validForMinutes
        (self.subject, self.body) = Self.text(purpose: purpose, code: code, issuer: issuer, minutes: validForMinutes)
    }

    /// The message from `from` (with the issuer as display name) to `to`.
    public func message(from: String, to: String) throws(MailError) -> MailMessage {
        let message = MailMessage(from: from, fromName: self.issuer, to: to, subject: self.subject, body: self.body)
        try message.validate()
        return message
    }

    private static func text(purpose: Purpose, code: String, issuer: String, minutes: Int) -> (subject: String, body: String) {
        let lifetime = minutes == 1 ? "1 minute" : "\(minutes) minutes"
        let codeBlock = "    \(code)"
        let neverShare = "\(issuer) will never ask you for this code. Do not give it to anyone."
        switch purpose {
        case .recoveryAddressVerification:
            return (
                "Your \(issuer) recovery address code",
                """
                Hello,

                This address was added as a recovery address for an \(issuer) account. To confirm \
                that it can receive mail, enter this code:

                \(codeBlock)

                The code works for \(lifetime) and only once.

                If this wasn't you, you can ignore this message. The address will not be added \
                unless the code is entered.

                \(neverShare)

                -- \(issuer)

                """
            )
        case .signIn:
            return (
                "Your \(issuer) sign-in code",
                """
                Hello,

                To finish signing in to your \(issuer) account, enter this code:

                \(codeBlock)

                The code works for \(lifetime) and only once.

                If this wasn't you, you can ignore this message. But someone who knows your \
                password is trying to sign in; consider changing it.

                \(neverShare)

                -- \(issuer)

                """
            )
        case .passwordReset:
            return (
                "Your \(issuer) password reset code",
                """
                Hello,

                Someone asked to reset the password of your \(issuer) account. To choose a new \
                password, enter this code:

                \(codeBlock)

                The code works for \(lifetime) and only once.

                If this wasn't you, you can ignore this message. Your password stays as it is.

                \(neverShare)

                -- \(issuer)

                """
            )
        }
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
