import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseCrypto

/// `gatehouse otp`: the code an authenticator shows, for an operator helping a user.
struct OTPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otp",
        abstract: "Print the TOTP code an authenticator app shows for a secret at a given time."
    )

    @Option(name: .long, help: "The base32 secret (RFC 4648, no padding, any case).")
    var secret: String
    @Option(name: .long, help: "Unix time in seconds (default: now).")
    var time: Int64?
    @Option(name: .long, help: "Digits, 6 to 8.")
    var digits: Int = 6
    @Option(name: .long, help: "sha1, sha256 or sha512.")
    var algorithm: String = "sha1"
    @Option(name: .long, help: "Step length in seconds.")
    var period: Int = 30

    func validate() throws {
        guard HOTP.supportedDigits.contains(digits) else { throw ValidationError("--digits must be 6, 7 or 8") }
        guard HashAlgorithm(rawValue: algorithm.lowercased()) != nil else {
            throw ValidationError("--algorithm must be sha1, sha256 or sha512")
        }
        guard (1...3600).contains(period) else { throw ValidationError("--period must be 1 to 3600 seconds") }
        if let time, time < 0 { throw ValidationError("--time must not be before 1970") }
        guard Base32.decode(secret) != nil else {
            throw ValidationError("--secret is not base32 (A-Z and 2-7, no padding or spaces)")
        }
    }

    func run() throws {
        let key = Base32.decode(secret)!
        let totp: TOTP
        do {
            totp = try TOTP(secret: key, algorithm: HashAlgorithm(rawValue: algorithm.lowercased())!, digits: digits, period: period)
        } catch {
            throw ValidationError(error.message)
        }
        let now = time ?? Int64(Date().timeIntervalSince1970)
        print(totp.code(at: now)!)
    }
}

/// `gatehouse enroll-preview`: what a user sees when enrolling, in the terminal.
struct EnrollPreviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll-preview",
        abstract: "Print a fresh secret, its otpauth URI and a scannable QR code."
    )

    @Option(name: .long, help: "The user (email address) the secret is for.")
    var user: String
    @Option(name: .long, help: "Issuer shown in the authenticator app.")
    var issuer: String = ProcessInfo.processInfo.environment["GATEHOUSE_ISSUER"] ?? "Gatehouse"
    @Flag(name: .long, help: "Draw dark modules as ink (for light-background terminals).")
    var darkOnLight = false

    func validate() throws {
        let bytes = user.utf8
        guard bytes.count <= 254, let at = user.lastIndex(of: "@"), at != user.startIndex, user.index(after: at) != user.endIndex,
              !user.contains(where: { $0.isWhitespace || $0.isNewline })
        else { throw ValidationError("--user must be an email address (local@domain, at most 254 bytes)") }
    }

    func run() throws {
        let secret = try OTPSecret.generate()
        let uri = OTPAuthURI(issuer: issuer, account: user.lowercased(), secret: secret).uri
        let qr = try QRCode(encoding: uri)
        print("secret: \(Base32.encode(secret))")
        print("uri:    \(uri)")
        print("")
        print(qr.terminal(darkOnLight: darkOnLight), terminator: "")
    }
}
