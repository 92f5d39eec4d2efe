import Foundation
import GatehouseMail
import Testing

/// I/O-free tests: URL parsing, the reply parser, dot-stuffing, rendering and the code texts.
@Suite("Mail units")
struct MailUnitTests {
    // MARK: SMTPURL

    @Test func parsesAPlainURL() throws {
        let url = try SMTPURL("smtp://mail.internal:2525")
        #expect(url.host == "mail.internal")
        #expect(url.port == 2525)
        #expect(url.user == nil && url.password == nil)
        #expect(url.startTLS == .optional)
        #expect(url.verifyCertificate)
        #expect(try SMTPURL("smtp://mail.internal").port == 25)
        #expect(try SMTPURL("smtp://mail.internal:25/").host == "mail.internal")
        #expect(try SMTPURL("smtp://[::1]:587").host == "::1")
    }

    @Test func parsesCredentialsAndOptions() throws {
        let url = try SMTPURL("smtp://gate%40house:p%40ss%3Aw0rd@127.0.0.1:587?starttls=require&tls_verify=false")
        #expect(url.user == "gate@house")
        #expect(url.password == "p@ss:w0rd")
        #expect(url.port == 587)
        #expect(url.startTLS == .require)
        #expect(!url.verifyCertificate)
        #expect(try SMTPURL("smtp://h:1?starttls=never").startTLS == .never)
        // The description never shows the password.
        #expect(!url.description.contains("w0rd"))
        #expect(url.description.contains("***"))
    }

    @Test(arguments: [
        "http://mail:25",
        "smtp://",
        "smtp://mail:0",
        "smtp://mail:70000",
        "smtp://mail:port",
        "smtp://user@mail:25",
        "smtp://mail:25/path",
        "smtp://mail:25?starttls=sometimes",
        "smtp://mail:25?startls=require",
        "smtp://mail:25?tls_verify=maybe",
        "smtp://[::1:25",
    ])
    func rejectsBadURLs(_ text: String) {
        let error = mailError { () throws(MailError) in _ = try SMTPURL(text) }
        #expect(error?.code == .invalidURL)
    }

    @Test func urlErrorsDoNotShowThePassword() {
        let error = mailError { () throws(MailError) in _ = try SMTPURL("smtp://user:hunter2@mail:99999") }
        #expect(error?.code == .invalidURL)
        #expect(error.map { !$0.description.contains("hunter2") } == true)
    }

    // MARK: Replies

    @Test func parsesSingleAndMultiLineReplies() throws {
        var parser = SMTPReplyParser()
        parser.append(Array("220 mail.example ESMTP ready\r\n".utf8))
        #expect(try parser.next() == SMTPReply(code: 220, lines: ["mail.example ESMTP ready"]))
        #expect(try parser.next() == nil)

        // A multi-line EHLO reply, arriving in pieces, with a bare LF and a line with no text.
        parser.append(Array("250-mail.example\r\n250-SIZE 1000\r\n250-AUTH PLAIN LO".utf8))
        #expect(try parser.next() == nil)
        parser.append(Array("GIN\n250-STARTTLS\r\n250 HELP\r\n250\r\n".utf8))
        let ehlo = try #require(try parser.next())
        #expect(ehlo.code == 250)
        #expect(ehlo.lines == ["mail.example", "SIZE 1000", "AUTH PLAIN LOGIN", "STARTTLS", "HELP"])
        let extensions = SMTPExtensions(ehlo: ehlo)
        #expect(extensions.contains("starttls"))
        #expect(extensions.parameters("AUTH") == ["PLAIN", "LOGIN"])
        #expect(!extensions.contains("8BITMIME"))
        #expect(try parser.next() == SMTPReply(code: 250, lines: [""]))
        #expect(!parser.hasBufferedBytes)
    }

    @Test func understandsTheOldAuthEqualsForm() {
        let extensions = SMTPExtensions(ehlo: SMTPReply(code: 250, lines: ["host", "AUTH=LOGIN PLAIN"]))
        #expect(extensions.parameters("AUTH") == ["LOGIN", "PLAIN"])
    }

    @Test(arguments: [
        "hello\r\n",
        "25\r\n",
        "999 no\r\n",
        "250x text\r\n",
        "250-first\r\n251 second\r\n",
    ])
    func rejectsMalformedReplies(_ text: String) {
        var parser = SMTPReplyParser()
        parser.append(Array(text.utf8))
        let error = mailError { () throws(MailError) in
            while try parser.next() != nil {}
        }
        #expect(error?.code == .protocolError)
    }

    @Test func boundsLineLength() {
        var parser = SMTPReplyParser()
        parser.append(Array("250 ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: SMTPReplyParser.maximumLineLength))
        let error = mailError { () throws(MailError) in _ = try parser.next() }
        #expect(error?.code == .protocolError)
    }

    // MARK: DATA

    @Test func dotStuffsAndTerminates() {
        let payload = String(decoding: smtpDataPayload(".first\r\nmiddle\r\n.\r\n..two\r\nlast"), as: UTF8.self)
        #expect(payload == "..first\r\nmiddle\r\n..\r\n...two\r\nlast\r\n.\r\n")
        #expect(String(decoding: smtpDataPayload("body\r\n"), as: UTF8.self) == "body\r\n.\r\n")
    }

    // MARK: Messages

    @Test func rendersHeadersAndBody() throws {
        let message = MailMessage(
            from: "no-reply@example.com", fromName: "Example \"Mail\"", to: "alice@example.org",
            subject: "Your code", body: "Line one\nLine two\r\n"
        )
        let text = try message.render(date: Date(timeIntervalSince1970: 1_767_225_600), messageID: "abc.123@example.com")
        let (head, body) = try #require(text.split(separator: "\r\n\r\n", maxSplits: 1).map(String.init).splitPair)
        let headers = head.components(separatedBy: "\r\n")
        #expect(headers.contains("From: \"Example \\\"Mail\\\"\" <no-reply@example.com>"))
        #expect(headers.contains("To: <alice@example.org>"))
        #expect(headers.contains("Subject: Your code"))
        #expect(headers.contains("Date: Thu, 01 Jan 2026 00:00:00 +0000"))
        #expect(headers.contains("Message-ID: <abc.123@example.com>"))
        #expect(headers.contains("MIME-Version: 1.0"))
        #expect(headers.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(headers.contains("Content-Transfer-Encoding: quoted-printable"))
        #expect(body == "Line one\r\nLine two\r\n")
    }

    @Test func encodesNonASCIISubjectsAndBodies() throws {
        let subject = "Dein Bestätigungscode für Größe 🎉 — " + String(repeating: "ü", count: 40)
        let body = "Grüße\n" + String(repeating: "x", count: 200) + " = done \n"
        let text = try MailMessage(from: "a@b.example", to: "c@d.example", subject: subject, body: body)
            .render(date: Date(), messageID: "x@b.example")
        // Everything on the wire is 7-bit, and no line is longer than 78 characters.
        #expect(text.utf8.allSatisfy { $0 < 0x80 })
        for line in text.components(separatedBy: "\r\n") { #expect(line.count <= 78, "\(line)") }
        // The subject is a run of encoded-words, each at most 75 characters, on folded lines.
        let subjectLines = text.components(separatedBy: "\r\n").drop { !$0.hasPrefix("Subject: ") }
            .prefix { $0.hasPrefix("Subject: ") || $0.hasPrefix(" ") }
        let words = subjectLines.map { $0.replacingOccurrences(of: "Subject: ", with: "").trimmingCharacters(in: .whitespaces) }
        #expect(words.count > 1)
        var decoded = Data()
        for word in words {
            #expect(word.count <= 75)
            #expect(word.hasPrefix("=?utf-8?B?") && word.hasSuffix("?="))
            decoded += try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2))))
        }
        #expect(String(decoding: decoded, as: UTF8.self) == subject)
        #expect(text.contains("Gr=C3=BC=C3=9Fe\r\n"))
        #expect(text.contains(" =3D done=20\r\n"))
    }

    @Test("a character made of many code points is split between encoded-words at code points, so no word passes 75 characters (caught by the smtp fuzz target)",
          arguments: ["e" + String(repeating: "\u{301}", count: 40), "👩‍👩‍👧‍👦" + String(repeating: "\u{1F3FD}", count: 12), String(repeating: "\u{301}", count: 300)])
    func encodedWordsSplitLongCharacters(subject: String) throws {
        let text = try MailMessage(from: "a@b.example", fromName: subject, to: "c@d.example", subject: subject, body: "b")
            .render(date: Date(), messageID: "x@b.example")
        for field in ["Subject: ", "From: "] {
            let lines = text.components(separatedBy: "\r\n").drop { !$0.hasPrefix(field) }.prefix { $0.hasPrefix(field) || $0.hasPrefix(" ") }
            var decoded = Data()
            for line in lines {
                let word = line.replacingOccurrences(of: field, with: "").trimmingCharacters(in: .whitespaces)
                    .replacingOccurrences(of: " <a@b.example>", with: "")
                #expect(word.count <= 75, "\(word)")
                #expect(word.hasPrefix("=?utf-8?B?") && word.hasSuffix("?="))
                let bytes = try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2))))
                #expect(String(validating: Array(bytes), as: UTF8.self) != nil, "a word ends inside a code point")
                decoded += bytes
            }
            #expect(String(decoding: decoded, as: UTF8.self) == subject)
        }
    }

    @Test("a long plain display name goes out as folded encoded-words, so no header line passes RFC 5322's 998 characters (the smtp fuzz target's invariant, on an input made for it)",
          arguments: [String(repeating: "\\", count: 600), String(repeating: "\"", count: 450), String(repeating: "N", count: 900)])
    func longDisplayNames(name: String) throws {
        let text = try MailMessage(from: "a@b.example", fromName: name, to: "c@d.example", subject: "s", body: "b")
            .render(date: Date(), messageID: "x@b.example")
        for line in text.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998, "\(line.prefix(80))…") }
        let lines = text.components(separatedBy: "\r\n").drop { !$0.hasPrefix("From: ") }.prefix { $0.hasPrefix("From: ") || $0.hasPrefix(" ") }
        let value = lines.joined().replacingOccurrences(of: "From: ", with: "")
        #expect(value.hasSuffix(" <a@b.example>"))
        var decoded = Data()
        for word in value.dropLast(" <a@b.example>".count).split(separator: " ") {
            #expect(word.count <= 75 && word.hasPrefix("=?utf-8?B?") && word.hasSuffix("?="), "\(word)")
            decoded += try #require(Data(base64Encoded: String(word.dropFirst(10).dropLast(2))))
        }
        #expect(String(decoding: decoded, as: UTF8.self) == name)
    }

    @Test("CR, LF and CRLF end a body line even when a combining mark follows (caught by the smtp fuzz target)")
    func lineEndsBeforeCombiningMarks() throws {
        let text = try MailMessage(from: "a@b.example", to: "c@d.example", subject: "s", body: "one\r\u{301}two\n\u{301}three\r\n\u{301}four")
            .render(date: Date(), messageID: "x@b.example")
        let body = try #require(text.split(separator: "\r\n\r\n", maxSplits: 1).map(String.init).splitPair).1
        #expect(body == "one\r\n=CC=81two\r\n=CC=81three\r\n=CC=81four")
    }

    @Test(arguments: [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nBcc: victim@example.com"),
        ("subject", "Hello\rX-Evil: 1"),
        ("to", "alice@example.com\r\nBcc: victim@example.com"),
        ("from", "no-reply@example.com\nBcc: victim@example.com"),
        ("fromName", "Example\r\nBcc: victim@example.com"),
    ])
    func refusesHeaderInjection(_ field: String, _ value: String) {
        var message = MailMessage(from: "no-reply@example.com", to: "alice@example.com", subject: "Hi", body: "Body")
        switch field {
        case "subject": message.subject = value
        case "to": message.to = value
        case "from": message.from = value
        default: message.fromName = value
        }
        let error = mailError { () throws(MailError) in _ = try message.render(date: Date(), messageID: "a@b") }
        #expect(error?.code == .invalidMessage)
    }

    @Test(arguments: [
        "alice", "@example.com", "alice@", "a@b@c", "alice smith@example.com", "<alice@example.com>",
        "alice@exa mple.com", "älice@example.com", "alice@example.com,bob@example.com", "",
    ])
    func refusesBadAddresses(_ address: String) {
        let error = mailError { () throws(MailError) in
            try MailMessage(from: "no-reply@example.com", to: address, subject: "Hi", body: "Body").validate()
        }
        #expect(error?.code == .invalidMessage)
    }

    @Test func acceptsOrdinaryAddresses() throws {
        for address in ["alice@example.com", "alice.smith+2fa@mail.example.co.uk", "x@localhost"] {
            try MailMessage(from: address, to: address, subject: "s", body: "b").validate()
        }
    }

    // MARK: Code mails

    @Test func signInMailSaysWhatAPersonNeeds() throws {
        let mail = try CodeMail.signIn(code: "123456", issuer: "Example Mail", validForMinutes: 10)
        #expect(mail.subject == "Your Example Mail sign-in code")
        #expect(mail.body.contains("\n    123456\n"))
        #expect(mail.body.contains("sign"))
        #expect(mail.body.contains("10 minutes"))
        #expect(mail.body.contains("If this wasn't you, you can ignore this message"))
        #expect(mail.body.contains("someone who knows your password is trying to sign in; consider changing it"))
    }

    @Test(arguments: [CodeMail.Purpose.recoveryAddressVerification, .signIn, .passwordReset])
    func everyCodeMailExplainsItself(_ purpose: CodeMail.Purpose) throws {
        let mail = try CodeMail(purpose: purpose, code: "ABCDE-12345", issuer: "Example Mail", validForMinutes: 1)
        #expect(mail.subject.hasPrefix("Your Example Mail "))
        #expect(!mail.subject.contains("ABCDE-12345"), "the code must not show in previews")
        #expect(mail.body.contains("\n    ABCDE-12345\n"))
        #expect(mail.body.contains("1 minute "))
        #expect(mail.body.contains("If this wasn't you, you can ignore this message"))
        let expected = switch purpose {
        case .recoveryAddressVerification: "recovery address"
        case .signIn: "signing in"
        case .passwordReset: "reset the password"
        }
        #expect(mail.body.contains(expected))
        let message = try mail.message(from: "no-reply@example.com", to: "alice@example.com")
        #expect(message.fromName == "Example Mail")
        #expect(message.subject == mail.subject)
    }

    @Test func codeMailRefusesBadInput() {
        for (code, issuer, minutes) in [("", "X", 10), ("12 34", "X", 10), ("123\n456", "X", 10), ("123456", "Ev\r\nil", 10), ("123456", " ", 10), ("123456", "X", 0)] {
            let error = mailError { () throws(MailError) in
                _ = try CodeMail.signIn(code: code, issuer: issuer, validForMinutes: minutes)
            }
            #expect(error?.code == .invalidMessage, "\(code) \(issuer) \(minutes)")
        }
    }

    // MARK: Errors

    @Test func classifiesTransientErrors() {
        #expect(MailError(.connectionFailed, "x").isTransient)
        #expect(MailError(.timeout, "x").isTransient)
        #expect(MailError(.rejected, "x", replyCode: 451).isTransient)
        #expect(MailError(.authenticationFailed, "x", replyCode: 454).isTransient)
        #expect(!MailError(.rejected, "x", replyCode: 550).isTransient)
        #expect(!MailError(.authenticationFailed, "x", replyCode: 535).isTransient)
        #expect(!MailError(.tlsFailed, "x").isTransient)
        #expect(!MailError(.invalidMessage, "x").isTransient)
    }
}

extension Array where Element == String {
    /// The two elements of a two-element array.
    fileprivate var splitPair: (String, String)? {
        self.count == 2 ? (self[0], self[1]) : nil
    }
}
