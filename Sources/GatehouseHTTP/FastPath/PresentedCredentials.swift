package import HTTPTypes
package import NIOHTTP1

/// The credentials a request presents, read one way for every path: the fast path's `/v1/auth`
/// and mail check (from NIO's header fields) and the responder's routes (from HTTPTypes'), so
/// that no request is read one way on one path and another way on the other.
///
/// The rules (docs/api.md, "Reading a request"):
/// - `Authorization`, `Gatehouse-Session` and `Gatehouse-Challenge` are singletons: sent twice,
///   the request presents no valid one (`401`), whichever comes first.
/// - A value's leading and trailing spaces and tabs are not part of it (RFC 9110 §5.5).
/// - `Authorization: Bearer <key>`: the scheme in any letter case, one or more spaces, a key
///   without whitespace (RFC 9110 §11.4).
/// - The session comes from `Gatehouse-Session`; without that field, from the `gatehouse_session`
///   cookie (several `Cookie` fields read as one, joined with `; `; the first such cookie).
package struct PresentedCredentials: Equatable, Sendable {
    /// A singleton field as sent.
    package enum Field: Equatable, Sendable {
        case absent
        /// Sent once: its value without surrounding spaces and tabs.
        case one(String)
        /// Sent more than once: nothing it says is used.
        case repeated

        mutating func add(_ value: String) {
            switch self {
            case .absent: self = .one(HeaderName.trimmed(value))
            case .one, .repeated: self = .repeated
            }
        }

        /// The value, when sent exactly once.
        package var value: String? {
            if case .one(let value) = self { return value }
            return nil
        }
    }

    package var authorization = Field.absent
    package var session = Field.absent
    package var challenge = Field.absent
    /// Every `Cookie` field, joined with `; `; nil when there is none.
    package var cookie: String?

    package init() {}

    /// From the HTTP/1 decoder's fields: one pass, no lookups.
    package init(_ headers: HTTPHeaders) {
        for (name, value) in headers { add(name: name, value: value) }
    }

    /// From HTTPTypes' fields (the responder's requests).
    package init(_ fields: HTTPFields) {
        for field in fields { add(name: field.name.canonicalName, value: field.value) }
    }

    /// The fields read here.
    package enum Name: Equatable, Sendable {
        case cookie, authorization, session, challenge
    }

    private mutating func add(name: String, value: String) {
        // Field names are compared without regard to case; their lengths tell most apart first.
        switch name.utf8.count {
        case 6 where HeaderName.equals(name, "cookie"): add(.cookie, value: value)
        case 13 where HeaderName.equals(name, "authorization"): add(.authorization, value: value)
        case 17 where HeaderName.equals(name, "gatehouse-session"): add(.session, value: value)
        case 19 where HeaderName.equals(name, "gatehouse-challenge"): add(.challenge, value: value)
        default: break
        }
    }

    /// One field's value, in the order the request sent its fields.
    package mutating func add(_ name: Name, value: String) {
        switch name {
        case .cookie: cookie = cookie.map { $0 + "; " + value } ?? value
        case .authorization: authorization.add(value)
        case .session: session.add(value)
        case .challenge: challenge.add(value)
        }
    }

    /// The key of `Authorization: Bearer <key>`; nil when the field is absent, repeated, of
    /// another scheme, or carries no key or one with whitespace in it.
    package var bearerKey: Substring? {
        guard let value = authorization.value else { return nil }
        let utf8 = value.utf8
        guard utf8.count > 7 else { return nil }
        var index = utf8.startIndex
        for expected in "bearer".utf8 {
            guard utf8[index] | 0x20 == expected else { return nil }
            index = utf8.index(after: index)
        }
        guard utf8[index] == UInt8(ascii: " ") else { return nil }
        while index < utf8.endIndex, utf8[index] == UInt8(ascii: " ") { index = utf8.index(after: index) }
        let key = value[index...]
        guard !key.isEmpty, !key.utf8.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) else { return nil }
        return key
    }

    /// The session token a request presents.
    package enum Session: Equatable, Sendable {
        case none
        case token(String)
        /// `Gatehouse-Session` sent twice.
        case ambiguous
    }

    /// `Gatehouse-Session`, else the `gatehouse_session` cookie.
    package var sessionToken: Session {
        switch session {
        case .one(let token): return .token(token)
        case .repeated: return .ambiguous
        case .absent: return cookie.flatMap(Self.sessionCookie).map { .token($0) } ?? .none
        }
    }

    /// The value of the first `gatehouse_session` cookie in a `Cookie` header.
    package static func sessionCookie(_ cookies: String) -> String? {
        for part in cookies.split(separator: ";") {
            let trimmed = part.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix("gatehouse_session=") {
                return HeaderName.trimmed(String(trimmed.dropFirst("gatehouse_session=".count)))
            }
        }
        return nil
    }
}

/// Field names and values as HTTP compares them.
package enum HeaderName {
    /// `name` equals `lowercase` (ASCII letters in any case), without allocating.
    @inline(__always)
    package static func equals(_ name: String, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard name.utf8.count == count else { return false }
        return lowercase.withUTF8Buffer { expected in
            var i = 0
            for byte in name.utf8 {
                let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                guard folded == expected[i] else { return false }
                i += 1
            }
            return true
        }
    }

    /// `value` without leading and trailing spaces and tabs.
    package static func trimmed(_ value: String) -> String {
        let utf8 = value.utf8
        guard let first = utf8.first, let last = utf8.last,
              first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") || last == UInt8(ascii: " ") || last == UInt8(ascii: "\t")
        else { return value }
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        var text = Substring(value)
        while let c = text.first, isSpace(c) { text.removeFirst() }
        while let c = text.last, isSpace(c) { text.removeLast() }
        return String(text)
    }
}
