#if canImport(Glibc)
import Glibc
#endif

/// A `GET /v1/auth` head read straight from a connection's bytes, ahead of the HTTP/1 decoder
/// (``RawAuthReader``): the check every webmail request makes, read without building a decoded
/// head, its header strings and two pipeline events.
///
/// Only the plainest head is taken, one every client of `/v1/auth` sends (nginx `auth_request`,
/// a front end's HTTP client): the request line exactly `GET /v1/auth HTTP/1.1`; every field one
/// line of a token name, `:`, and a value of visible ASCII, spaces and tabs, ended by CRLF;
/// exactly one `Host`; no field that frames a body or changes the connection (`Content-Length`,
/// `Transfer-Encoding`, `Expect`, `Upgrade`, `Proxy-Connection`, a `Connection` other than
/// `keep-alive`); the whole head within the bytes at hand, at most ``maximumLength`` bytes and
/// ``maximumFields`` fields. Anything else is not read here (nil) and goes to the decoder, whose
/// path reads it as it always did, so a request this takes is one that path would have answered
/// the same way (the credentials are read by the same rules, ``PresentedCredentials``).
package struct RawAuthHead: Equatable, Sendable {
    /// What the request presents.
    package var credentials: PresentedCredentials
    /// The head's length in bytes, its empty line included.
    package var length: Int

    /// Longer heads go to the decoder (which allows 80 KiB).
    package static let maximumLength = 8192
    /// Heads with more fields go to the decoder (which allows 1,000).
    package static let maximumFields = 64

    private static let requestLine: StaticString = "GET /v1/auth HTTP/1.1\r\n"

    /// The head at the start of `bytes`, or nil when it is not one this takes.
    package static func parse(_ bytes: UnsafeRawBufferPointer) -> RawAuthHead? {
        let lineLength = requestLine.utf8CodeUnitCount
        guard bytes.count >= lineLength + 2, let base = bytes.baseAddress,
              memcmp(base, requestLine.utf8Start, lineLength) == 0
        else { return nil }
        let end = min(bytes.count, maximumLength)
        var credentials = PresentedCredentials()
        var hosts = 0, fields = 0
        var i = lineLength
        while i + 1 < end {
            if bytes[i] == cr {
                guard bytes[i + 1] == lf, hosts == 1 else { return nil }
                return RawAuthHead(credentials: credentials, length: i + 2)
            }
            fields += 1
            guard fields <= maximumFields else { return nil }
            // The name: one or more token characters, then the colon (no space before it, and
            // no line folded onto the one before: that would start with a space or a tab).
            let nameStart = i
            while i < end, isTokenCharacter(bytes[i]) { i += 1 }
            guard i < end, i > nameStart, bytes[i] == colon else { return nil }
            let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<i])
            i += 1
            // The value: visible ASCII, spaces and tabs up to CRLF, without the spaces and tabs
            // before it (as the decoder gives it: trailing ones stay, and the credentials drop
            // them where they matter).
            var valueStart = i
            while i < end, bytes[i] != cr {
                let byte = bytes[i]
                guard byte == tab || (byte >= 0x20 && byte < 0x7F) else { return nil }
                i += 1
            }
            guard i + 1 < end, bytes[i + 1] == lf else { return nil }
            let valueEnd = i
            i += 2
            while valueStart < valueEnd, bytes[valueStart] == space || bytes[valueStart] == tab { valueStart += 1 }
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            switch Field(name) {
            case .host:
                hosts += 1
            case .credential(let credential):
                credentials.add(credential, value: String(decoding: value, as: UTF8.self))
            case .connection:
                var end = value.count
                while end > 0, value[end - 1] == space || value[end - 1] == tab { end -= 1 }
                guard equalsLowercase(UnsafeRawBufferPointer(rebasing: value[0..<end]), "keep-alive") else { return nil }
            case .notTaken:
                return nil
            case .other:
                break
            }
        }
        return nil
    }

    /// What a field's name means here.
    private enum Field {
        case host
        case credential(PresentedCredentials.Name)
        case connection
        /// A field whose meaning this does not read: the decoder's path takes the request.
        case notTaken
        case other

        init(_ name: UnsafeRawBufferPointer) {
            // Field names are compared without regard to case; their lengths tell most apart first.
            switch name.count {
            case 4 where RawAuthHead.equalsLowercase(name, "host"): self = .host
            case 6 where RawAuthHead.equalsLowercase(name, "cookie"): self = .credential(.cookie)
            case 6 where RawAuthHead.equalsLowercase(name, "expect"): self = .notTaken
            case 7 where RawAuthHead.equalsLowercase(name, "upgrade"): self = .notTaken
            case 10 where RawAuthHead.equalsLowercase(name, "connection"): self = .connection
            case 13 where RawAuthHead.equalsLowercase(name, "authorization"): self = .credential(.authorization)
            case 14 where RawAuthHead.equalsLowercase(name, "content-length"): self = .notTaken
            case 16 where RawAuthHead.equalsLowercase(name, "proxy-connection"): self = .notTaken
            case 17 where RawAuthHead.equalsLowercase(name, "gatehouse-session"): self = .credential(.session)
            case 17 where RawAuthHead.equalsLowercase(name, "transfer-encoding"): self = .notTaken
            case 19 where RawAuthHead.equalsLowercase(name, "gatehouse-challenge"): self = .credential(.challenge)
            default: self = .other
            }
        }
    }

    /// `bytes` equal `lowercase` with ASCII letters in any case.
    private static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for i in 0..<bytes.count {
            let byte = bytes[i]
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == expected[i] else { return false }
        }
        return true
    }

    /// RFC 9110 §5.6.2: `!#$%&'*+-.^_`|~`, digits and letters.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), colon = UInt8(ascii: ":")
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
}
