import Foundation
import GatehouseMail
import GatehouseTesting
import Synchronization
import Testing

/// Delivery to a real SMTP server (aiosmtpd, started per test by GatehouseTesting), reading what
/// it received.
@Suite("SMTP delivery", .timeLimit(.minutes(1)))
struct DeliveryTests {
    // MARK: Delivery and content

    @Test func deliversASignInCodeThatCanBeReadBack() async throws {
        try await SMTPServerProcess.withServer { server in
            let code = randomCode()
            try await makeClient(server.url).send(signInMessage(code: code))
            let received = try await server.waitForMessages(count: 1)
            let mail = try #require(received.first)
            #expect(mail.from == "no-reply@gatehouse.example")
            #expect(mail.to == ["alice@example.com"])
            #expect(mail.subject == "Your Example Mail sign-in code")
            #expect(codeInBody(mail.body) == code)
            #expect(mail.body.contains("10 minutes"))
            #expect(mail.body.contains("If this wasn't you, you can ignore this message"))
            #expect(!mail.tls)
            #expect(mail.raw.contains("From: \"Example Mail\" <no-reply@gatehouse.example>\r\n"))
            #expect(mail.raw.contains("\r\nMessage-ID: <"))
            #expect(mail.raw.contains("\r\nDate: "))
        }
    }

    @Test(arguments: [CodeMail.Purpose.recoveryAddressVerification, .signIn, .passwordReset])
    func deliversEveryKindOfCodeMail(_ purpose: CodeMail.Purpose) async throws {
        try await SMTPServerProcess.withServer { server in
            let code = randomCode()
            let mail = try CodeMail(purpose: purpose, code: code, issuer: "Example Mail", validForMinutes: 15)
            try await MailSender(client: makeClient(server.url))
                .send(mail.message(from: "no-reply@gatehouse.example", to: "bob@example.org"))
            let received = try #require(try await server.waitForMessages(count: 1).first)
            #expect(received.subject == mail.subject)
            #expect(codeInBody(received.body) == code)
            #expect(received.body.contains("15 minutes"))
        }
    }

    @Test func multiLineEHLOAndHELOFallback() async throws {
        // aiosmtpd's EHLO reply is multi-line (host, SIZE, 8BITMIME, HELP); the second server
        // refuses EHLO altogether, so the client has to fall back to HELO.
        for refuseEHLO in [false, true] {
            try await SMTPServerProcess.withServer(.init(refuseEHLO: refuseEHLO)) { server in
                let code = randomCode()
                try await makeClient(server.url).send(signInMessage(code: code))
                let received = try await server.waitForMessages(count: 1)
                #expect(codeInBody(received[0].body) == code, "refuseEHLO: \(refuseEHLO)")
            }
        }
    }

    @Test func dotStuffingKeepsLinesThatStartWithADot() async throws {
        try await SMTPServerProcess.withServer { server in
            let body = ".hidden first line\n.\nmiddle\n..two dots\n. \nlast line without newline"
            let message = MailMessage(from: "no-reply@gatehouse.example", to: "alice@example.com", subject: "Dots", body: body)
            try await makeClient(server.url).send(message)
            let received = try await server.waitForMessages(count: 1)
            #expect(received[0].body == body + "\n")
        }
    }

    @Test func unicodeSubjectAndBodySurvive() async throws {
        try await SMTPServerProcess.withServer { server in
            let subject = "Ihr Bestätigungscode für Größe 🎉 " + String(repeating: "é", count: 50)
            let body = "Grüße aus Zürich.\nCode: 123456 — gültig 10 Minuten.\n" + String(repeating: "ä", count: 120) + "\n"
            let message = MailMessage(from: "no-reply@gatehouse.example", fromName: "Mail Süd", to: "alice@example.com", subject: subject, body: body)
            try await makeClient(server.url).send(message)
            let received = try await server.waitForMessages(count: 1)
            #expect(received[0].subject == subject)
            #expect(received[0].body == body)
            #expect(received[0].raw.utf8.allSatisfy { $0 < 0x80 }, "everything on the wire is 7-bit")
        }
    }

    @Test func concurrentDeliveriesBeyondTheThreadLimitAllArrive() async throws {
        try await SMTPServerProcess.withServer { server in
            let client = try makeClient(server.url, maximumConcurrentDeliveries: 3)
            let codes = (0..<12).map { _ in randomCode() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, code) in codes.enumerated() {
                    group.addTask { try await client.send(signInMessage(code: code, to: "user\(index)@example.com")) }
                }
                try await group.waitForAll()
            }
            let received = try await server.waitForMessages(count: 12)
            #expect(Set(received.compactMap { codeInBody($0.body) }) == Set(codes))
        }
    }

    // MARK: AUTH

    @Test(arguments: ["PLAIN", "LOGIN"])
    func authenticatesWithTheOfferedMechanism(_ mechanism: String) async throws {
        // No TLS on this server, so the URL has to allow credentials in clear text explicitly.
        let options = SMTPServerProcess.Options(credentials: ("gatehouse", "s3cret p@ss:word"), authMechanisms: [mechanism])
        try await SMTPServerProcess.withServer(options) { server in
            let code = randomCode()
            try await makeClient(server.url(query: "starttls=never")).send(signInMessage(code: code))
            let received = try await server.waitForMessages(count: 1)
            #expect(received[0].user == "gatehouse")
            #expect(codeInBody(received[0].body) == code)
        }
    }

    @Test func wrongPasswordIsAnAuthenticationFailureAndNotRetried() async throws {
        let options = SMTPServerProcess.Options(credentials: ("gatehouse", "right"))
        try await SMTPServerProcess.withServer(options) { server in
            let url = "smtp://gatehouse:wrong-password@127.0.0.1:\(server.port)?starttls=never"
            let error = await mailError { () async throws(MailError) in
                try await makeClient(url).send(signInMessage(code: "123456"))
            }
            #expect(error?.code == .authenticationFailed)
            #expect(error?.replyCode == 535)
            #expect(error.map { !$0.description.contains("wrong-password") } == true)

            // Permanent: the sender gives up at once (no backoff waits).
            let sender = MailSender(client: try makeClient(url), retry: .init(maximumAttempts: 3, backoff: [.seconds(5)]))
            var failure: MailError?
            let time = await elapsed {
                failure = await mailError { () async throws(MailError) in try await sender.send(signInMessage(code: "123456")) }
            }
            #expect(failure?.code == .deliveryFailed)
            #expect((failure?.underlying as? MailError)?.code == .authenticationFailed)
            #expect(time < .seconds(4))
            #expect(server.messages().isEmpty)
        }
    }

    @Test func refusesToSendCredentialsInClearText() async throws {
        // The server offers AUTH without TLS; with the default starttls=optional the client must
        // not send the password.
        let options = SMTPServerProcess.Options(credentials: ("gatehouse", "s3cret"), authRequiresTLS: false)
        try await SMTPServerProcess.withServer(options) { server in
            let error = await mailError { () async throws(MailError) in
                try await makeClient(server.url).send(signInMessage(code: "123456"))
            }
            #expect(error?.code == .tlsFailed)
            #expect(error.map { $0.message.contains("clear text") } == true)
            #expect(error.map { !$0.description.contains("s3cret") } == true)
            #expect(server.messages().isEmpty)
        }
    }

    // MARK: STARTTLS

    @Test func upgradesWithSTARTTLSAndAuthenticatesOverTLS() async throws {
        let options = SMTPServerProcess.Options(credentials: ("gatehouse", "s3cret"), startTLS: true)
        try await SMTPServerProcess.withServer(options) { server in
            let code = randomCode()
            try await makeClient(server.url(query: "tls_verify=false")).send(signInMessage(code: code))
            let received = try await server.waitForMessages(count: 1)
            #expect(received[0].tls)
            #expect(received[0].user == "gatehouse")
            #expect(codeInBody(received[0].body) == code)
        }
    }

    @Test func startTLSWithoutCredentialsAndRequireMode() async throws {
        try await SMTPServerProcess.withServer(.init(startTLS: true)) { server in
            try await makeClient(server.url(query: "starttls=require&tls_verify=false")).send(signInMessage(code: "111111"))
            // starttls=never stays in clear text although the server offers TLS.
            try await makeClient(server.url(query: "starttls=never")).send(signInMessage(code: "222222"))
            let received = try await server.waitForMessages(count: 2)
            #expect(received.map(\.tls) == [true, false])
        }
    }

    @Test func verifiesTheCertificateByDefault() async throws {
        try await SMTPServerProcess.withServer(.init(startTLS: true)) { server in
            let error = await mailError { () async throws(MailError) in
                try await makeClient(server.url).send(signInMessage(code: "123456"))
            }
            #expect(error?.code == .tlsFailed)
            #expect(error.map { $0.message.contains("certificate") } == true)
            #expect(server.messages().isEmpty)
        }
    }

    @Test func requireFailsWhenTheServerDoesNotOfferSTARTTLS() async throws {
        try await SMTPServerProcess.withServer { server in
            let error = await mailError { () async throws(MailError) in
                try await makeClient(server.url(query: "starttls=require")).send(signInMessage(code: "123456"))
            }
            #expect(error?.code == .tlsFailed)
            #expect(server.messages().isEmpty)
        }
    }

    // MARK: Retries and failures

    @Test func retriesAfter451AndSucceeds() async throws {
        try await SMTPServerProcess.withServer(.init(rejectFirst: 2)) { server in
            let code = randomCode()
            let sender = MailSender(client: try makeClient(server.url), retry: .init(maximumAttempts: 3, backoff: [.milliseconds(20)]))
            try await sender.send(signInMessage(code: code))
            let received = try await server.waitForMessages(count: 1)
            #expect(received.count == 1)
            #expect(codeInBody(received[0].body) == code)
            #expect(server.rejectedCount == 2)
        }
    }

    @Test func givesUpAfterTheLastAttempt() async throws {
        try await SMTPServerProcess.withServer(.init(rejectFirst: 10)) { server in
            let sender = MailSender(client: try makeClient(server.url), retry: .init(maximumAttempts: 3, backoff: [.milliseconds(20)]))
            let error = await mailError { () async throws(MailError) in try await sender.send(signInMessage(code: "123456")) }
            #expect(error?.code == .deliveryFailed)
            #expect(error?.replyCode == 451)
            #expect((error?.underlying as? MailError)?.code == .rejected)
            #expect(server.rejectedCount == 3)
            #expect(server.messages().isEmpty)
        }
    }

    @Test func a5xxReplyIsPermanent() async throws {
        let options = SMTPServerProcess.Options(rejectFirst: 10, rejectReply: "550 5.7.1 Message refused (test)")
        try await SMTPServerProcess.withServer(options) { server in
            let sender = MailSender(client: try makeClient(server.url), retry: .init(maximumAttempts: 3, backoff: [.milliseconds(20)]))
            let error = await mailError { () async throws(MailError) in try await sender.send(signInMessage(code: "123456")) }
            #expect(error?.code == .deliveryFailed)
            #expect(error?.replyCode == 550)
            #expect(server.rejectedCount == 1)
        }
    }

    @Test func serverDownIsDeliveryFailedWithinBoundedTime() async throws {
        let server = try await SMTPServerProcess.start()
        let url = server.url
        await server.cleanup()
        // The default policy: 3 attempts, 200 ms and 1 s apart.
        let sender = MailSender(client: try makeClient(url))
        var error: MailError?
        let time = await elapsed {
            error = await mailError { () async throws(MailError) in try await sender.send(signInMessage(code: "123456")) }
        }
        #expect(error?.code == .deliveryFailed)
        #expect((error?.underlying as? MailError)?.code == .connectionFailed)
        #expect(error.map { $0.message.contains("3 attempts") } == true)
        #expect(time >= .milliseconds(1200), "it waited between attempts")
        #expect(time < .seconds(5))
    }

    @Test func aHungServerTimesOutInsteadOfHanging() async throws {
        try await SMTPServerProcess.withServer { server in
            try server.pause()
            defer { try? server.resume() }
            let client = try makeClient(server.url, connectTimeout: .seconds(1), commandTimeout: .milliseconds(500))
            let sender = MailSender(client: client, retry: .init(maximumAttempts: 2, backoff: [.milliseconds(20)]))
            var error: MailError?
            let time = await elapsed {
                error = await mailError { () async throws(MailError) in try await sender.send(signInMessage(code: "123456")) }
            }
            #expect(error?.code == .deliveryFailed)
            #expect((error?.underlying as? MailError)?.code == .timeout)
            #expect(time < .seconds(5))
        }
    }

    @Test func cancellingADeliveryReturnsPromptly() async throws {
        try await SMTPServerProcess.withServer { server in
            try server.pause()
            defer { try? server.resume() }
            let client = try makeClient(server.url, commandTimeout: .seconds(30))
            let task = Task { () async -> MailError? in
                await mailError { () async throws(MailError) in try await client.send(signInMessage(code: "123456")) }
            }
            try await Task.sleep(for: .milliseconds(300))
            let time = await elapsed {
                task.cancel()
                let error = await task.value
                #expect(error?.code == .cancelled)
            }
            #expect(time < .seconds(2))
        }
    }

    @Test func headerInjectionIsRefusedBeforeConnecting() async throws {
        try await SMTPServerProcess.withServer { server in
            let message = MailMessage(
                from: "no-reply@gatehouse.example", to: "alice@example.com",
                subject: "Your code\r\nBcc: victim@example.net", body: "123456"
            )
            let sender = MailSender(client: try makeClient(server.url))
            let error = await mailError { () async throws(MailError) in try await sender.send(message) }
            #expect(error?.code == .invalidMessage)
            let recipient = await mailError { () async throws(MailError) in
                try await sender.send(MailMessage(from: "no-reply@gatehouse.example", to: "alice@example.com>\nBcc: x@y", subject: "s", body: "b"))
            }
            #expect(recipient?.code == .invalidMessage)
            try await Task.sleep(for: .milliseconds(200))
            #expect(server.messages().isEmpty)
        }
    }
}
