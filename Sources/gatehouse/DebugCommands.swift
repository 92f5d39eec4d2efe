import Foundation
import ArgumentParser
import GatehouseCore
import GatehouseCrypto
// The executable reaches GatehouseRedis through GatehouseService (which re-exports its types);
// imported here for `RedisScript`'s members and `RedisKeys`.
import GatehouseRedis
import GatehouseService

/// `gatehouse debug …`: hidden commands for the benchmarks (`benchmarks/e2e.sh`,
/// `benchmarks/mail.sh`), so a reference run with `redis-benchmark` uses the service's own script
/// and argument list instead of a copy kept in shell.
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Benchmark commands (the code-check and mail-auth scripts and their arguments).",
        shouldDisplay: false,
        subcommands: [CodeCheckScriptCommand.self, CodeCheckArgsCommand.self, MailAuthScriptCommand.self, MailAuthArgsCommand.self]
    )
}

/// Prints `CodeCheckScript.script` exactly as the nodes load it (no trailing newline), or its SHA-1.
struct CodeCheckScriptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code-check-script",
        abstract: "Print the Lua source of the code-check script, byte for byte (or its SHA-1 with --sha1)."
    )

    @Flag(help: "Print the SHA-1 the nodes call it by (EVALSHA) instead of the source.")
    var sha1 = false

    func run() {
        if sha1 {
            print(CodeCheckScript.script.sha1)
        } else {
            // No newline: `SCRIPT LOAD` of the printed text must name the same SHA-1.
            print(CodeCheckScript.script.source, terminator: "")
        }
    }
}

/// Prints the `EVALSHA` arguments (after the SHA-1) that a node sends for a wrong TOTP code at
/// `login/finish`: numkeys, the keys, then ARGV — one per line.
///
/// Mirrors `Gatehouse.checkTOTP` → `runCheck` (Login.swift) and `CodeChecker.check`
/// (CodeChecker.swift); those are internal to GatehouseService, so the two literal TTLs below are
/// restated here and must follow them. The user may carry redis-benchmark's `__rand_int__`.
struct CodeCheckArgsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code-check-args",
        abstract: "Print numkeys, KEYS and ARGV of the code-check script for a wrong TOTP code, with the session arguments a valid one carries (the e2e reference), one per line.",
        discussion: "Defaults come from the node configuration (GATEHOUSE_* variables, GATEHOUSE_CONFIG or --config)."
    )

    @Option(help: "The user (an address; may contain __rand_int__).")
    var user: String = "e2e-__rand_int__@load.example"
    @Option(help: "Redis key prefix (default: the configuration's, normally 'gh').")
    var prefix: String?
    @Option(name: .customLong("cred-version"), help: "The user's credential version as the node's cache holds it (a freshly imported user has 1).")
    var credentialVersion: String = "1"
    @Option(name: .customLong("challenge-id"), help: "The challenge id (default: a fresh random one, as the node makes).")
    var challengeID: String?
    @Option(name: .customLong("client-ip"), help: "client_ip of the request (default: none, as `gatehouse load` sends).")
    var clientIP: String?
    @Option(help: "JSON configuration file (also GATEHOUSE_CONFIG).")
    var config: String?

    func run() throws {
        let configuration: GatehouseConfiguration
        do { configuration = try GatehouseConfiguration.load(configFile: config) } catch {
            throw ValidationError(error.detail)
        }
        guard let user = UserID(user) else { throw ValidationError("--user is not an address") }
        let keys = RedisKeys(prefix: prefix ?? configuration.redisPrefix)
        func userKey(_ parts: String...) throws -> String {
            var key = try keys.user(user.value)
            for part in parts { key += ":" + part }
            return key
        }
        let ipKey: String
        if let clientIP {
            guard let budget = ipBudgetKey(clientIP) else { throw ValidationError("--client-ip is not an IP address") }
            ipKey = keys.global("ip", "{\(budget)}")
        } else {
            ipKey = try userKey("ip", "none")
        }
        // Gatehouse.newID(): 16 random bytes, base64url.
        let challenge = try challengeID ?? Base64URL.encode(SystemRandom().bytes(16))
        // The keys as Gatehouse.runCheck names them; the arguments from the same function the
        // node's check uses, as a sign-in attempt with a wrong code sends them.
        let codeKeys = CodeChecker.Keys(
            userRecord: try userKey("user"), throttle: try userKey("throttle"), modeRecord: try userKey("totp", "last"),
            ipCounter: ipKey, challengeMarker: try userKey("challenge", challenge),
            sessions: try userKey("sessions"), events: try userKey(Gatehouse.eventLogName)
        )
        // A valid code's call carries the session the script records (a fresh id and a record
        // shaped like the node's); the node leaves them empty for a code that matches no step.
        // They are here so that the reference, a wrong code, sends as many bytes as the valid
        // checks it is compared with. `e2e.sh` compares everything else with what a node sends.
        var effects = CodeChecker.Effects()
        effects.eventDetail = SecondStepMethod.totp.rawValue
        effects.clientIP = clientIP
        let now = Int64(Date().timeIntervalSince1970)
        let record: [String: Any] = [
            "amr": ["pwd", "otp"], "client_ip": clientIP ?? NSNull(), "created_at": now,
            "expires_at": now + 8 * 3600, "user_agent": NSNull(),
        ]
        effects.session = (Base64URL.encode(try SystemRandom().bytes(11)), JSONText.string(record))
        effects.sessionListTTLSeconds = Int(configuration.lifetimes.sessionAbsoluteSeconds)
        effects.successEvent = "second_step_succeeded"
        let call = CodeChecker.invocation(
            keys: codeKeys, credentialVersion: credentialVersion, candidate: .totp(matchedStep: nil),  // a wrong code matches no step
            settings: configuration.throttle, challengeTTLSeconds: Gatehouse.challengeMarkerTTLSeconds(configuration),
            throttleTTLSeconds: CodeChecker.throttleTTLSeconds, effects: effects
        )
        let lines = [String(call.keys.count)] + call.keys + call.arguments
        print(lines.joined(separator: "\n"))
    }
}

/// Prints `MailAuthScript.script` exactly as the nodes load it (no trailing newline), or its SHA-1.
struct MailAuthScriptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail-auth-script",
        abstract: "Print the Lua source of the mail-auth script, byte for byte (or its SHA-1 with --sha1)."
    )

    @Flag(help: "Print the SHA-1 the nodes call it by (EVALSHA) instead of the source.")
    var sha1 = false

    func run() {
        if sha1 {
            print(MailAuthScript.script.sha1)
        } else {
            print(MailAuthScript.script.source, terminator: "")
        }
    }
}

/// Prints the `EVALSHA` arguments (after the SHA-1) that a node sends for one mail login check
/// (`POST /v1/mail/authenticate`, `GET /v1/mail/auth-http`): numkeys, the keys, then ARGV, one
/// per line, from `MailAuthScript.invocation`, the function the node's check calls. ARGV[1] is
/// the keyed hash of the password, so the node's data key is loaded (GATEHOUSE_DATA_KEY_FILE,
/// or `data-key.json` in the state folder; never created here).
struct MailAuthArgsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail-auth-args",
        abstract: "Print numkeys, KEYS and ARGV of the mail-auth script for one login check, one per line.",
        discussion: "The data key and the key prefix come from the node configuration (GATEHOUSE_* variables, GATEHOUSE_CONFIG or --config)."
    )

    @Option(help: "The login name (an address).")
    var user: String
    @Option(help: "The password the mail client sends (an app password: spaces, dashes and case do not matter).")
    var password: String
    @Option(help: "imap, pop3 or smtp.")
    var service: String = "imap"
    @Option(name: .customLong("client-ip"), help: "The mail client's address (default: none).")
    var clientIP: String?
    @Option(help: "The time of the check, Unix seconds (default: now).")
    var now: Int64?
    @Option(help: "Redis key prefix (default: the configuration's, normally 'gh').")
    var prefix: String?
    @Option(help: "JSON configuration file (also GATEHOUSE_CONFIG).")
    var config: String?

    func run() throws {
        let configuration: GatehouseConfiguration
        do { configuration = try GatehouseConfiguration.load(configFile: config) } catch {
            throw ValidationError(error.detail)
        }
        guard let user = UserID(user) else { throw ValidationError("--user is not an address") }
        guard let service = MailService(rawValue: service) else { throw ValidationError("--service must be imap, pop3 or smtp") }
        if let clientIP, ipBudgetKey(clientIP) == nil { throw ValidationError("--client-ip is not an IP address") }
        let path = configuration.dataKeyFile ?? configuration.stateDirectory + "/data-key.json"
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("no data key at \(path): set GATEHOUSE_DATA_KEY_FILE to the nodes' data-key file")
        }
        let secrets: SecretBox
        do { secrets = try SecretBox.load(path: path) } catch { throw ValidationError("\(path): \(error)") }
        let call = MailAuthScript.invocation(
            prefix: prefix ?? configuration.redisPrefix, user: user, passwordHash: MailAuthScript.passwordHash(password, secrets: secrets),
            service: service, now: now ?? Int64(Date().timeIntervalSince1970), clientIP: clientIP
        )
        let lines = [String(call.keys.count)] + call.keys + call.arguments
        print(lines.joined(separator: "\n"))
    }
}
