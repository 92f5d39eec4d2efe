import GatehouseService
import HTTPTypes

/// nginx's mail proxy protocol (`ngx_mail_auth_http_module`) as a value type, with no I/O: the
/// request nginx sends for each IMAP, POP3 or SMTP login, read from its headers, and the headers
/// Gatehouse answers with. nginx ignores the status line and the body: everything it uses is in
/// `Auth-*` headers, so every answer, refusals and malformed requests included, carries
/// `Auth-Status` (docs/mail-servers.md).
struct MailProxyRequest: Equatable {
    /// `Auth-Method`: nginx sends `plain` for both AUTH PLAIN/LOGIN and IMAP/POP3 plain logins.
    enum Method: String {
        case plain, apop, cramMD5 = "cram-md5", external, none
    }

    var method: Method
    /// `Auth-User`, URL-unescaped (nginx escapes it).
    var login: String
    /// `Auth-Pass`, URL-unescaped.
    var password: String
    var service: MailService
    /// `Auth-Login-Attempt`: the attempt number within one client connection (from 1).
    var attempt: Int
    /// `Client-IP`.
    var clientIP: String?

    enum Header {
        static let method = HTTPField.Name("Auth-Method")!
        static let user = HTTPField.Name("Auth-User")!
        static let pass = HTTPField.Name("Auth-Pass")!
        static let `protocol` = HTTPField.Name("Auth-Protocol")!
        static let attempt = HTTPField.Name("Auth-Login-Attempt")!
        static let clientIP = HTTPField.Name("Client-IP")!
        static let status = HTTPField.Name("Auth-Status")!
        static let server = HTTPField.Name("Auth-Server")!
        static let port = HTTPField.Name("Auth-Port")!
        static let wait = HTTPField.Name("Auth-Wait")!
        static let errorCode = HTTPField.Name("Auth-Error-Code")!
    }

    /// What is wrong with a request, in words for the log and the problem body.
    struct Malformed: Error, Equatable {
        var detail: String
    }

    /// Reads the request; each header at most once.
    init(_ headers: HTTPFields) throws(Malformed) {
        func one(_ name: HTTPField.Name, required: Bool = true) throws(Malformed) -> String? {
            let values = headers[values: name]
            guard values.count <= 1 else { throw Malformed(detail: "\(name) appears more than once") }
            guard let value = values.first else {
                if required { throw Malformed(detail: "\(name) is missing") }
                return nil
            }
            return value
        }
        guard let method = Method(rawValue: try one(Header.method)!.lowercased()) else {
            throw Malformed(detail: "Auth-Method must be plain, apop, cram-md5, external or none")
        }
        guard let service = MailService(rawValue: try one(Header.protocol)!.lowercased()) else {
            throw Malformed(detail: "Auth-Protocol must be imap, pop3 or smtp")
        }
        let attemptText = try one(Header.attempt, required: false) ?? "1"
        guard let attempt = Int(attemptText), attempt >= 1, attempt <= 1_000_000 else {
            throw Malformed(detail: "Auth-Login-Attempt must be a positive integer")
        }
        let clientIP = try one(Header.clientIP, required: false)
        if let clientIP, ipBudgetKey(clientIP) == nil { throw Malformed(detail: "Client-IP must be an IPv4 or IPv6 address") }
        guard let login = Self.unescape(try one(Header.user, required: method != .none) ?? "", limit: 254) else {
            throw Malformed(detail: "Auth-User is not a valid URL-escaped string of at most 254 bytes")
        }
        guard let password = Self.unescape(try one(Header.pass, required: method != .none) ?? "", limit: 1024) else {
            throw Malformed(detail: "Auth-Pass is not a valid URL-escaped string of at most 1024 bytes")
        }
        self.method = method
        self.login = login
        self.password = password
        self.service = service
        self.attempt = attempt
        self.clientIP = clientIP
    }

    /// Undoes nginx's escaping of `Auth-User` and `Auth-Pass` (`%XX` for `%`, space, controls and
    /// bytes above 0x7E; `+` stays `+`). Nil for a broken escape, invalid UTF-8, a NUL or more
    /// than `limit` bytes.
    static func unescape(_ text: String, limit: Int) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        func hex(_ byte: UInt8?) -> UInt8? {
            switch byte {
            case let b? where b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"): b - UInt8(ascii: "0")
            case let b? where b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
            case let b? where b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = hex(iterator.next()), let low = hex(iterator.next()) else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
            guard bytes.count <= limit else { return nil }
        }
        guard !bytes.contains(0) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// The headers of one answer to nginx.
struct MailProxyAnswer: Equatable {
    /// After this many attempts in one connection nginx is told to close it (no `Auth-Wait`):
    /// nginx keeps memory per attempt until the connection ends, and its documentation asks
    /// for an answer without `Auth-Wait` after 10 to 20 attempts.
    static let attemptsPerConnection = 10

    var fields: [(name: HTTPField.Name, value: String)]

    static func == (a: MailProxyAnswer, b: MailProxyAnswer) -> Bool {
        a.fields.map { "\($0.name): \($0.value)" } == b.fields.map { "\($0.name): \($0.value)" }
    }

    subscript(_ name: HTTPField.Name) -> String? { fields.first { $0.name == name }?.value }

    /// The login is accepted: nginx connects to `server` and logs in there as `backendLogin`
    /// (nil: with the client's own login and password).
    static func accepted(server: GatehouseConfiguration.MailBackend.Server, backendLogin: (user: String, password: String)?) -> MailProxyAnswer {
        var fields: [(HTTPField.Name, String)] = [
            (MailProxyRequest.Header.status, "OK"),
            (MailProxyRequest.Header.server, server.address),
            (MailProxyRequest.Header.port, String(server.port)),
        ]
        if let backendLogin {
            fields.append((MailProxyRequest.Header.user, backendLogin.user))
            fields.append((MailProxyRequest.Header.pass, backendLogin.password))
        }
        return MailProxyAnswer(fields: fields)
    }

    /// Why a login is refused, each with the text the mail client shows its user.
    enum Refusal: Equatable {
        case notAnAppPassword
        case otherService(MailService)
        case throttled(seconds: Int)
        case notAnAddress
        case unsupportedMethod
        case authenticationRequired
        case serviceNotOffered(MailService)
        case temporaryFailure
        case malformed

        var text: String {
            switch self {
            case .notAnAppPassword:
                "Two-step verification is on for this account: sign in with an app password, not your account password"
            case .otherService(let service):
                "This app password is not allowed for \(service.displayName): use an app password made for \(service.displayName)"
            case .throttled(let seconds):
                "Too many failed logins from your address: try again in \(Self.duration(seconds))"
            case .notAnAddress:
                "Sign in with your full email address"
            case .unsupportedMethod:
                "This login method is not supported: use a password login (AUTH PLAIN or LOGIN) over TLS"
            case .authenticationRequired:
                "Authentication required"
            case .serviceNotOffered(let service):
                "\(service.displayName) is not offered here"
            case .temporaryFailure:
                "Temporary authentication failure: try again later"
            case .malformed:
                "Invalid login request"
            }
        }

        /// The response code that leads the text for IMAP (RFC 5530) and POP3 (RFC 3206), so a
        /// mail client can tell wrong credentials (ask the user) from a temporary failure (try
        /// again later); nginx sends the text after `NO` or `-ERR`. SMTP has `Auth-Error-Code`.
        func responseCode(_ service: MailService) -> String? {
            switch (self, service) {
            case (.malformed, _), (_, .smtp): nil
            case (.notAnAppPassword, .imap), (.otherService, .imap), (.notAnAddress, .imap), (.authenticationRequired, .imap): "AUTHENTICATIONFAILED"
            case (.throttled, .imap), (.temporaryFailure, .imap): "UNAVAILABLE"
            case (.unsupportedMethod, .imap), (.serviceNotOffered, .imap): "CANNOT"
            case (.notAnAppPassword, .pop3), (.otherService, .pop3), (.notAnAddress, .pop3), (.authenticationRequired, .pop3): "AUTH"
            case (.throttled, .pop3), (.temporaryFailure, .pop3): "SYS/TEMP"
            case (.unsupportedMethod, .pop3), (.serviceNotOffered, .pop3): "SYS/PERM"
            }
        }

        /// `Auth-Error-Code` for SMTP (RFC 4954 and enhanced status codes).
        var smtpCode: String {
            switch self {
            case .notAnAppPassword, .otherService, .notAnAddress: "535 5.7.8"
            case .throttled, .temporaryFailure: "454 4.7.0"
            case .unsupportedMethod: "504 5.5.4"
            case .authenticationRequired: "530 5.7.0"
            case .serviceNotOffered: "554 5.7.0"
            case .malformed: "501 5.5.2"
            }
        }

        private static func duration(_ seconds: Int) -> String {
            if seconds < 90 { return seconds == 1 ? "1 second" : "\(seconds) seconds" }
            let minutes = (seconds + 59) / 60
            return "\(minutes) minutes"
        }
    }

    /// A refusal. nginx holds it for `wait` seconds and lets the client try again on the same
    /// connection; without a wait (or once the connection has used its attempts) it answers and
    /// closes the connection.
    static func refused(_ refusal: Refusal, service: MailService?, wait: Int?, attempt: Int) -> MailProxyAnswer {
        let code = service.flatMap(refusal.responseCode).map { "[\($0)] " } ?? ""
        var fields: [(HTTPField.Name, String)] = [(MailProxyRequest.Header.status, code + refusal.text)]
        if let wait, attempt < attemptsPerConnection {
            fields.append((MailProxyRequest.Header.wait, String(max(1, wait))))
        }
        if service == .smtp || service == nil {
            fields.append((MailProxyRequest.Header.errorCode, refusal.smtpCode))
        }
        return MailProxyAnswer(fields: fields)
    }
}

extension MailService {
    /// The protocol's name as mail clients show it.
    var displayName: String {
        switch self {
        case .imap: "IMAP"
        case .pop3: "POP3"
        case .smtp: "SMTP"
        }
    }
}
