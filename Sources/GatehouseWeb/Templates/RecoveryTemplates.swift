/// Forgot password.
enum RecoveryTemplates {
    static let all: [String: String] = [:]
}
