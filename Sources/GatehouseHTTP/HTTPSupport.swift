import Foundation
import GatehouseCore
import HTTPTypes
import GatehouseService
import Hummingbird

/// JSON and problem responses, and strict request bodies.
enum HTTPSupport {
    static let maximumBodyBytes = 64 * 1024

    static let jsonType = HTTPField.Name.contentType
    static let retryAfter = HTTPField.Name("Retry-After")!

    /// A JSON answer already written (``JSONWriter``).
    static func json(_ status: HTTPResponse.Status, bytes data: [UInt8]) -> Response {
        Response(status: status, headers: jsonHeaders, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The fields of every JSON answer.
    static let jsonHeaders: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]

    /// An RFC 9457 problem with its code (docs/api.md, Errors).
    static func problem(_ error: ServiceError) -> Response {
        let (status, headers, data) = problemParts(error)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// ``problem(_:)``'s status, fields and body, for an answer written outside Hummingbird.
    static func problemParts(_ error: ServiceError) -> (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8]) {
        let status = status(of: error.code)
        let data = problemBody(error.code, status: status, detail: error.detail, attemptsRemaining: error.attemptsRemaining)
        var headers = problemHeaders
        if status == .tooManyRequests || status == .serviceUnavailable {
            headers[retryAfter] = String(error.retryAfterSeconds ?? 1)
        }
        return (status, headers, data)
    }

    /// The fields of every problem answer (a throttled or unavailable one adds `Retry-After`):
    /// made once, as the refused codes an attacker sends are answered with them.
    static let problemHeaders: HTTPFields = [.contentType: "application/problem+json", .cacheControl: "no-store"]

    /// A request the connection itself refuses before any route sees it (a head without `Host`,
    /// an unsupported `Expect`, a request that did not arrive in time): `invalid_request` with the
    /// protocol's own status (400, 417, 408), the same problem shape as every other error.
    static func protocolProblem(status: HTTPResponse.Status, detail: String) -> (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8]) {
        let data = problemBody(.invalidRequest, status: status, detail: detail, attemptsRemaining: nil)
        return (status, problemHeaders, data)
    }

    /// A problem's JSON, written directly (members in the byte order of their names, as every
    /// JSON answer): refused codes are what an attacker sends most, so their answer costs no
    /// dictionary of `Any`.
    static func problemBody(_ code: ServiceError.Code, status: HTTPResponse.Status, detail: String, attemptsRemaining: Int?) -> [UInt8] {
        var out = JSONWriter(capacity: 192 + detail.utf8.count)
        out.bytes.append(UInt8(ascii: "{"))
        if let attemptsRemaining {
            out.raw("\"attempts_remaining\":")
            out.integer(attemptsRemaining)
            out.bytes.append(UInt8(ascii: ","))
        }
        out.raw("\"code\":")
        out.string(code.name)
        out.raw(",\"detail\":")
        out.string(detail)
        out.raw(",\"status\":")
        out.integer(status.code)
        out.raw(",\"title\":")
        out.string(title(code))
        // The code names are lower-case ASCII words with underscores: nothing in them to escape.
        out.raw(",\"type\":\"https://gatehouse.dev/problems/")
        out.bytes.append(contentsOf: code.name.utf8)
        out.raw("\"}")
        return out.bytes
    }

    /// The HTTP status of each problem code (docs/api.md, Errors): the one place that maps the
    /// service layer's codes to HTTP.
    static func status(of code: ServiceError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidRequest: .badRequest
        case .unauthorized, .invalidToken, .invalidCode, .challengeExpired, .denied: .unauthorized
        case .forbidden, .twoStepDisabled, .reauthenticationRequired, .methodNotAllowed: .forbidden
        case .notFound: .notFound
        case .recoveryEmailRequired, .notEnrolled: .conflict
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        // Every code is listed above; a new one must be added there.
        default: .internalServerError
        }
    }

    static func title(_ code: ServiceError.Code) -> String {
        switch code.name {
        case "invalid_request": "Invalid request"
        case "unauthorized": "Missing or unknown API key"
        case "forbidden": "API key lacks the scope"
        case "invalid_token": "Invalid token"
        case "invalid_code": "Invalid code"
        case "challenge_expired": "Challenge expired"
        case "rate_limited": "Too many attempts"
        case "two_step_disabled": "Two-step authentication is disabled"
        case "reauthentication_required": "Reauthentication required"
        case "recovery_email_required": "Recovery email required"
        case "not_enrolled": "Not enrolled"
        case "method_not_allowed": "Method not allowed"
        case "not_found": "Not found"
        case "unavailable": "Service unavailable"
        case "denied": "Not an app password for this service"
        default: "Error"
        }
    }

    static func invalid(_ detail: String) -> ServiceError { ServiceError(.invalidRequest, detail) }

    /// Reads a JSON object body of at most 64 KiB whose members are all in `allowed` (each at most
    /// once); its members are then read by type with ``RequestFields``. Anything else is
    /// `400 invalid_request`. An empty body counts as `{}` when `emptyAllowed`.
    static func body(from request: inout Request, allowed: Set<String>, emptyAllowed: Bool = false) async throws(ServiceError) -> RequestFields {
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: maximumBodyBytes) } catch {
            throw invalid("the body is larger than 64 KiB")
        }
        if buffer.readableBytes == 0, emptyAllowed { return RequestFields(members: [:]) }
        let members: Result<[String: JSONValue], JSONObjectReader.Failure> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONObjectReader.Failure) in try JSONObjectReader.members(bytes, allowed: allowed) }
        }
        switch members {
        case .success(let members): return RequestFields(members: members)
        case .failure(.unknownMember(let name)): throw invalid("unknown field '\(name)'")
        case .failure(.duplicateMember(let name)): throw invalid("member '\(name)' appears more than once")
        case .failure(.malformed), .failure(.notObject): throw invalid("the body must be a JSON object")
        }
    }

    /// RFC 3339 UTC.
    static func time(_ seconds: Int64) -> String { JSONText.time(seconds) }

    static func user(_ text: String, field: String = "user") throws(ServiceError) -> UserID {
        guard let user = UserID(text) else { throw invalid("\(field) must be an email address (local@domain, at most 254 bytes)") }
        return user
    }

    /// `client_ip` must be an IP address when present (it keys the per-address budget).
    static func clientIP(_ text: String?) throws(ServiceError) -> String? {
        guard let text else { return nil }
        guard ipBudgetKey(text) != nil else { throw invalid("client_ip must be an IPv4 or IPv6 address") }
        return text
    }

    static func userAgent(_ text: String?) throws(ServiceError) -> String? {
        guard let text else { return nil }
        guard text.utf8.count <= 512 else { throw invalid("user_agent is longer than 512 bytes") }
        return text
    }

    static func shortString(_ text: String, field: String, max: Int = 4096) throws(ServiceError) -> String {
        guard text.utf8.count <= max else { throw invalid("\(field) is too long") }
        return text
    }

    /// Canonical base64url (no padding) of at most `max` decoded bytes, not empty.
    static func base64URL(_ text: String, field: String, max: Int) throws(ServiceError) -> (text: String, bytes: [UInt8]) {
        guard text.utf8.count <= (max * 4 + 2) / 3, let bytes = Base64URL.decode(text), !bytes.isEmpty else {
            throw invalid("\(field) must be base64url of at most \(max) bytes")
        }
        return (text, bytes)
    }
}

/// The members of a request body, read by type. A member that is absent or `null` is nil for the
/// optional readers; the required readers refuse both.
struct RequestFields {
    let members: [String: JSONValue]

    func string(_ name: String) throws(ServiceError) -> String {
        guard let value = try optionalString(name) else { throw missing(name) }
        return value
    }

    func optionalString(_ name: String) throws(ServiceError) -> String? {
        switch members[name] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw wrongType(name)
        }
    }

    func optionalBool(_ name: String) throws(ServiceError) -> Bool? {
        switch members[name] {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        default: throw wrongType(name)
        }
    }

    func optionalInt(_ name: String) throws(ServiceError) -> Int? {
        switch members[name] {
        case nil, .null?: return nil
        case .integer(let number)?: return Int(number)
        default: throw wrongType(name)
        }
    }

    /// A list of strings.
    func optionalStrings(_ name: String) throws(ServiceError) -> [String]? {
        switch members[name] {
        case nil, .null?: return nil
        case .array(let elements)?:
            var strings: [String] = []
            strings.reserveCapacity(elements.count)
            for element in elements {
                guard case .string(let text) = element else { throw HTTPSupport.invalid("field '\(name)' must be a list of strings") }
                strings.append(text)
            }
            return strings
        default: throw HTTPSupport.invalid("field '\(name)' must be a list of strings")
        }
    }

    /// A string that must be one of an enumeration's raw values.
    func option<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type) throws(ServiceError) -> T where T.RawValue == String {
        let text = try string(name)
        guard let value = T(rawValue: text) else { throw invalidOption(name, type) }
        return value
    }

    /// A list of an enumeration's raw values.
    func optionalOptions<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type) throws(ServiceError) -> [T]? where T.RawValue == String {
        guard let strings = try optionalStrings(name) else { return nil }
        var values: [T] = []
        for text in strings {
            guard let value = T(rawValue: text) else { throw invalidOption(name, type) }
            values.append(value)
        }
        return values
    }

    private func invalidOption<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type) -> ServiceError where T.RawValue == String {
        HTTPSupport.invalid("field '\(name)' must be one of \(T.allCases.map { $0.rawValue }.joined(separator: ", "))")
    }

    private func missing(_ name: String) -> ServiceError {
        members[name] == .null ? HTTPSupport.invalid("field '\(name)' must not be null") : HTTPSupport.invalid("field '\(name)' is required")
    }

    private func wrongType(_ name: String) -> ServiceError { HTTPSupport.invalid("field '\(name)' has the wrong type") }
}
