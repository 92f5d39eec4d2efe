import Foundation
import GatehouseRedis
import GatehouseTesting
import Testing

/// Recovery address, emailed sign-in codes and the recovery flow, delivered over real SMTP to a
/// real server (aiosmtpd) and read back out of the received messages.
@Suite("Email codes over real SMTP", .timeLimit(.minutes(3)))
struct EmailFlowTests {
    /// Runs `body` with an SMTP sink and a node configured to deliver to it.
    static func with(_ body: (Deployment, SMTPServerProcess) async throws -> Void) async throws {
        let smtp = try await SMTPServerProcess.start()
        do {
            try await Deployment.with(environment: ["GATEHOUSE_SMTP_URL": smtp.url, "GATEHOUSE_MAIL_FROM": "gatehouse@mail.example"]) { d in
                try await body(d, smtp)
            }
            await smtp.cleanup()
        } catch {
            await smtp.cleanup()
            throw error
        }
    }

    /// The 6-digit code in a received message body.
    static func code(in body: String) -> String? {
        let scalars = Array(body.unicodeScalars)
        var i = 0
        while i < scalars.count {
            if CharacterSet.decimalDigits.contains(scalars[i]) {
                var j = i
                while j < scalars.count, CharacterSet.decimalDigits.contains(scalars[j]) { j += 1 }
                if j - i == 6 { return String(String.UnicodeScalarView(scalars[i..<j])) }
                i = j
            } else {
                i += 1
            }
        }
        return nil
    }

    static func latestCode(_ smtp: SMTPServerProcess, count: Int, to address: String) async throws -> String {
        let messages = try await smtp.waitForMessages(count: count)
        let mail = try #require(messages.last { $0.to.contains(address) })
        return try #require(code(in: mail.body), "no code in: \(mail.body)")
    }

    @Test("recovery address: a code is mailed, the message says what it is for, confirming verifies it")
    func recoveryAddress() async throws {
        try await Self.with { d, smtp in
            let user = "newbie@example.org"
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            let put = try await d.call("PUT", "/v1/me/recovery-email", json: ["email": "Newbie.Backup@Other.example"], headers: ["Gatehouse-Session": token])
            #expect(put.status == 202, "\(put.json)")
            #expect(put["sent_to"] as? String == "n***@other.example")
            let messages = try await smtp.waitForMessages(count: 1)
            let mail = messages[0]
            #expect(mail.to == ["newbie.backup@other.example"])
            #expect(mail.from == "gatehouse@mail.example")
            #expect(mail.body.lowercased().contains("ignore"))
            #expect(mail.body.contains("10 minutes"))
            let code = try #require(Self.code(in: mail.body))
            let wrong = code == "000000" ? "000001" : "000000"
            #expect(try await d.call("POST", "/v1/me/recovery-email/confirm", json: ["code": wrong], headers: ["Gatehouse-Session": token]).status == 401)
            let ok = try await d.call("POST", "/v1/me/recovery-email/confirm", json: ["code": code], headers: ["Gatehouse-Session": token])
            #expect(ok.status == 200, "\(ok.json)")
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
            #expect((me["recovery_email"] as? [String: Any])?["verified"] as? Bool == true)
            // The same code does not work twice.
            #expect(try await d.call("POST", "/v1/me/recovery-email/confirm", json: ["code": code], headers: ["Gatehouse-Session": token]).status == 401)
            d.expectLogsClean(of: [code, token])
        }
    }

    @Test("email as the second step: bound to its login, resend kills the old code, 3 sends per 15 minutes")
    func emailSecondStep() async throws {
        try await Self.with { d, smtp in
            let user = "mailcode@example.org"
            let address = "mailcode.backup@example.net"
            #expect(try await d.importUsers([["user": user, "recovery_email": address, "verified": true]]).status == 200)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            let on = try await d.call("POST", "/v1/me/two-step", json: ["method": "email"], headers: ["Gatehouse-Session": token])
            #expect(on.status == 200, "\(on.json)")
            #expect((on["two_step"] as? [String: Any])?["method"] as? String == "email")
            #expect((on["backup_codes"] as? [String])?.count == 10)

            let login = try await d.call("POST", "/v1/login/start", json: ["user": user])
            #expect(login["methods"] as? [String] == ["email", "backup_code"])
            let challengeA = ((login["challenge"] as? [String: Any])?["token"] as? String) ?? ""
            let sent = try await d.call("POST", "/v1/login/email-code", json: ["challenge": challengeA])
            #expect(sent.status == 202)
            #expect(sent["sent_to"] as? String == "m***@example.net")
            let first = try await Self.latestCode(smtp, count: 1, to: address)
            // A resend kills the first code.
            #expect(try await d.call("POST", "/v1/login/email-code", json: ["challenge": challengeA]).status == 202)
            let second = try await Self.latestCode(smtp, count: 2, to: address)
            if first != second {
                #expect(try await d.call("POST", "/v1/login/finish", json: ["challenge": challengeA, "method": "email", "code": first]).status == 401)
            }
            // A code sent for login A does not open login B.
            let challengeB = try await d.challenge(for: user)
            let cross = try await d.call("POST", "/v1/login/finish", json: ["challenge": challengeB, "method": "email", "code": second])
            #expect(cross.status == 401 && cross.code == "invalid_code")
            let ok = try await d.call("POST", "/v1/login/finish", json: ["challenge": challengeA, "method": "email", "code": second])
            #expect(ok.status == 200, "\(ok.json)")
            let session = ((ok["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.call("POST", "/v1/sessions/verify", key: "verify", json: ["token": session])["amr"] as? [String] == ["pwd", "email"])
            // Third send in the window is allowed, the fourth is not.
            #expect(try await d.call("POST", "/v1/login/email-code", json: ["challenge": challengeB]).status == 202)
            let limited = try await d.call("POST", "/v1/login/email-code", json: ["challenge": challengeB])
            #expect(limited.status == 429 && limited.headers["retry-after"] != nil)
            d.expectLogsClean(of: [first, second, session, token])
        }
    }

    @Test("parallel guesses at an emailed code: the code dies after 5 tries")
    func parallelEmailGuesses() async throws {
        try await Self.with { d, smtp in
            let user = "guess@example.org"
            let address = "guess.backup@example.net"
            #expect(try await d.importUsers([["user": user, "recovery_email": address, "verified": true]]).status == 200)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            #expect(try await d.call("POST", "/v1/me/two-step", json: ["method": "email"], headers: ["Gatehouse-Session": token]).status == 200)
            let challenge = try await d.challenge(for: user)
            #expect(try await d.call("POST", "/v1/login/email-code", json: ["challenge": challenge]).status == 202)
            let code = try await Self.latestCode(smtp, count: 1, to: address)
            let guesses = (0..<40).map { String(format: "%06d", ($0 * 24_571 + 7) % 1_000_000) }.filter { $0 != code }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for g in guesses {
                    group.addTask { try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "email", "code": g]).status }
                }
                var all: [Int] = []
                for try await s in group { all.append(s) }
                return all
            }
            #expect(statuses.allSatisfy { $0 == 401 || $0 == 429 })
            // Even after an admin unlock the guessed-at code is dead.
            #expect(try await d.call("POST", "/v1/users/\(user)/unlock", key: "admin").status == 204)
            let late = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "email", "code": code])
            #expect(late.status == 401)
        }
    }

    @Test("recovery: 202 for anyone, a code to a verified address, a single-use reset token")
    func recoveryFlow() async throws {
        try await Self.with { d, smtp in
            let user = "forgetful@example.org"
            let address = "forgetful.backup@example.net"
            #expect(try await d.importUsers([["user": user, "recovery_email": address, "verified": true]]).status == 200)
            let unknown = try await d.call("POST", "/v1/recovery/start", json: ["user": "nobody@example.org"])
            let known = try await d.call("POST", "/v1/recovery/start", json: ["user": user])
            #expect(unknown.status == 202 && known.status == 202)
            #expect(unknown.body == known.body)
            let code = try await Self.latestCode(smtp, count: 1, to: address)
            #expect(smtp.messages().count == 1, "no mail for an unknown user")
            let wrong = code == "111111" ? "222222" : "111111"
            #expect(try await d.call("POST", "/v1/recovery/finish", json: ["user": user, "code": wrong]).status == 401)
            let finish = try await d.call("POST", "/v1/recovery/finish", json: ["user": user, "code": code])
            #expect(finish.status == 200, "\(finish.json)")
            let reset = finish["reset_token"] as? String ?? ""
            let consume = try await d.call("POST", "/v1/recovery/consume", json: ["reset_token": reset])
            #expect(consume.status == 200 && consume["user"] as? String == user)
            // Used once: the second use gets the very answer of a forged token, and the log says why.
            let reused = try await d.call("POST", "/v1/recovery/consume", json: ["reset_token": reset])
            let forged = try await d.call("POST", "/v1/recovery/consume", json: ["reset_token": String(reset.dropLast(4)) + "AAAA"])
            #expect(reused.status == 401 && forged.status == 401)
            #expect(reused.code == forged.code && reused["detail"] as? String == forged["detail"] as? String, "\(reused.json) vs \(forged.json)")
            #expect(d.node.log.contains("refused a password-reset token used before"))
            d.expectLogsClean(of: [code, reset])
        }
    }

    @Test("password reset has budgets of its own: wrong reset codes and reset mails never hold back sign-in")
    func resetBudgetsApart() async throws {
        try await Self.with { d, smtp in
            let (user, secret) = try await d.enrolledUser()
            let address = "backup@example.net"
            // Wrong reset codes, past the point where sign-in would wait (5 free failures): each
            // code dies after 5 tries, so a new one is asked for in between.
            var wrongAnswers: [Int] = []
            for round in 0..<2 {
                #expect(try await d.call("POST", "/v1/recovery/start", json: ["user": user]).status == 202)
                let code = try await Self.latestCode(smtp, count: round + 1, to: address)
                let wrong = code == "000000" ? "000001" : "000000"
                for _ in 0..<4 { wrongAnswers.append(try await d.call("POST", "/v1/recovery/finish", json: ["user": user, "code": wrong]).status) }
            }
            #expect(wrongAnswers.allSatisfy { $0 == 401 || $0 == 429 }, "\(wrongAnswers)")
            // A third reset mail: the reset send budget (3 per 15 minutes) is now spent.
            #expect(try await d.call("POST", "/v1/recovery/start", json: ["user": user]).status == 202)
            _ = try await smtp.waitForMessages(count: 3)

            // Sign-in is untouched: no wait, the throttle counted nothing, and a sign-in code mail still goes out.
            let status = try await d.call("GET", "/v1/users/\(user)", key: "admin")
            #expect((status["throttle"] as? [String: Any])?["failures"] as? Int == 0, "\(status.json)")
            let challenge = try await d.challenge(for: user)
            let mailed = try await d.call("POST", "/v1/login/email-code", json: ["challenge": challenge])
            #expect(mailed.status == 202, "the reset mails starved the sign-in mail: \(mailed.json)")
            try await d.freshStep()
            let finish = try await d.call("POST", "/v1/login/finish", json: ["challenge": challenge, "method": "totp", "code": try await d.code(secret: secret)])
            #expect(finish.status == 200, "\(finish.json)")
            // The fourth reset mail within 15 minutes is held back (answered 202 all the same).
            #expect(try await d.call("POST", "/v1/recovery/start", json: ["user": user]).status == 202)
            try await Task.sleep(for: .milliseconds(500))
            #expect(smtp.messages().filter { $0.subject.lowercased().contains("reset") || $0.body.lowercased().contains("reset") }.count == 3)
        }
    }

    @Test("a failed delivery answers 503 and loses nothing")
    func deliveryFailure() async throws {
        let smtp = try await SMTPServerProcess.start()
        let url = smtp.url
        await smtp.cleanup()  // nothing listens there any more
        try await Deployment.with(environment: ["GATEHOUSE_SMTP_URL": url]) { d in
            let user = "unlucky@example.org"
            #expect(try await d.importUsers([["user": user, "recovery_email": "old@example.net", "verified": true]]).status == 200)
            let start = try await d.call("POST", "/v1/login/start", json: ["user": user])
            let token = ((start["session"] as? [String: Any])?["token"] as? String) ?? ""
            let put = try await d.call("PUT", "/v1/me/recovery-email", json: ["email": "new@example.net"], headers: ["Gatehouse-Session": token])
            #expect(put.status == 503 && put.code == "unavailable")
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": token])
            #expect((me["recovery_email"] as? [String: Any])?["address"] as? String == "old@example.net")
            #expect((me["recovery_email"] as? [String: Any])?["verified"] as? Bool == true)
            #expect(try await d.client.send(["EXISTS", "gh:{\(user)}:recovery-pending"]).integer == 0)
        }
    }
}
