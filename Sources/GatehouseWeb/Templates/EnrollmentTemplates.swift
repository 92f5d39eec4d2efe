/// Turning two-step on: recovery email, method, authenticator app, backup codes.
enum EnrollmentTemplates {
    static let all: [String: String] = [:]
}
