public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A plain-text mail to one recipient.
///
/// ``render(date:messageID:)`` produces the RFC 5322 text sent after `DATA`. Every header value
/// is checked first: a CR or LF in an address, the display name or the subject would let a caller
/// add headers (header injection), so it is refused with ``MailError/Code/invalidMessage``.
/// Addresses are checked simply — one `@`, something on both sides, printable ASCII, no spaces or
/// angle brackets — because the client does not speak SMTPUTF8.
public struct MailMessage: Sendable, Hashable {
    /// The sender's address (`MAIL FROM` and the `From` header).
    public var from: String
    /// An optional display name for `From`, e.g. "Example Mail".
    public var fromName: String?
    /// The recipient's address (`RCPT TO` and the `To` header).
    public var to: String
    /// The subject; non-ASCII text is sent as RFC 2047 encoded-words.
    public var subject: String
    /// The plain-text body; any line endings, any Unicode (sent quoted-printable).
    public var body: String

    /// Creates a message.
    public init(from: String, fromName: String? = nil, to: String, subject: String, body: String) {
        self.from = from
        self.fromName = fromName
        self.to = to
        self.subject = subject
        self.body = body
    }

    /// Checks the addresses and headers without rendering.
    public func validate() throws(MailError) {
        try Self.validateAddress(self.from, role: "sender")
        try Self.validateAddress(self.to, role: "recipient")
        if let fromName { try Self.validateHeaderText(fromName, field: "sender name") }
        try Self.validateHeaderText(self.subject, field: "subject")
    }

    /// The message as RFC 5322 text with CRLF line endings: `From`, `To`, `Subject`, `Date`,
    /// `Message-ID`, `MIME-Version`, `Content-Type: text/plain; charset=utf-8`,
    /// `Content-Transfer-Encoding: quoted-printable`, a blank line and the body.
    ///
    /// The body is quoted-printable so that every line is 7-bit and at most 76 characters: it
    /// then passes any server, whether or not it offers 8BITMIME.
    ///
    /// - Parameters:
    ///   - date: the `Date` header.
    ///   - messageID: the `Message-ID` without angle brackets (`local@domain`); see
    ///     ``makeMessageID(domain:)``.
    public func render(date: Date, messageID: String) throws(MailError) -> String {
        try self.validate()
        guard messageID.split(separator: "@", omittingEmptySubsequences: false).count == 2,
              messageID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") })
        else {
            throw MailError(.invalidMessage, "a Message-ID must be printable ASCII of the form local@domain")
        }
        var from = "<\(self.from)>"
        if let fromName, !fromName.isEmpty { from = Self.encodePhrase(fromName) + " " + from }
        let headers = [
            "From: " + from,
            "To: <\(self.to)>",
            "Subject: " + Self.encodeHeaderText(self.subject),
            "Date: " + Self.rfc5322Date(date),
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + Self.quotedPrintable(self.body)
    }

    /// A fresh random message id `<128 random bits in hex>@domain`.
    public static func makeMessageID(domain: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: ".")
        let domain = domain.isEmpty ? "gatehouse.invalid" : domain
        return "\(random)@\(domain)"
    }

    /// The part of `from` after the `@`, for the Message-ID.
    var senderDomain: String {
        self.from.split(separator: "@").last.map(String.init) ?? ""
    }

    // MARK: Validation

    static func validateAddress(_ address: String, role: String) throws(MailError) {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw MailError(.invalidMessage, "the \(role) address must have exactly one @ with text on both sides")
        }
        guard address.utf8.count <= 254 else {
            throw MailError(.invalidMessage, "the \(role) address is longer than 254 characters")
        }
        for byte in address.utf8 {
            switch byte {
            case 0x0D, 0x0A:
                throw MailError(.invalidMessage, "the \(role) address contains a line break (header injection refused)")
            case ..<0x21, 0x7F...:
                throw MailError(.invalidMessage, "the \(role) address may contain only printable ASCII, no spaces")
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "\""),
                UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"), UInt8(ascii: "["), UInt8(ascii: "]"):
                throw MailError(.invalidMessage, "the \(role) address contains a character addresses here may not have")
            default:
                break
            }
        }
    }

    static func validateHeaderText(_ text: String, field: String) throws(MailError) {
        for scalar in text.unicodeScalars {
            if scalar == "\r" || scalar == "\n" {
                throw MailError(.invalidMessage, "the \(field) contains a line break (header injection refused)")
            }
            if scalar.properties.generalCategory == .control {
                throw MailError(.invalidMessage, "the \(field) contains a control character")
            }
        }
        guard text.utf8.count <= 900 else {
            throw MailError(.invalidMessage, "the \(field) is longer than 900 bytes")
        }
    }

    // MARK: Encodings

    /// `text` as it goes after `Subject: `: itself if it is printable ASCII, else RFC 2047
    /// base64 encoded-words of at most 75 characters, folded onto continuation lines.
    static func encodeHeaderText(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        return encodedWords(text).joined(separator: "\r\n ")
    }

    /// A display name: a quoted string if ASCII and short, encoded-words otherwise. A quoted
    /// string cannot be folded, so a long one (up to 900 bytes, twice that with its escapes)
    /// would make the `From:` line longer than RFC 5322's 998 characters; encoded-words fold.
    static func encodePhrase(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            if escaped.utf8.count <= 70 { return "\"\(escaped)\"" }
        }
        return encodedWords(text).joined(separator: "\r\n ")
    }

    /// `=?utf-8?B?…?=` words. Each holds at most 39 bytes (52 base64 characters, 64 with the
    /// wrapper: under RFC 2047's 75, and `Subject: ` plus one word stays under RFC 5322's 78) and
    /// never splits a character's UTF-8 bytes, as RFC 2047 §5 requires. Split between code
    /// points, not between Swift's Characters: one Character (an accent-laden letter, an emoji
    /// sequence) can be hundreds of bytes, and a word holding it would be longer than 75.
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > 39, !chunk.isEmpty {
                words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words
    }

    /// RFC 2045 §6.7 quoted-printable with CRLF hard line breaks (any of CRLF, CR, LF in `text`
    /// count as one) and `=` soft breaks keeping encoded lines at most 76 characters.
    static func quotedPrintable(_ text: String) -> String {
        // Lines are split on the UTF-8 bytes: to Swift's Characters (and Foundation's search) a
        // CR or CRLF followed by a combining mark is not a line end, and would go out as `=0D`.
        let utf8 = Array(text.utf8)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var position = 0
        while position < utf8.count {
            let byte = utf8[position]
            guard byte == 0x0D || byte == 0x0A else {
                position += 1
                continue
            }
            lines.append(utf8[start..<position])
            position += byte == 0x0D && position + 1 < utf8.count && utf8[position + 1] == 0x0A ? 2 : 1
            start = position
        }
        lines.append(utf8[start...])
        var output = ""
        let hex = Array("0123456789ABCDEF")
        for (index, line) in lines.enumerated() {
            if index > 0 { output += "\r\n" }
            let bytes = Array(line)
            var length = 0
            for (position, byte) in bytes.enumerated() {
                let isLast = position == bytes.count - 1
                let literal = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
                    || ((byte == 0x20 || byte == 0x09) && !isLast)
                let token = literal
                    ? String(UnicodeScalar(byte))
                    : "=" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
                // Leave room for the `=` of a soft break: an encoded line is at most 76
                // characters including it. The last token of a line needs no such room.
                let limit = isLast ? 76 : 75
                if length + token.count > limit {
                    output += "=\r\n"
                    length = 0
                }
                output += token
                length += token.count
            }
        }
        return output
    }

    /// `Thu, 01 Jan 2026 12:00:00 +0000` (RFC 5322 §3.3), in UTC, independent of the locale.
    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
