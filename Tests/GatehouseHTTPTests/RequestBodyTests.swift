import GatehouseCore
@testable import GatehouseHTTP
import GatehouseService
import Testing

/// Bodies read members by type first, then the values, with the service's own checks
/// (``AppPasswordLabel``, ``MailService``, ``DomainPolicy/validate()``) and their messages.
@Suite("Request bodies")
struct RequestBodyTests {
    static func read<Body: StrictRequestBody>(_ type: Body.Type, _ json: String) -> Result<Body, ServiceError> {
        var json = json
        let members = json.withUTF8 { bytes in try! JSONObjectReader.members(UnsafeRawBufferPointer(bytes), allowed: Body.members) }
        return Result { () throws(ServiceError) in try Body(RequestFields(members: members)) }
    }

    static func detail<Body: StrictRequestBody>(_ type: Body.Type, _ json: String) -> String? {
        guard case .failure(let error) = read(type, json) else { return nil }
        #expect(error.code == .invalidRequest)
        return error.detail
    }

    @Test("app passwords: label and services")
    func appPasswords() throws {
        let label = "label must be 1 to 64 characters on one line", services = "services must be a non-empty list of imap, pop3, smtp"
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"  "}"#) == label)
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"a\nb"}"#) == label)
        #expect(Self.detail(AppPasswordBody.self, "{\"label\":\"\(String(repeating: "x", count: 65))\"}") == label)
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"x","services":[]}"#) == services)
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"x","services":["imap","imap"]}"#) == services)
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"x","services":["ftp"]}"#) == services)
        // A wrong type before a bad value, whichever member comes first.
        #expect(Self.detail(AppPasswordBody.self, #"{"label":"","services":"imap"}"#) == "field 'services' must be a list of strings")
        let body = try Self.read(AppPasswordBody.self, #"{"label":" Phone ","services":null}"#).get()
        #expect(body.label.value == "Phone" && body.services == MailService.allCases)
    }

    @Test("mail: the service is checked before the user")
    func mail() {
        #expect(Self.detail(MailAuthenticateBody.self, #"{"user":"bad","password":"p","service":"ftp"}"#) == "service must be imap, pop3 or smtp")
        #expect(Self.detail(MailAuthenticateBody.self, #"{"user":"bad","password":"p","service":"imap"}"#)?.hasPrefix("user must be") == true)
        #expect((try? Self.read(MailAuthenticateBody.self, #"{"user":"u@example.org","password":"p","service":"pop3"}"#).get())?.service == .pop3)
    }

    @Test("policy values are the service's to refuse", arguments: [
        (#"{"mode":"enforced","methods":[]}"#, "methods must be a non-empty list without repeats"),
        (#"{"mode":"enforced","methods":["totp","totp"]}"#, "methods must be a non-empty list without repeats"),
        (#"{"mode":"enforced","remember_device_days":366,"session_hours":0}"#, "remember_device_days must be 0...365"),
        (#"{"mode":"enforced","session_hours":169}"#, "session_hours must be 1...168"),
        (#"{"mode":"enforced","session_hours":0}"#, "session_hours must be 1...168"),
    ])
    func policy(json: String, detail: String) throws {
        let body = try Self.read(PolicyBody.self, json).get()
        #expect(throws: ServiceError.self) { try body.applied(to: .default).validate() }
        do throws(ServiceError) { try body.applied(to: .default).validate() } catch { #expect(error.detail == detail) }
        #expect(throws: Never.self) { try DomainPolicy.default.validate() }
    }
}
