/// The settings page.
enum SettingsTemplates {
    static let all: [String: String] = [:]
}
