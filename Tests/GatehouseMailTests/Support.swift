import Foundation
import GatehouseMail
import GatehouseTesting
import Testing

/// Runs `body` and returns the `MailError` it throws, or nil if it returns.
func mailError(_ body: () async throws(MailError) -> Void) async -> MailError? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// Synchronous form of ``mailError(_:)``.
func mailError(_ body: () throws(MailError) -> Void) -> MailError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// Measures how long `body` takes.
func elapsed(_ body: () async throws -> Void) async rethrows -> Duration {
    let start = ContinuousClock.now
    try await body()
    return ContinuousClock.now - start
}

/// A random six-digit code, as the service makes them.
func randomCode() -> String {
    let value = Int.random(in: 0..<1_000_000)
    let digits = String(value)
    return String(repeating: "0", count: 6 - digits.count) + digits
}

/// The code in a received code mail: the line indented by four spaces.
func codeInBody(_ body: String) -> String? {
    body.split(separator: "\n").first { $0.hasPrefix("    ") }.map { $0.trimmingCharacters(in: .whitespaces) }
}

/// A client for `server` with test-friendly timeouts (short enough that failure tests run fast,
/// long enough not to flake on a loaded 2-core machine).
func makeClient(
    _ url: String,
    connectTimeout: Duration = .seconds(2),
    commandTimeout: Duration = .seconds(5),
    maximumConcurrentDeliveries: Int = 8
) throws(MailError) -> SMTPClient {
    SMTPClient(
        configuration: .init(
            url: try SMTPURL(url),
            connectTimeout: connectTimeout,
            commandTimeout: commandTimeout,
            heloName: "gatehouse-test-client",
            maximumConcurrentDeliveries: maximumConcurrentDeliveries
        )
    )
}

/// A sign-in code message to `to`.
func signInMessage(code: String, to: String = "alice@example.com") throws(MailError) -> MailMessage {
    try CodeMail.signIn(code: code, issuer: "Example Mail", validForMinutes: 10)
        .message(from: "no-reply@gatehouse.example", to: to)
}
