import Foundation

/// One HTTP answer: its status and body, and the few fields of the body the generator reads.
package struct LoadResponse {
    /// The status code.
    package var status: Int
    /// The body, de-chunked.
    package var body: [UInt8]
    /// The body as a JSON object (empty when it is not one): for the import's answer only.
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }

    /// `session.token` of a sign-in answer, `challenge.token` of a login/start answer and a
    /// problem's `code`: decoded with JSONDecoder into just these fields (the generator shares
    /// the machine with the node, so its own JSON work is kept small).
    private struct Fields: Decodable {
        struct Token: Decodable { var token: String }
        /// A string in a sign-in answer, a number in a problem: read as a string or not at all
        /// (a strict `String?` failed the whole decode of every problem, so a refused replay
        /// or wrong code was counted as an unexpected answer).
        struct Text: Decodable {
            var value: String?
            init(from decoder: any Decoder) throws { value = try? decoder.singleValueContainer().decode(String.self) }
        }
        var session: Token?
        var challenge: Token?
        var status: Text?
        var code: String?
    }
    private var fields: Fields? { try? JSONDecoder().decode(Fields.self, from: Data(body)) }
    var sessionToken: String? { Self.sessionTokenBytes(body) ?? fields?.session?.token }

    /// `session.token` straight from the bytes of a compact answer (the node's JSON has no
    /// spaces and base64url tokens need no escapes); nil sends the caller to the decoder.
    private static func sessionTokenBytes(_ body: [UInt8]) -> String? {
        let session = Array(#""session":{"#.utf8), token = Array(#""token":""#.utf8)
        guard let s = LoadResponseParser.find(body, session, from: 0),
              let t = LoadResponseParser.find(body, token, from: s + session.count) else { return nil }
        let start = t + token.count
        guard let end = body[start...].firstIndex(of: UInt8(ascii: "\"")), end > start,
              !body[start..<end].contains(UInt8(ascii: "\\")) else { return nil }
        return String(decoding: body[start..<end], as: UTF8.self)
    }
    var problemCode: String? { fields?.code }
    /// The challenge token when login/start answered `second_step`.
    var secondStepChallenge: String? {
        guard let fields, fields.status?.value == "second_step" else { return nil }
        return fields.challenge?.token
    }
}
