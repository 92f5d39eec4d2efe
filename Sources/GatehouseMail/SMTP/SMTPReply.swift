/// One SMTP reply: a three-digit code and its text lines (RFC 5321 §4.2). A multi-line reply
/// (`250-first`, `250-second`, `250 last`) is one reply with several lines.
package struct SMTPReply: Sendable, Hashable {
    /// The reply code, 200…599.
    package var code: Int
    /// The text after the code on each line (without the code and the `-`/space separator).
    package var lines: [String]

    package init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// 2xx.
    package var isPositive: Bool { (200..<300).contains(self.code) }
    /// 3xx (`354` after DATA, `334` during AUTH).
    package var isIntermediate: Bool { (300..<400).contains(self.code) }

    /// The reply in one line, for error messages: `550 5.1.1 No such user`.
    package var summary: String {
        let text = self.lines.joined(separator: " / ")
        return text.isEmpty ? "\(self.code)" : "\(self.code) \(text)"
    }
}

/// The extensions a server announced in its EHLO reply (RFC 5321 §4.1.1.1): every line after
/// the first is a keyword with optional parameters.
package struct SMTPExtensions: Sendable, Hashable {
    private var keywords: [String: [String]] = [:]

    /// No extensions (after HELO).
    package init() {}

    /// The extensions in an EHLO reply.
    package init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ").map(String.init)
            guard let first = words.first else { continue }
            // Some old servers wrote `AUTH=LOGIN PLAIN`; treat it as `AUTH LOGIN PLAIN`.
            if first.uppercased().hasPrefix("AUTH=") {
                self.keywords["AUTH", default: []] += [String(first.dropFirst(5))] + words.dropFirst()
            } else {
                self.keywords[first.uppercased(), default: []] += words.dropFirst()
            }
        }
    }

    /// Whether `keyword` (case-insensitive) was announced.
    package func contains(_ keyword: String) -> Bool {
        self.keywords[keyword.uppercased()] != nil
    }

    /// The parameters announced with `keyword`, upper-cased (e.g. the AUTH mechanisms).
    package func parameters(_ keyword: String) -> [String] {
        (self.keywords[keyword.uppercased()] ?? []).map { $0.uppercased() }
    }
}

/// Collects bytes from the server and cuts them into replies. Tolerates bare LF line ends; bounds
/// line length and line count so a hostile or broken server cannot make the client buffer
/// without end.
package struct SMTPReplyParser: Sendable {
    /// Longest reply line accepted, CRLF included (RFC 5321 allows 512; real servers exceed it).
    package static let maximumLineLength = 4096
    /// Most lines in one reply.
    package static let maximumLines = 256

    private var buffer: [UInt8] = []
    private var pendingCode: Int?
    private var pendingLines: [String] = []

    package init() {}

    /// Whether bytes are buffered that do not yet form a complete reply. Checked after the `220`
    /// to STARTTLS: bytes sent before the handshake must not be read as if they came over TLS
    /// (the STARTTLS command-injection attack, CVE-2011-0411 and kin).
    package var hasBufferedBytes: Bool { !self.buffer.isEmpty || self.pendingCode != nil }

    /// Adds bytes read from the connection.
    package mutating func append(_ bytes: some Sequence<UInt8>) {
        self.buffer.append(contentsOf: bytes)
    }

    /// The next complete reply, or `nil` if more bytes are needed.
    package mutating func next() throws(MailError) -> SMTPReply? {
        while let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
            var line = self.buffer[..<newline]
            self.buffer.removeSubrange(...newline)
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            guard line.count + 2 <= Self.maximumLineLength else {
                throw MailError(.protocolError, "the server sent a reply line longer than \(Self.maximumLineLength) bytes")
            }
            guard line.count >= 3,
                  line.prefix(3).allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let code = Int(String(decoding: line.prefix(3), as: UTF8.self)),
                  (200...599).contains(code)
            else {
                throw MailError(.protocolError, "the server sent a line that is not an SMTP reply: \(Self.printable(line))")
            }
            let separator = line.count > 3 ? line[line.startIndex + 3] : UInt8(ascii: " ")
            guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else {
                throw MailError(.protocolError, "the server sent a malformed reply line: \(Self.printable(line))")
            }
            if let pendingCode, pendingCode != code {
                throw MailError(.protocolError, "the server changed the reply code within a multi-line reply (\(pendingCode), then \(code))")
            }
            let text = line.count > 4 ? String(decoding: line.dropFirst(4), as: UTF8.self) : ""
            self.pendingCode = code
            self.pendingLines.append(text)
            guard self.pendingLines.count <= Self.maximumLines else {
                throw MailError(.protocolError, "the server sent a reply of more than \(Self.maximumLines) lines")
            }
            if separator == UInt8(ascii: " ") {
                let reply = SMTPReply(code: code, lines: self.pendingLines)
                self.pendingCode = nil
                self.pendingLines = []
                return reply
            }
        }
        guard self.buffer.count < Self.maximumLineLength else {
            throw MailError(.protocolError, "the server sent a reply line longer than \(Self.maximumLineLength) bytes")
        }
        return nil
    }

    private static func printable(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix(80), as: UTF8.self).unicodeScalars
            .map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined()
    }
}

/// SMTP data transparency (RFC 5321 §4.5.2): a line that starts with `.` gets another `.` in
/// front, so that no line of the message can be the end-of-data marker. `message` must already
/// have CRLF line ends; the result ends with CRLF (added if missing) and then `.` CRLF.
package func smtpDataPayload(_ message: String) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(message.utf8.count + 64)
    var atLineStart = true
    for byte in message.utf8 {
        if atLineStart && byte == UInt8(ascii: ".") { output.append(UInt8(ascii: ".")) }
        output.append(byte)
        atLineStart = byte == UInt8(ascii: "\n")
    }
    if !(output.count >= 2 && output[output.count - 2] == 0x0D && output[output.count - 1] == 0x0A) {
        output += [0x0D, 0x0A]
    }
    output += [UInt8(ascii: "."), 0x0D, 0x0A]
    return output
}
