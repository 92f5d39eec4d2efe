import Foundation
import GatehouseCore
import GatehouseRedis
import GatehouseTesting
import Testing

/// The enrolment pages (`/account/enroll`) and the forgot-password pages, driven over HTTP like a
/// browser (a cookie jar, redirects followed by hand) against an in-process node, a real Redis
/// and a real SMTP server whose received codes the tests type in.
@Suite("Enrolment and forgot-password pages", .timeLimit(.minutes(3)))
struct EnrollmentPagesTests {
    /// An SMTP sink and a node delivering to it, with the stand-in webmail on (the sign-in that
    /// leads to the enrolment, and the page the reset token goes to).
    static func with(_ body: (Deployment, SMTPServerProcess, PageClient) async throws -> Void) async throws {
        let smtp = try await SMTPServerProcess.start()
        do {
            let environment = ["GATEHOUSE_SMTP_URL": smtp.url, "GATEHOUSE_MAIL_FROM": "gatehouse@mail.example", "GATEHOUSE_WEB_DEMO": "on"]
            try await Deployment.with(environment: environment) { d in
                try await body(d, smtp, PageClient(base: d.node.baseURL))
            }
            await smtp.cleanup()
        } catch {
            await smtp.cleanup()
            throw error
        }
    }

    /// Signs in to the stand-in webmail; returns the page the hand-off ends on (redirects followed).
    static func demoSignIn(_ browser: PageClient, _ user: String) async throws -> PageClient.Page {
        let login = try await browser.get("/demo/login")
        let csrf = try #require(login.csrf)
        let posted = try await browser.post("/demo/login", ["csrf": csrf, "user": user, "password": "demo-password"])
        #expect(posted.status == 303, "\(posted.body)")
        return try await browser.follow(posted)
    }

    @Test("enrolment under an enforced policy: refusals change nothing; recovery email, authenticator, backup codes, then the webmail")
    func enforcedEnrollment() async throws {
        try await Self.with { d, smtp, browser in
            #expect(try await d.call("PUT", "/v1/domains/enforced.example/policy", key: "admin", json: ["mode": "enforced"]).status == 200)
            let user = "kate@enforced.example"
            let recovery = "kate.backup@other.example"

            let step1 = try await Self.demoSignIn(browser, user)
            #expect(step1.path == "/account/enroll")
            #expect(browser.cookies["gatehouse_challenge"] != nil && browser.cookies["gatehouse_session"] == nil)
            #expect(step1.status == 200 && step1.has(id: "recovery-email") && step1.has(id: "recovery-email-again") && step1.has(id: "send-code"))
            let csrf = try #require(step1.csrf)

            // Without the form token: 403, no mail, nothing pending.
            let forged = try await browser.post("/account/enroll/recovery-email", ["recovery_email": recovery, "recovery_email_again": recovery])
            #expect(forged.status == 403 && forged.errorCode == "csrf_failed", "\(forged.status)")
            // Two different addresses: refused, nothing sent.
            let mismatch = try await browser.post(
                "/account/enroll/recovery-email", ["csrf": csrf, "recovery_email": recovery, "recovery_email_again": "kate.bakup@other.example"]
            )
            #expect(mismatch.status == 400 && mismatch.has(id: "error") && mismatch.has(id: "recovery-email"))
            #expect(smtp.messages().isEmpty)
            #expect(try await d.client.send(["EXISTS", "gh:{\(user)}:recovery-pending"]).integer == 0)

            // The same address twice (case does not matter): a code goes to it.
            let sent = try await browser.post(
                "/account/enroll/recovery-email", ["csrf": csrf, "recovery_email": "Kate.Backup@Other.example", "recovery_email_again": recovery]
            )
            #expect(sent.status == 200 && sent.has(id: "recovery-code") && sent.has(id: "confirm-recovery"))
            #expect(sent.text(id: "notice")?.contains("k***@other.example") == true, "\(sent.body)")
            let mailed = try await EmailFlowTests.latestCode(smtp, count: 1, to: recovery)
            let wrongMailed = mailed == "000000" ? "000001" : "000000"
            let wrong = try await browser.post("/account/enroll/recovery-email/confirm", ["csrf": csrf, "code": wrongMailed])
            #expect(wrong.status == 401 && wrong.errorCode == "invalid_code" && wrong.has(id: "recovery-code"))
            let confirmed = try await browser.follow(try await browser.post("/account/enroll/recovery-email/confirm", ["csrf": csrf, "code": mailed]))
            #expect(confirmed.status == 200 && confirmed.has(id: "choose-totp") && confirmed.has(id: "choose-email"), "\(confirmed.body)")
            #expect(confirmed.text(id: "notice")?.contains("confirmed") == true)

            // The authenticator: QR code and the key in groups of four.
            let totp = try await browser.follow(try await browser.post("/account/enroll/totp", ["csrf": csrf]))
            #expect(totp.status == 200 && totp.body.contains(#"<div class="qr" id="qr"><svg"#), "\(totp.body.prefix(2000))")
            let grouped = try #require(totp.text(id: "totp-secret"))
            #expect(grouped.wholeMatch(of: /([A-Z2-7]{4} )*[A-Z2-7]{1,4}/) != nil, "\(grouped)")
            let secret = grouped.replacingOccurrences(of: " ", with: "")

            // A wrong code: the error and the same key again.
            try await d.freshStep()
            let near = Set([try await d.code(secret: secret, offset: -1), try await d.code(secret: secret), try await d.code(secret: secret, offset: 1)])
            let wrongTOTP = try #require((0..<10).map { String(repeating: String($0), count: 6) }.first { !near.contains($0) })
            let again = try await browser.post("/account/enroll/totp/confirm", ["csrf": csrf, "code": wrongTOTP])
            #expect(again.status == 401 && again.errorCode == "invalid_code")
            #expect(again.text(id: "totp-secret") == grouped && again.has(id: "qr"))

            // The right code: two-step on, the sign-in finished, the codes shown once.
            try await d.freshStep()
            let code = try await d.code(secret: secret)
            let done = try await browser.post("/account/enroll/totp/confirm", ["csrf": csrf, "code": code])
            #expect(done.status == 200, "\(done.body)")
            let codes = done.all(#"<li>([0-9a-z]{5}-[0-9a-z]{5})</li>"#)
            #expect(codes.count == 10 && done.body.contains(#"<ol class="codes" id="backup-codes">"#))
            let download = try #require(done.attribute("href", id: "download"))
            #expect(download.hasPrefix("data:text/plain;charset=utf-8,") && done.body.contains(#"download="backup-codes.txt""#))
            let file = try #require(download.dropFirst("data:text/plain;charset=utf-8,".count).removingPercentEncoding)
            #expect(codes.allSatisfy { file.contains($0) } && file.contains(user))
            #expect(done.has(id: "print") && done.body.contains(#"<script src="/account/assets/print.js"></script>"#))
            let appPassword = try #require(done.text(id: "app-password"))
            #expect(appPassword.count >= 16)
            #expect(done.attribute("href", id: "continue") == "/demo/inbox")
            let session = try #require(browser.cookies["gatehouse_session"])
            #expect(browser.cookies["gatehouse_challenge"] == nil)

            // The webmail opens with the new session; the account has two-step on.
            let inbox = try await browser.get("/demo/inbox")
            #expect(inbox.status == 200 && inbox.has(id: "signed-in"))
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": session])
            #expect((me["two_step"] as? [String: Any])?["method"] as? String == "totp")
            #expect(me["backup_codes_remaining"] as? Int == 10)
            #expect((me["recovery_email"] as? [String: Any])?["verified"] as? Bool == true)
            // Enrolled: the page says so instead of offering the steps again.
            let after = try await browser.get("/account/enroll")
            #expect(!after.has(id: "choose-totp") && !after.has(id: "recovery-email"))
            d.expectLogsClean(of: [mailed, code, secret, session, appPassword] + codes)
        }
    }

    @Test("enrolment while signed in: emailed codes, and the codes page goes back to the settings")
    func sessionEmailEnrollment() async throws {
        try await Self.with { d, smtp, browser in
            let user = "lena@example.org"
            let recovery = "lena.backup@example.net"
            let inbox = try await Self.demoSignIn(browser, user)
            #expect(inbox.path == "/demo/inbox" && browser.cookies["gatehouse_session"] != nil)
            let step1 = try await browser.get("/account/enroll")
            let csrf = try #require(step1.csrf)
            // Choosing before the recovery email is confirmed sends the person back to step 1.
            let early = try await browser.post("/account/enroll/email", ["csrf": csrf])
            #expect(early.errorCode == "recovery_email_required" && early.has(id: "recovery-email"))
            let sent = try await browser.post("/account/enroll/recovery-email", ["csrf": csrf, "recovery_email": recovery, "recovery_email_again": recovery])
            #expect(sent.status == 200 && sent.has(id: "recovery-code"))
            let mailed = try await EmailFlowTests.latestCode(smtp, count: 1, to: recovery)
            let choose = try await browser.follow(try await browser.post("/account/enroll/recovery-email/confirm", ["csrf": csrf, "code": mailed]))
            #expect(choose.has(id: "choose-email"))
            let done = try await browser.post("/account/enroll/email", ["csrf": csrf])
            #expect(done.status == 200 && done.all(#"<li>([0-9a-z]{5}-[0-9a-z]{5})</li>"#).count == 10, "\(done.body)")
            #expect(done.attribute("href", id: "continue") == "/account/settings" && done.has(id: "app-password"))
            let me = try await d.call("GET", "/v1/me", headers: ["Gatehouse-Session": try #require(browser.cookies["gatehouse_session"])])
            #expect((me["two_step"] as? [String: Any])?["method"] as? String == "email")
        }
    }

    @Test("forgot password: the same page for every address, a code to a confirmed one, a reset token good once")
    func forgotPassword() async throws {
        try await Self.with { d, smtp, browser in
            let user = "forgetful@example.org"
            let address = "forgetful.backup@example.net"
            #expect(try await d.importUsers([["user": user, "recovery_email": address, "verified": true]]).status == 200)
            let form = try await browser.get("/account/forgot-password")
            #expect(form.status == 200 && form.has(id: "user") && form.has(id: "send-reset-code"))
            let csrf = try #require(form.csrf)
            #expect(try await browser.post("/account/forgot-password", ["user": user]).status == 403)

            let unknown = try await browser.post("/account/forgot-password", ["csrf": csrf, "user": "nobody@example.org"])
            let malformed = try await browser.post("/account/forgot-password", ["csrf": csrf, "user": "not-an-address"])
            let known = try await browser.post("/account/forgot-password", ["csrf": csrf, "user": user])
            #expect(known.status == 200 && known.has(id: "reset-code") && known.has(id: "check-reset-code"))
            #expect(known.text(id: "notice")?.hasPrefix("If this address has a confirmed recovery email, we sent a code to it") == true)
            let shape = known.body.replacingOccurrences(of: user, with: "ADDRESS")
            #expect(unknown.status == known.status && unknown.body.replacingOccurrences(of: "nobody@example.org", with: "ADDRESS") == shape)
            #expect(malformed.status == known.status && malformed.body.replacingOccurrences(of: "not-an-address", with: "ADDRESS") == shape)
            let code = try await EmailFlowTests.latestCode(smtp, count: 1, to: address)
            #expect(smtp.messages().count == 1, "mail only for the known address")

            let wrongCode = code == "111111" ? "222222" : "111111"
            let wrong = try await browser.post("/account/forgot-password/code", ["csrf": csrf, "user": user, "code": wrongCode])
            #expect(wrong.status == 401 && wrong.errorCode == "invalid_code" && wrong.has(id: "reset-code"))
            let right = try await browser.post("/account/forgot-password/code", ["csrf": csrf, "user": user, "code": code])
            #expect(right.status == 200 && right.has(id: "continue-reset"), "\(right.body)")
            #expect(right.body.contains(#"<form method="post" action="/demo/reset-password" id="reset-form">"#))
            let token = try #require(right.first(#"name="reset_token" value="([^"]+)""#))
            let consumed = try await d.call("POST", "/v1/recovery/consume", json: ["reset_token": token])
            #expect(consumed.status == 200 && consumed["user"] as? String == user)
            #expect(try await d.call("POST", "/v1/recovery/consume", json: ["reset_token": token]).status == 401)
            d.expectLogsClean(of: [code, token])
        }
    }
}
