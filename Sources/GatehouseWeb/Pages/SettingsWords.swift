import Foundation
import GatehouseService

/// The settings page's values in words a person reads: times, mail services, how a session
/// signed in, which browser a device is, and what a security event means. The service stores
/// codes (`otp`, `imap`, `second_step_failed`); people should not have to decode them.
enum SettingsWords {
    // MARK: Times

    /// UTC, so that every node and every reader sees the same text for the same moment.
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// "3 Dec 2026, 14:05 UTC".
    static func time(_ unix: Int64) -> String {
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: Date(timeIntervalSince1970: TimeInterval(unix)))
        let month = months[max(0, min(11, (parts.month ?? 1) - 1))]
        return "\(parts.day ?? 1) \(month) \(parts.year ?? 1970), \(two(parts.hour ?? 0)):\(two(parts.minute ?? 0)) UTC"
    }

    /// "2026-12-03T14:05:09Z", for `<time datetime>`.
    static func iso(_ unix: Int64) -> String {
        let p = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(unix)))
        return "\(p.year ?? 1970)-\(two(p.month ?? 1))-\(two(p.day ?? 1))T\(two(p.hour ?? 0)):\(two(p.minute ?? 0)):\(two(p.second ?? 0))Z"
    }

    private static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }

    // MARK: Mail services and methods

    /// "IMAP", "POP", "SMTP" (the names mail apps show in their settings).
    static func service(_ raw: String) -> String {
        switch raw {
        case "imap": "IMAP"
        case "pop3": "POP"
        case "smtp": "SMTP"
        default: raw.uppercased()
        }
    }

    /// "IMAP, POP and SMTP".
    static func services(_ raws: [String]) -> String {
        list(raws.map(service))
    }

    /// The account's second step, as the status line names it.
    static func method(_ method: DomainPolicy.Method) -> String {
        switch method {
        case .totp: "Authenticator app"
        case .email: "Codes sent to your recovery email"
        case .passkey: "Passkey"
        }
    }

    /// How a session signed in, from its `amr` values.
    static func signedIn(amr: [String]) -> String {
        let methods = Set(amr)
        if methods.contains("remember") { return "Password on a remembered device" }
        if methods.contains("passkey") { return "Password and passkey" }
        if methods.contains("otp") { return "Password and authenticator app" }
        if methods.contains("email") { return "Password and emailed code" }
        if methods.contains("backup") { return "Password and backup code" }
        if methods.contains("pwd") { return "Password only" }
        return "Unknown"
    }

    /// "a", "a and b", "a, b and c".
    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: ""
        case 1: items[0]
        default: items.dropLast().joined(separator: ", ") + " and " + items[items.count - 1]
        }
    }

    // MARK: Devices

    /// "Firefox on Linux", "Safari on iPhone", "Thunderbird on Windows"; the user agent itself
    /// (cut to 60 characters) when neither part is recognised; "Unknown device" without one.
    static func device(userAgent: String?) -> String {
        guard let agent = userAgent?.trimmingCharacters(in: .whitespaces), !agent.isEmpty else { return "Unknown device" }
        let browser = Self.browser(agent)
        let system = Self.system(agent)
        switch (browser, system) {
        case (let b?, let s?): return "\(b) on \(s)"
        case (let b?, nil): return b
        case (nil, let s?): return "A browser on \(s)"
        case (nil, nil): return agent.count > 60 ? String(agent.prefix(60)) + "…" : agent
        }
    }

    /// Checked in this order because browsers name their ancestors too (Edge says "Chrome" and
    /// "Safari", Chrome says "Safari").
    private static func browser(_ agent: String) -> String? {
        let rules: [(String, String)] = [
            ("Thunderbird/", "Thunderbird"), ("Edg/", "Edge"), ("EdgA/", "Edge"), ("EdgiOS/", "Edge"), ("OPR/", "Opera"),
            ("SamsungBrowser/", "Samsung Internet"), ("FxiOS/", "Firefox"), ("Firefox/", "Firefox"), ("CriOS/", "Chrome"),
            ("Chromium/", "Chromium"), ("Chrome/", "Chrome"), ("Version/", "Safari"), ("curl/", "curl"),
        ]
        return rules.first { agent.contains($0.0) }?.1
    }

    private static func system(_ agent: String) -> String? {
        let rules: [(String, String)] = [
            ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"), ("X11", "Linux"),
        ]
        return rules.first { agent.contains($0.0) }?.1
    }

    // MARK: Security events

    /// One event in a sentence. The types are those the service records (`event(_:_:)` and the
    /// code-check script); a type this page does not know yet still reads as a sentence.
    static func event(_ event: SecurityEvent) -> String {
        let detail = event.detail ?? ""
        switch event.type {
        case "second_step_succeeded":
            switch detail {
            case "totp": return "Signed in with your authenticator app"
            case "email": return "Signed in with a code sent to your recovery email"
            case "backup_code": return "Signed in with a backup code"
            case "passkey": return "Signed in with a passkey"
            default: return "Signed in with your second step"
            }
        case "second_step_failed": return detail == "passkey" ? "A passkey sign-in was refused" : "A wrong code was entered"
        case "second_step_replay": return "A code that was already used was entered again"
        case "second_step_throttled": return "Sign-in was paused after too many wrong codes"
        case "backup_code_used": return "A backup code was used"
        case "device_remembered": return "A device was remembered, so it skips the code at sign-in"
        case "device_used": return "Signed in on a remembered device"
        case "device_theft_detected": return "A copy of a remembered device's cookie was used; that device was forgotten"
        case "device_revoked": return detail == "all" ? "All remembered devices were forgotten" : "A remembered device was forgotten"
        case "two_step_enabled":
            switch detail {
            case "totp": return "Two-step verification was turned on with an authenticator app"
            case "email": return "Two-step verification was turned on with codes by email"
            default: return "Two-step verification was turned on"
            }
        case "two_step_disabled": return "Two-step verification was turned off"
        case "passkey_registered": return detail.isEmpty ? "A passkey was added" : "The passkey “\(detail)” was added"
        case "passkey_removed": return "A passkey was removed"
        case "passkey_counter_regressed": return "A passkey answered as if it had been copied; that sign-in was refused"
        case "backup_codes_regenerated": return "New backup codes were made; the old ones stopped working"
        case "sessions_revoked":
            if let count = Int(detail) {
                return count == 1 ? "Signed out everywhere else (1 other session)" : "Signed out everywhere else (\(count) other sessions)"
            }
            return "Signed out everywhere else"
        case "session_revoked": return "A session was signed out"
        case "password_changed": return "Your password was changed; other sessions, remembered devices and app passwords were ended"
        case "recovery_email_code_sent": return detail.isEmpty ? "A confirmation code was sent to a recovery email" : "A confirmation code was sent to \(detail)"
        case "recovery_email_verified": return detail.isEmpty ? "Your recovery email was confirmed" : "Your recovery email \(detail) was confirmed"
        case "recovery_code_sent": return "A password reset code was sent to your recovery email"
        case "recovery_verified": return "A password reset code was entered correctly"
        case "recovery_consumed": return "Your password was reset"
        case "app_password_created": return detail.isEmpty ? "An app password was created" : "The app password “\(detail)” was created"
        case "app_password_revoked": return "An app password was revoked"
        case "app_password_revealed": return "An app password was shown again"
        case "app_password_used":
            return detail.isEmpty ? "An app password was used from a new address" : "An app password was used for \(service(detail)) from a new address"
        case "mail_stale_password":
            let scope = detail.isEmpty ? "" : " for \(service(detail))"
            return "A mail app keeps trying an old password\(scope); give it an app password"
        default: return "A change was made to your account's security"
        }
    }
}
