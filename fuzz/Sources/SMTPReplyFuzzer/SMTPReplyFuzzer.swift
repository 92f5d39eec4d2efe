import Foundation
import FuzzSupport
import GatehouseMail

// libFuzzer target over what the SMTP client reads from a server and writes to it.
//
// The first byte picks how the rest is used:
// 0. as bytes from a server, in pieces as reads deliver them: SMTPReplyParser gives the same
//    replies and the same error whether it gets the bytes in one piece or in many, and the same
//    as a whole-stream reading of RFC 5321 §4.2 (below); every reply has a code in 200…599 and
//    1…256 lines, written out again it reads back the same; `hasBufferedBytes` (the STARTTLS
//    injection check) is true exactly when bytes of an unfinished reply are held; EHLO
//    extensions name every keyword announced;
// 1. as a message (sender, display name, recipient, subject, body): MailMessage.render refuses
//    exactly what its documented rules refuse, and what it renders is 7-bit text in CRLF lines
//    of at most 998 characters, with encoded-words of at most 75 characters that decode to the
//    subject and display name, and a quoted-printable body of lines of at most 76 characters
//    that decodes to the body; the DATA payload of it (dot-stuffed) ends at its terminator and
//    nowhere before, and un-stuffed gives the message back.

@main
enum SMTPReplyFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input) }
    }
}

func fuzzOneInput(_ input: FuzzInput) {
    var input = input
    switch input.byte() % 2 {
    case 0: checkReplies(&input)
    default: checkMessage(&input)
    }
}

// MARK: Replies

/// What a parser made of a stream: the replies, the error that ended it, and whether bytes of an
/// unfinished reply were held at the end.
private struct Outcome: Equatable {
    var replies: [SMTPReply] = []
    var error: String?
    var buffered = false
}

private func run(_ pieces: [ArraySlice<UInt8>]) -> Outcome {
    var parser = SMTPReplyParser()
    var outcome = Outcome()
    do throws(MailError) {
        for piece in pieces {
            parser.append(piece)
            // As SMTPSession.readReply does: take every complete reply before the next read.
            while let reply = try parser.next() { outcome.replies.append(reply) }
        }
        outcome.buffered = parser.hasBufferedBytes
    } catch {
        outcome.error = error.message
    }
    return outcome
}

private func checkReplies(_ input: inout FuzzInput) {
    let cuts = input.bytes(input.int(in: 0...8))
    let stream = input.rest()
    var cutInput = FuzzInput(cuts)
    let whole = run([stream[...]])
    let split = run(pieces(of: stream, maxPieces: 9, input: &cutInput))
    let reference = referenceRead(stream)
    Fuzz.check(whole == reference, "the parser read \(whole), RFC 5321 reads \(reference) in \(printable(stream))")
    Fuzz.check(split == whole, "in pieces the parser read \(split), in one piece \(whole)")
    // Byte by byte too (for shorter streams: each read rescans what is buffered).
    if stream.count <= 2048 {
        let bytewise = run(stream.indices.map { stream[$0...$0] })
        Fuzz.check(bytewise == whole, "byte by byte the parser read \(bytewise), in one piece \(whole)")
    }
    for reply in whole.replies {
        Fuzz.check((200...599).contains(reply.code) && (1...SMTPReplyParser.maximumLines).contains(reply.lines.count), "reply \(reply)")
        _ = reply.summary
        checkExtensions(reply)
        // Written out again (as a server would), it reads back the same — when it still fits: a
        // byte that is not UTF-8 was read as U+FFFD, three bytes when written again.
        guard reply.lines.allSatisfy({ $0.utf8.count + 6 <= SMTPReplyParser.maximumLineLength }) else { continue }
        var text: [UInt8] = []
        for (i, line) in reply.lines.enumerated() {
            text += Array("\(reply.code)\(i == reply.lines.count - 1 ? " " : "-")\(line)\r\n".utf8)
        }
        let again = run([text[...]])
        Fuzz.check(again.replies == [reply] && again.error == nil && !again.buffered, "reply \(reply) written as \(printable(text)) reads back as \(again)")
    }
}

/// RFC 5321 §4.2 over the whole stream, line by line (LF ends a line; a CR before it is dropped):
/// a line is `ddd` (200…599), then `-` (more lines follow) or a space or nothing, then text; the
/// lines of one reply share its code. The client's bounds: lines of at most 4096 bytes with their
/// line end, replies of at most 256 lines; an unfinished line of 4096 bytes or more is refused.
private func referenceRead(_ stream: [UInt8]) -> Outcome {
    var outcome = Outcome()
    var lines = stream.split(separator: 0x0A, omittingEmptySubsequences: false)
    let tail = lines.removeLast()
    var code: Int?
    var texts: [String] = []
    for var line in lines {
        if line.last == 0x0D { line = line.dropLast() }
        guard line.count + 2 <= SMTPReplyParser.maximumLineLength else {
            outcome.error = "the server sent a reply line longer than \(SMTPReplyParser.maximumLineLength) bytes"
            return outcome
        }
        let digits = Array(line.prefix(3))
        guard digits.count == 3, digits.allSatisfy({ (0x30...0x39).contains($0) }),
              case let c = digits.reduce(0, { $0 * 10 + Int($1 - 0x30) }), (200...599).contains(c) else {
            outcome.error = "the server sent a line that is not an SMTP reply: \(printableLine(line))"
            return outcome
        }
        let separator = line.count > 3 ? line[line.startIndex + 3] : 0x20
        guard separator == 0x20 || separator == UInt8(ascii: "-") else {
            outcome.error = "the server sent a malformed reply line: \(printableLine(line))"
            return outcome
        }
        if let code, code != c {
            outcome.error = "the server changed the reply code within a multi-line reply (\(code), then \(c))"
            return outcome
        }
        code = c
        texts.append(line.count > 4 ? String(decoding: line.dropFirst(4), as: UTF8.self) : "")
        guard texts.count <= SMTPReplyParser.maximumLines else {
            outcome.error = "the server sent a reply of more than \(SMTPReplyParser.maximumLines) lines"
            return outcome
        }
        if separator == 0x20 {
            outcome.replies.append(SMTPReply(code: c, lines: texts))
            code = nil
            texts = []
        }
    }
    guard tail.count < SMTPReplyParser.maximumLineLength else {
        outcome.error = "the server sent a reply line longer than \(SMTPReplyParser.maximumLineLength) bytes"
        return outcome
    }
    outcome.buffered = !tail.isEmpty || code != nil
    return outcome
}

/// As the parser shows a line in an error: its first 80 bytes, control characters as `?`.
private func printableLine(_ line: ArraySlice<UInt8>) -> String {
    String(decoding: line.prefix(80), as: UTF8.self).unicodeScalars
        .map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined()
}

/// Every keyword of an EHLO reply (the first word of each line after the first) is announced;
/// `AUTH=…` counts as AUTH.
private func checkExtensions(_ reply: SMTPReply) {
    let extensions = SMTPExtensions(ehlo: reply)
    for line in reply.lines.dropFirst() {
        guard let first = line.split(separator: " ").first.map(String.init) else { continue }
        let keyword = first.uppercased().hasPrefix("AUTH=") ? "AUTH" : first
        Fuzz.check(extensions.contains(keyword), "EHLO line \(line.debugDescription) announces \(keyword), not found")
    }
    _ = extensions.parameters("AUTH")
}

// MARK: Messages

private func checkMessage(_ input: inout FuzzInput) {
    func text(_ max: Int) -> String {
        switch input.byte() % 4 {
        case 0: "user\(input.byte())@example.org"
        case 1: "Your sign-in code \(input.byte())"
        default: String(decoding: input.piece(maxLength: max), as: UTF8.self)
        }
    }
    let from = text(300)
    let fromName: String? = input.bool() ? text(1000) : nil
    let to = text(300)
    let subject = text(1000)
    let seconds = Double(input.int(in: 0...4_102_444_800))
    let body = String(decoding: input.rest(), as: UTF8.self)
    let message = MailMessage(from: from, fromName: fromName, to: to, subject: subject, body: body)

    let allowed = isAddress(from) && isAddress(to) && (fromName.map(isHeaderText) ?? true) && isHeaderText(subject)
    let rendered: String
    do throws(MailError) {
        rendered = try message.render(date: Date(timeIntervalSince1970: seconds), messageID: "fuzz.1@example.org")
    } catch {
        Fuzz.check(!allowed && error.code == .invalidMessage, "render refused a message its rules allow (\(error)): \(message)")
        return
    }
    Fuzz.check(allowed, "render accepted a message its rules refuse: \(message)")
    let bytes = Array(rendered.utf8)
    Fuzz.check(bytes.allSatisfy { $0 < 0x80 && ($0 >= 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A) && $0 != 0x7F },
               "the rendered message is not 7-bit text: \(rendered.debugDescription)")
    // CRLF lines only.
    for (i, b) in bytes.enumerated() {
        if b == 0x0D { Fuzz.check(i + 1 < bytes.count && bytes[i + 1] == 0x0A, "a bare CR in \(rendered.debugDescription)") }
        if b == 0x0A { Fuzz.check(i > 0 && bytes[i - 1] == 0x0D, "a bare LF in \(rendered.debugDescription)") }
    }
    let lines = rendered.components(separatedBy: "\r\n")
    Fuzz.check(lines.allSatisfy { $0.utf8.count <= 998 }, "a line longer than 998 characters in \(rendered.debugDescription)")
    guard let blank = lines.firstIndex(of: "") else { Fuzz.fail("no blank line after the header in \(rendered.debugDescription)") }
    // Unfold the header: a continuation line starts with a space.
    var fields: [String] = []
    for line in lines[..<blank] {
        if line.hasPrefix(" ") { fields[fields.count - 1] += line } else { fields.append(line) }
    }
    Fuzz.check(fields.count == 8, "the header has \(fields.count) fields: \(fields)")
    let subjectField = fields.first { $0.hasPrefix("Subject: ") } ?? ""
    let subjectValue = String(subjectField.dropFirst(9))
    let subjectText = isPlain(subject) ? subjectValue : decodeHeader(subjectValue, in: rendered)
    Fuzz.check(Array(subjectText.utf8) == Array(subject.utf8), "Subject \(subjectField.debugDescription) is not \(subject.debugDescription)")
    if let fromName, !fromName.isEmpty {
        let fromField = fields.first { $0.hasPrefix("From: ") } ?? ""
        let value = String(fromField.dropFirst(6))
        Fuzz.check(value.hasSuffix(" <\(from)>"), "From \(fromField.debugDescription)")
        let phrase = String(value.dropLast(from.utf8.count + 3))
        let name: String
        if isPlain(fromName), phrase.hasPrefix("\"") {
            // A quoted string: a backslash takes the next character as it is.
            var unquoted: [UInt8] = []
            var escaped = false
            for byte in phrase.utf8.dropFirst().dropLast() {
                if !escaped, byte == UInt8(ascii: "\\") { escaped = true; continue }
                Fuzz.check(escaped || byte != UInt8(ascii: "\""), "an unescaped quote inside the display name \(phrase.debugDescription)")
                escaped = false
                unquoted.append(byte)
            }
            name = String(decoding: unquoted, as: UTF8.self)
        } else {
            name = decodeHeader(phrase, in: rendered)
        }
        Fuzz.check(Array(name.utf8) == Array(fromName.utf8), "From's name \(phrase.debugDescription) is not \(fromName.debugDescription)")
    }
    // The body: quoted-printable lines of at most 76 characters that decode to the body.
    let bodyLines = Array(lines[(blank + 1)...])
    Fuzz.check(bodyLines.allSatisfy { $0.utf8.count <= 76 }, "a body line longer than 76 characters in \(rendered.debugDescription)")
    // Line ends as bytes: CRLF, a lone CR and a lone LF each end one line.
    var normalized: [UInt8] = []
    let bodyBytes = Array(body.utf8)
    var i = 0
    while i < bodyBytes.count {
        if bodyBytes[i] == 0x0D || bodyBytes[i] == 0x0A {
            normalized += [0x0D, 0x0A]
            i += bodyBytes[i] == 0x0D && i + 1 < bodyBytes.count && bodyBytes[i + 1] == 0x0A ? 2 : 1
        } else {
            normalized.append(bodyBytes[i])
            i += 1
        }
    }
    let decoded = decodeQuotedPrintable(bodyLines)
    if decoded != normalized {
        let at = (0..<min(decoded.count, normalized.count)).first { decoded[$0] != normalized[$0] } ?? min(decoded.count, normalized.count)
        Fuzz.fail("the body decodes to something else from byte \(at): \(printable(Array(decoded[at...].prefix(40)))) instead of \(printable(Array(normalized[at...].prefix(40)))) in \(rendered.debugDescription)")
    }

    checkDataPayload(rendered)
}

/// Printable ASCII, which a header carries as it is (a short display name as a quoted string).
private func isPlain(_ text: String) -> Bool {
    text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
}

/// Addresses as MailMessage documents them: one `@` with text on both sides, at most 254 bytes,
/// printable ASCII without spaces, angle brackets, `,;"()\[]`.
private func isAddress(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    let at = bytes.filter { $0 == UInt8(ascii: "@") }.count
    guard at == 1, bytes.first != UInt8(ascii: "@"), bytes.last != UInt8(ascii: "@"), bytes.count <= 254 else { return false }
    return bytes.allSatisfy { $0 >= 0x21 && $0 < 0x7F && !Array("<>,;\"()\\[]".utf8).contains($0) }
}

/// Header text: no control characters (CR and LF included), at most 900 bytes.
private func isHeaderText(_ text: String) -> Bool {
    text.utf8.count <= 900 && text.unicodeScalars.allSatisfy { $0.properties.generalCategory != .control }
}

/// A header value that is either plain text or `=?utf-8?B?…?=` words separated by folding
/// whitespace (RFC 2047: the space between two encoded-words is not part of the text). Each word
/// must be at most 75 characters.
private func decodeHeader(_ value: String, in rendered: String) -> String {
    guard value.hasPrefix("=?") else { return value }
    var bytes: [UInt8] = []
    for word in value.split(separator: " ") {
        Fuzz.check(word.utf8.count <= 75, "an encoded-word of \(word.utf8.count) characters in \(rendered.debugDescription)")
        guard word.hasPrefix("=?utf-8?B?"), word.hasSuffix("?="), let data = Data(base64Encoded: String(word.dropFirst(10).dropLast(2))) else {
            Fuzz.fail("not an encoded-word: \(word.debugDescription)")
        }
        // Each word is whole characters (RFC 2047 §5).
        Fuzz.check(String(validating: Array(data), as: UTF8.self) != nil, "an encoded-word splits a character: \(word)")
        bytes += data
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// RFC 2045 §6.7: `=XX` is a byte, `=` at the end of a line a soft break; lines are joined by CRLF.
private func decodeQuotedPrintable(_ lines: [String]) -> [UInt8] {
    var out: [UInt8] = []
    for (index, line) in lines.enumerated() {
        var bytes = Array(line.utf8)[...]
        var soft = false
        if bytes.last == UInt8(ascii: "=") { soft = true; bytes = bytes.dropLast() }
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "="), i + 2 < bytes.endIndex, let v = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        if !soft && index < lines.count - 1 { out += [0x0D, 0x0A] }
    }
    return out
}

/// The DATA payload: ends with CRLF.CRLF and has no earlier CRLF.CRLF (nor a first line of just
/// `.`); removing the stuffed dots gives the message back (with a final CRLF).
private func checkDataPayload(_ message: String) {
    let payload = smtpDataPayload(message)
    let end: [UInt8] = [0x0D, 0x0A, 0x2E, 0x0D, 0x0A]
    Fuzz.check(payload.count >= 5 && Array(payload.suffix(5)) == end, "the payload does not end with CRLF.CRLF")
    let body = Array(payload.dropLast(3))  // keeps the CRLF before the final dot
    Fuzz.check(!body.starts(with: [0x2E, 0x0D, 0x0A]), "the payload starts with the terminator line")
    for i in 0..<max(0, body.count - 4) where Array(body[i..<(i + 5)]) == end {
        Fuzz.fail("the payload has CRLF.CRLF at \(i), before its end")
    }
    // Un-stuff: a line starting with `..` loses one dot.
    var unstuffed: [UInt8] = []
    var atLineStart = true
    var i = 0
    while i < body.count {
        if atLineStart, body[i] == 0x2E {
            Fuzz.check(i + 1 < body.count && body[i + 1] == 0x2E, "a line starting with a single dot at \(i)")
            i += 1
        }
        unstuffed.append(body[i])
        atLineStart = body[i] == 0x0A
        i += 1
    }
    var expected = Array(message.utf8)
    if !(expected.count >= 2 && expected.suffix(2) == [0x0D, 0x0A]) { expected += [0x0D, 0x0A] }
    Fuzz.check(unstuffed == expected, "un-stuffing the payload does not give the message back")
}

private func printable(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription + (bytes.count > 300 ? "…(\(bytes.count) bytes)" : "")
}
