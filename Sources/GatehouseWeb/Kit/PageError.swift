import GatehouseService
import HTTPTypes

/// What went wrong on a page, in words a person understands: the page shows ``message`` (and
/// the code, for support), never the service's detail text.
struct PageError: Error, Sendable {
    struct Code: Hashable, Sendable {
        let name: String
        static let invalidRequest = Code(name: "invalid_request")
        static let csrfFailed = Code(name: "csrf_failed")
        static let notSignedIn = Code(name: "not_signed_in")
        static let notFound = Code(name: "not_found")
    }

    let code: Code
    let message: String
    var title = "Something is not right"
    var status: HTTPResponse.Status = .badRequest
    /// Seconds to wait (throttling), shown in the message.
    var retryAfter: Int?

    init(_ code: Code, _ message: String, title: String = "Something is not right", status: HTTPResponse.Status = .badRequest) {
        self.code = code
        self.message = message
        self.title = title
        self.status = status
    }

    static let csrf = PageError(
        .csrfFailed, "This form is out of date or did not come from this page. Go back, reload the page and try again.",
        title: "Please try again", status: .forbidden
    )
    static let notSignedIn = PageError(
        .notSignedIn, "You are not signed in, or your session has ended. Sign in to your webmail again.",
        title: "Sign in again", status: .unauthorized
    )

    /// The person-facing words for a service error.
    init(_ error: ServiceError) {
        self.code = Code(name: error.code.name)
        self.retryAfter = error.retryAfterSeconds
        switch error.code {
        case .invalidCode:
            var text = "That code didn't work. Check it and try again."
            if let left = error.attemptsRemaining { text += left == 1 ? " 1 attempt left before a wait." : " \(left) attempts left before a wait." }
            self.message = text
            self.title = "Wrong code"
            self.status = .unauthorized
        case .challengeExpired:
            self.message = "This sign-in step has expired or was already used. Go back to your webmail and sign in again."
            self.title = "Sign-in expired"
            self.status = .unauthorized
        case .rateLimited:
            self.message = "Too many attempts. Wait \(Self.wait(error.retryAfterSeconds ?? 60)) and try again."
            self.title = "Please wait"
            self.status = .tooManyRequests
        case .invalidToken, .unauthorized:
            self.message = PageError.notSignedIn.message
            self.title = PageError.notSignedIn.title
            self.status = .unauthorized
        case .reauthenticationRequired:
            self.message = "For your security, this needs a recent sign-in. Sign out, sign in again with your second step, and try again within 10 minutes."
            self.title = "Sign in again first"
            self.status = .forbidden
        case .twoStepDisabled:
            self.message = "Two-step verification is not available for your domain."
            self.title = "Not available"
            self.status = .forbidden
        case .methodNotAllowed:
            self.message = "Your provider does not allow this kind of second step."
            self.title = "Not available"
            self.status = .forbidden
        case .recoveryEmailRequired:
            self.message = "Add and confirm a recovery email address first."
            self.title = "Recovery email needed"
            self.status = .conflict
        case .notEnrolled:
            self.message = "Two-step verification is not turned on for this account."
            self.title = "Not turned on"
            self.status = .conflict
        case .notFound:
            self.message = "That item no longer exists."
            self.title = "Not found"
            self.status = .notFound
        case .forbidden:
            self.message = "Your provider's policy does not allow this."
            self.title = "Not allowed"
            self.status = .forbidden
        case .unavailable:
            self.message = "Something went wrong on our side. Wait a minute and try again."
            self.title = "Temporarily unavailable"
            self.status = .serviceUnavailable
        default:
            self.message = Self.inputMessage(error.detail)
            self.title = "Please check what you entered"
            self.status = .badRequest
        }
    }

    /// A refused passkey sign-in: the service counts it as a wrong code (`invalid_code`), but
    /// the person used a passkey, not a code, and is told so.
    init(passkey error: ServiceError) {
        self.init(error)
        guard error.code == .invalidCode else { return }
        var text = "Your passkey was not accepted. Try it again, or enter a code instead."
        if let left = error.attemptsRemaining { text += left == 1 ? " 1 attempt left before a wait." : " \(left) attempts left before a wait." }
        self = PageError(code, text, title: "Passkey not accepted", status: status)
    }

    /// For input errors the service's own words are about the value entered (its format), not
    /// about the account, so they are safe and useful to show; capitalised as a sentence.
    static func inputMessage(_ detail: String) -> String {
        guard let first = detail.first else { return "Please check what you entered." }
        return first.uppercased() + detail.dropFirst() + (detail.hasSuffix(".") ? "" : ".")
    }

    /// "45 seconds", "2 minutes".
    static func wait(_ seconds: Int) -> String {
        if seconds < 60 { return seconds == 1 ? "1 second" : "\(seconds) seconds" }
        let minutes = (seconds + 59) / 60
        return minutes == 1 ? "1 minute" : "\(minutes) minutes"
    }
}
