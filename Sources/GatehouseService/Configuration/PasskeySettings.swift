import Foundation

/// The WebAuthn relying party Gatehouse is for passkeys (docs/passkeys.md).
public struct PasskeySettings: Sendable, Equatable {
    /// The RP ID (`GATEHOUSE_PASSKEY_RP_ID`): the site's registrable domain, e.g. `example.org`.
    /// nil: the host of `GATEHOUSE_WEB_PUBLIC_URL`, else `localhost`.
    public var rpID: String?
    /// The origins ceremonies may come from (`GATEHOUSE_PASSKEY_ORIGINS`, comma-separated
    /// `https://host[:port]`). Empty: `GATEHOUSE_WEB_PUBLIC_URL`; with neither (development on
    /// `localhost`), any `http://localhost:<port>` origin.
    public var origins: [String] = []
    /// Whether user verification (PIN, biometrics) is required, not only presence
    /// (`GATEHOUSE_PASSKEY_USER_VERIFICATION=required|preferred`, default `preferred`).
    public var requireUserVerification = false

    public init() {}

    /// The RP ID in force.
    public func effectiveRPID(publicURL: String?) -> String {
        if let rpID { return rpID }
        if let publicURL, let host = URLComponents(string: publicURL)?.host { return host }
        return "localhost"
    }

    /// Whether a ceremony from `origin` is accepted.
    public func allows(origin: String, publicURL: String?) -> Bool {
        if !origins.isEmpty { return origins.contains { $0.utf8.elementsEqual(origin.utf8) } }
        if let publicURL { return publicURL.utf8.elementsEqual(origin.utf8) }
        // Development: the node on localhost, on whatever port it was given.
        guard effectiveRPID(publicURL: nil) == "localhost", origin.hasPrefix("http://localhost:") else { return false }
        return origin.dropFirst("http://localhost:".count).allSatisfy(\.isNumber)
    }

    mutating func apply(environment env: [String: String]) throws(ServiceError) {
        if let v = env["GATEHOUSE_PASSKEY_RP_ID"], !v.isEmpty {
            guard v.utf8.count <= 253, v.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E }) else {
                throw ServiceError(.invalidRequest, "GATEHOUSE_PASSKEY_RP_ID must be a lower-case domain name")
            }
            rpID = v
        }
        if let v = env["GATEHOUSE_PASSKEY_ORIGINS"], !v.isEmpty {
            var list: [String] = []
            for item in v.split(separator: ",") {
                let origin = item.trimmingCharacters(in: .whitespaces)
                guard let url = ReturnURL(origin, prefix: true), let parsed = url.origin, parsed == origin, url.rest == "/" else {
                    throw ServiceError(.invalidRequest, "GATEHOUSE_PASSKEY_ORIGINS: '\(origin)' is not a scheme://host[:port] origin")
                }
                list.append(origin)
            }
            origins = list
        }
        if let v = env["GATEHOUSE_PASSKEY_USER_VERIFICATION"], !v.isEmpty {
            switch v {
            case "required": requireUserVerification = true
            case "preferred": requireUserVerification = false
            default: throw ServiceError(.invalidRequest, "GATEHOUSE_PASSKEY_USER_VERIFICATION must be required or preferred")
            }
        }
    }

    static let names = ["GATEHOUSE_PASSKEY_RP_ID", "GATEHOUSE_PASSKEY_ORIGINS", "GATEHOUSE_PASSKEY_USER_VERIFICATION"]
}
