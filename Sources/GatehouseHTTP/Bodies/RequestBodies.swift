import GatehouseService
import Hummingbird

/// A request body: one JSON object of the members in ``members``, read by type with
/// ``RequestFields`` (``HTTPSupport/body(from:allowed:emptyAllowed:)``).
///
/// Each body reads its members by type first, in the order declared, and only then checks their
/// values: a wrong type is reported before a bad value, whichever member comes first, and the
/// messages and their order are pinned by `BadInputTests`. Values a self-service route checks
/// only after it knows the caller (``Access/principal(_:)``) stay unchecked here, as before.
protocol StrictRequestBody {
    /// The member names allowed (any other is `unknown field`).
    static var members: Set<String> { get }
    /// Reads the members.
    init(_ fields: RequestFields) throws(ServiceError)
}

extension StrictRequestBody {
    /// Collects and reads the body (an empty body counts as `{}` when `emptyAllowed`).
    static func read(from request: inout Request, emptyAllowed: Bool = false) async throws(ServiceError) -> Self {
        try Self(await HTTPSupport.body(from: &request, allowed: members, emptyAllowed: emptyAllowed))
    }
}

// MARK: Sessions

/// `POST /v1/sessions/verify`, `/refresh`, `/revoke`.
struct TokenBody: StrictRequestBody {
    static let members: Set<String> = ["token"]
    var token: String

    init(_ fields: RequestFields) throws(ServiceError) {
        token = try fields.string("token")
    }
}

// MARK: Login and recovery

/// `POST /v1/login/start`.
struct LoginStartBody: StrictRequestBody {
    static let members: Set<String> = ["user", "client_ip", "user_agent", "remember_token"]
    var user: UserID
    var clientIP: String?
    var userAgent: String?
    var rememberToken: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        let user = try fields.string("user"), clientIP = try fields.optionalString("client_ip")
        let userAgent = try fields.optionalString("user_agent"), rememberToken = try fields.optionalString("remember_token")
        self.user = try HTTPSupport.user(user)
        self.clientIP = try HTTPSupport.clientIP(clientIP)
        self.userAgent = try HTTPSupport.userAgent(userAgent)
        self.rememberToken = try rememberToken.map { (t) throws(ServiceError) in try HTTPSupport.shortString(t, field: "remember_token") }
    }
}

/// `POST /v1/login/handoff`: the webmail hands a signed-in-by-password user to the pages.
struct HandoffBody: StrictRequestBody {
    static let members: Set<String> = ["user", "return_to", "client_ip", "user_agent"]
    var handoff: Handoff

    init(_ fields: RequestFields) throws(ServiceError) {
        let user = try fields.string("user"), returnTo = try fields.string("return_to")
        let clientIP = try fields.optionalString("client_ip"), userAgent = try fields.optionalString("user_agent")
        self.handoff = Handoff(
            user: try HTTPSupport.user(user), returnTo: try HTTPSupport.shortString(returnTo, field: "return_to", max: 2048),
            clientIP: try HTTPSupport.clientIP(clientIP), userAgent: try HTTPSupport.userAgent(userAgent)
        )
    }
}

/// `POST /v1/login/finish` (the sign-in path).
struct LoginFinishBody: StrictRequestBody {
    static let members: Set<String> = [
        "challenge", "method", "code", "remember", "client_ip", "user_agent",
        "credential_id", "client_data_json", "authenticator_data", "signature",
    ]
    var challenge: String
    var method: SecondStepMethod
    /// The code (every method but `passkey`).
    var code: String
    /// The assertion (`passkey`).
    var assertion: PasskeyAssertion?
    var remember: Bool
    var clientIP: String?
    var userAgent: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        let challenge = try fields.string("challenge"), method = try fields.string("method")
        // A code is required for every method but passkey (read in the same place as always).
        let code = method == SecondStepMethod.passkey.rawValue ? try fields.optionalString("code") : try fields.string("code")
        let credentialID = try fields.optionalString("credential_id"), clientData = try fields.optionalString("client_data_json")
        let authenticatorData = try fields.optionalString("authenticator_data"), signature = try fields.optionalString("signature")
        let remember = try fields.optionalBool("remember"), clientIP = try fields.optionalString("client_ip")
        let userAgent = try fields.optionalString("user_agent")
        guard let secondStep = SecondStepMethod(rawValue: method) else { throw HTTPSupport.invalid("method must be totp, email, backup_code or passkey") }
        self.challenge = try HTTPSupport.shortString(challenge, field: "challenge")
        self.method = secondStep
        if secondStep == .passkey {
            guard let credentialID, let clientData, let authenticatorData, let signature else {
                throw HTTPSupport.invalid("method passkey needs credential_id, client_data_json, authenticator_data and signature")
            }
            self.code = ""
            self.assertion = PasskeyAssertion(
                credentialID: try HTTPSupport.base64URL(credentialID, field: "credential_id", max: 1023).text,
                clientDataJSON: try HTTPSupport.base64URL(clientData, field: "client_data_json", max: 4096).bytes,
                authenticatorData: try HTTPSupport.base64URL(authenticatorData, field: "authenticator_data", max: 4096).bytes,
                signature: try HTTPSupport.base64URL(signature, field: "signature", max: 1024).bytes
            )
        } else {
            self.code = try HTTPSupport.shortString(code ?? "", field: "code", max: 64)
        }
        self.remember = remember ?? false
        self.clientIP = try HTTPSupport.clientIP(clientIP)
        self.userAgent = try HTTPSupport.userAgent(userAgent)
    }
}

/// `POST /v1/login/passkey-options`.
typealias PasskeyOptionsBody = EmailCodeBody

/// `POST /v1/me/passkeys`: a registration response (base64url members).
struct PasskeyRegistrationBody: StrictRequestBody {
    static let members: Set<String> = ["name", "client_data_json", "attestation_object"]
    var name: String
    var clientDataJSON: [UInt8]
    var attestationObject: [UInt8]

    init(_ fields: RequestFields) throws(ServiceError) {
        let name = try fields.string("name"), clientData = try fields.string("client_data_json")
        let attestation = try fields.string("attestation_object")
        self.name = try HTTPSupport.shortString(name, field: "name", max: 256)
        self.clientDataJSON = try HTTPSupport.base64URL(clientData, field: "client_data_json", max: 4096).bytes
        self.attestationObject = try HTTPSupport.base64URL(attestation, field: "attestation_object", max: 16384).bytes
    }
}

/// `POST /v1/login/email-code`.
struct EmailCodeBody: StrictRequestBody {
    static let members: Set<String> = ["challenge"]
    var challenge: String

    init(_ fields: RequestFields) throws(ServiceError) {
        challenge = try HTTPSupport.shortString(fields.string("challenge"), field: "challenge")
    }
}

/// `POST /v1/recovery/start`.
struct RecoveryStartBody: StrictRequestBody {
    static let members: Set<String> = ["user"]
    var user: UserID

    init(_ fields: RequestFields) throws(ServiceError) {
        user = try HTTPSupport.user(fields.string("user"))
    }
}

/// `POST /v1/recovery/finish`.
struct RecoveryFinishBody: StrictRequestBody {
    static let members: Set<String> = ["user", "code", "client_ip"]
    var user: UserID
    var code: String
    var clientIP: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        let user = try fields.string("user"), code = try fields.string("code"), clientIP = try fields.optionalString("client_ip")
        self.user = try HTTPSupport.user(user)
        self.code = try HTTPSupport.shortString(code, field: "code", max: 64)
        self.clientIP = try HTTPSupport.clientIP(clientIP)
    }
}

/// `POST /v1/recovery/consume`.
struct ResetTokenBody: StrictRequestBody {
    static let members: Set<String> = ["reset_token"]
    var resetToken: String

    init(_ fields: RequestFields) throws(ServiceError) {
        resetToken = try HTTPSupport.shortString(fields.string("reset_token"), field: "reset_token")
    }
}

// MARK: Self-service (values checked by the route, after the caller)

/// `POST /v1/me/totp`: nothing, or `{}`.
struct EmptyBody: StrictRequestBody {
    static let members: Set<String> = []

    init(_ fields: RequestFields) throws(ServiceError) {}
}

/// `POST /v1/me/totp/confirm`.
struct TOTPConfirmBody: StrictRequestBody {
    static let members: Set<String> = ["code", "client_ip", "user_agent"]
    var code: String
    var clientIP: String?
    var userAgent: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        code = try fields.string("code")
        clientIP = try fields.optionalString("client_ip")
        userAgent = try fields.optionalString("user_agent")
    }
}

/// `DELETE /v1/me/two-step` and `POST /v1/me/recovery-email/confirm`.
struct CodeBody: StrictRequestBody {
    static let members: Set<String> = ["code", "client_ip"]
    var code: String
    var clientIP: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        code = try fields.string("code")
        clientIP = try fields.optionalString("client_ip")
    }
}

/// `PUT /v1/me/recovery-email`.
struct RecoveryEmailBody: StrictRequestBody {
    static let members: Set<String> = ["email"]
    var email: String

    init(_ fields: RequestFields) throws(ServiceError) {
        email = try fields.string("email")
    }
}

/// `POST /v1/me/two-step`: only `email` (authenticator apps enrol through `POST /v1/me/totp`).
struct EnableTwoStepBody: StrictRequestBody {
    static let members: Set<String> = ["method", "client_ip", "user_agent"]
    var clientIP: String?
    var userAgent: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        let method = try fields.string("method")
        clientIP = try fields.optionalString("client_ip")
        userAgent = try fields.optionalString("user_agent")
        guard method == "email" else {
            throw HTTPSupport.invalid("method must be email (authenticator apps enrol through POST /v1/me/totp)")
        }
    }
}

/// `POST /v1/me/app-passwords`: label and services are checked before the caller, as before.
struct AppPasswordBody: StrictRequestBody {
    static let members: Set<String> = ["label", "services"]
    var label: AppPasswordLabel
    var services: [MailService]

    init(_ fields: RequestFields) throws(ServiceError) {
        let label = try fields.string("label"), services = try fields.optionalStrings("services")
        self.label = try AppPasswordLabel(label)
        self.services = try MailService.list(services)
    }
}

// MARK: Mail

/// `POST /v1/mail/authenticate`.
struct MailAuthenticateBody: StrictRequestBody {
    static let members: Set<String> = ["user", "password", "service", "client_ip"]
    var user: UserID
    var password: String
    var service: MailService
    var clientIP: String?

    init(_ fields: RequestFields) throws(ServiceError) {
        let user = try fields.string("user"), password = try fields.string("password"), service = try fields.string("service")
        let clientIP = try fields.optionalString("client_ip")
        self.service = try MailService(validating: service)
        self.user = try HTTPSupport.user(user)
        self.password = try HTTPSupport.shortString(password, field: "password", max: 1024)
        self.clientIP = try HTTPSupport.clientIP(clientIP)
    }
}

// MARK: Administration

/// `PUT /v1/domains/{domain}/policy`: `mode`, and any other member replaces the stored value.
/// The values are checked by ``Gatehouse/setPolicy(_:for:)``.
struct PolicyBody: StrictRequestBody {
    static let members: Set<String> = ["mode", "methods", "remember_device_days", "session_hours", "app_password_reveal"]
    var mode: DomainPolicy.Mode
    var methods: [DomainPolicy.Method]?
    var rememberDeviceDays: Int?
    var sessionHours: Int?
    var appPasswordReveal: Bool?

    init(_ fields: RequestFields) throws(ServiceError) {
        mode = try fields.option("mode", DomainPolicy.Mode.self)
        methods = try fields.optionalOptions("methods", DomainPolicy.Method.self)
        rememberDeviceDays = try fields.optionalInt("remember_device_days")
        sessionHours = try fields.optionalInt("session_hours")
        appPasswordReveal = try fields.optionalBool("app_password_reveal")
    }

    /// `policy` with the members present replaced.
    func applied(to policy: DomainPolicy) -> DomainPolicy {
        var policy = policy
        policy.mode = mode
        if let methods { policy.methods = methods }
        if let rememberDeviceDays { policy.rememberDeviceDays = rememberDeviceDays }
        if let sessionHours { policy.sessionHours = sessionHours }
        if let appPasswordReveal { policy.appPasswordReveal = appPasswordReveal }
        return policy
    }
}
