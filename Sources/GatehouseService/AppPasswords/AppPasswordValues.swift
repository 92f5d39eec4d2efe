import Foundation

/// A mail protocol an app password may be used for (`POST /v1/mail/authenticate`'s `service`).
public enum MailService: String, Sendable, Hashable, CaseIterable {
    case imap, pop3, smtp

    /// The service named `text`, or `invalid_request`.
    public init(validating text: String) throws(ServiceError) {
        guard let service = MailService(rawValue: text) else { throw ServiceError(.invalidRequest, "service must be imap, pop3 or smtp") }
        self = service
    }

    /// An app password's services: every service when `texts` is absent, otherwise a non-empty
    /// list of services without repeats, or `invalid_request`.
    public static func list(_ texts: [String]?) throws(ServiceError) -> [MailService] {
        guard let texts else { return allCases }
        var services: [MailService] = []
        services.reserveCapacity(texts.count)
        for text in texts {
            guard let service = MailService(rawValue: text), !services.contains(service) else { throw invalidList }
            services.append(service)
        }
        guard !services.isEmpty else { throw invalidList }
        return services
    }

    private static var invalidList: ServiceError { ServiceError(.invalidRequest, "services must be a non-empty list of imap, pop3, smtp") }
}

/// An app password's label: trimmed of spaces and tabs, then 1 to 64 characters on one line.
public struct AppPasswordLabel: Sendable, Hashable {
    /// The trimmed label.
    public let value: String

    /// The label `text` names, or `invalid_request`.
    public init(_ text: String) throws(ServiceError) {
        let label = text.trimmingCharacters(in: .whitespaces)
        guard (1...64).contains(label.count), !label.contains(where: \.isNewline) else {
            throw ServiceError(.invalidRequest, "label must be 1 to 64 characters on one line")
        }
        value = label
    }
}
