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

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = JSONText.bytes(object)
        return Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    /// An RFC 9457 problem with a SPEC code.
    static func problem(_ error: ServiceError) -> Response {
        var object: [String: Any] = [
            "type": "https://gatehouse.dev/problems/\(error.code.name)",
            "title": title(error.code),
            "status": error.code.status,
            "detail": error.detail,
            "code": error.code.name,
        ]
        if let remaining = error.attemptsRemaining { object["attempts_remaining"] = remaining }
        let data = JSONText.bytes(object)
        var headers: HTTPFields = [.contentType: "application/problem+json", .cacheControl: "no-store"]
        if error.code.status == 429 || error.code.status == 503 {
            headers[retryAfter] = String(error.retryAfterSeconds ?? 1)
        }
        return Response(status: .init(code: error.code.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
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

    /// Reads a JSON object body of at most 64 KiB whose members are all in `allowed`, then decodes
    /// it with JSONDecoder (strict about types). Anything else is `400 invalid_request`.
    static func body<T: Decodable>(_ type: T.Type, from request: inout Request, allowed: Set<String>, emptyAllowed: Bool = false) async throws(ServiceError) -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: maximumBodyBytes) } catch {
            throw invalid("the body is larger than 64 KiB")
        }
        var data = Data(buffer.readableBytesView)
        if data.isEmpty, emptyAllowed { data = Data("{}".utf8) }
        // One parse: `Strict` reads the member names first (refusing unknown ones), then decodes
        // `T` from the same decoder. Same answers as checking the object, then the members, then
        // the types.
        let decoder = JSONDecoder()
        decoder.userInfo[Strict<T>.allowedKey] = allowed
        do { return try decoder.decode(Strict<T>.self, from: data).value } catch let error as UnknownMember {
            throw invalid("unknown field '\(error.name)'")
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw invalid("the body must be a JSON object")
        } catch DecodingError.dataCorrupted {
            throw invalid("the body must be a JSON object")
        } catch let DecodingError.typeMismatch(_, context) {
            throw invalid("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch let DecodingError.keyNotFound(key, _) {
            throw invalid("field '\(key.stringValue)' is required")
        } catch let DecodingError.valueNotFound(_, context) {
            throw invalid("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' must not be null")
        } catch {
            throw invalid("the body does not match the expected fields")
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
}

private struct UnknownMember: Error {
    let name: String
}

/// A request body: a JSON object whose members are all allowed (the decoder's
/// `userInfo[allowedKey]`), decoded as `T`.
private struct Strict<T: Decodable>: Decodable {
    static var allowedKey: CodingUserInfoKey { CodingUserInfoKey(rawValue: "gatehouse.allowed")! }

    struct Name: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    let value: T

    init(from decoder: any Decoder) throws {
        let names = try decoder.container(keyedBy: Name.self).allKeys.map(\.stringValue)
        let allowed = decoder.userInfo[Self.allowedKey] as? Set<String> ?? []
        if let unknown = names.sorted().first(where: { !allowed.contains($0) }) {
            throw UnknownMember(name: unknown)
        }
        value = try T(from: decoder)
    }
}
