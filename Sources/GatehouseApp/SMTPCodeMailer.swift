import GatehouseMail
import GatehouseService
import Logging

/// `CodeMailer` over SMTP (`GATEHOUSE_SMTP_URL`): the human text comes from `CodeMail`, delivery
/// with retries from `MailSender`. A delivery that fails after its retries is a `503` upstream.
struct SMTPCodeMailer: CodeMailer {
    let sender: MailSender
    let from: String
    let issuer: String

    /// Parses the URL and prepares the client.
    init(url: String, from: String, issuer: String, logger: Logger) throws(ServiceError) {
        let parsed: SMTPURL
        do { parsed = try SMTPURL(url) } catch { throw ServiceError(.invalidRequest, "GATEHOUSE_SMTP_URL: \(error.message)") }
        sender = MailSender(client: SMTPClient(configuration: .init(url: parsed, connectTimeout: .seconds(5), commandTimeout: .seconds(15)), logger: logger), logger: logger)
        self.from = from
        self.issuer = issuer
    }

    func send(code: String, purpose: CodePurpose, to address: String, validMinutes: Int) async throws {
        let mail: CodeMail = switch purpose {
        case .verifyRecoveryAddress: try CodeMail.recoveryAddressVerification(code: code, issuer: issuer, validForMinutes: validMinutes)
        case .signIn: try CodeMail.signIn(code: code, issuer: issuer, validForMinutes: validMinutes)
        case .passwordReset: try CodeMail.passwordReset(code: code, issuer: issuer, validForMinutes: validMinutes)
        }
        try await sender.send(mail.message(from: from, to: address))
    }
}
