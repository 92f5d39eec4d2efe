import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GatehouseCore
import GatehouseCrypto

/// Where a running node is, and the admin key to call it with.
struct NodeOptions: ParsableArguments {
    @Option(name: .long, help: "Base URL of a node (default: GATEHOUSE_URL or http://127.0.0.1:8080).")
    var url: String = ProcessInfo.processInfo.environment["GATEHOUSE_URL"] ?? "http://127.0.0.1:8080"
    @Option(name: .long, help: "Admin API key (default: GATEHOUSE_ADMIN_KEY, else ./.gatehouse/dev-api-key).")
    var key: String?

    func adminKey() throws -> String {
        if let key { return key }
        if let key = ProcessInfo.processInfo.environment["GATEHOUSE_ADMIN_KEY"] { return key }
        let state = ProcessInfo.processInfo.environment["GATEHOUSE_STATE_DIR"] ?? ".gatehouse"
        if let line = try? String(contentsOfFile: state + "/dev-api-key", encoding: .utf8),
           let secret = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":", maxSplits: 2).last {
            return String(secret)
        }
        throw ValidationError("no admin key: pass --key or set GATEHOUSE_ADMIN_KEY")
    }

    /// Calls the node; prints the body; non-2xx is an error with the problem's detail.
    func call(_ method: String, _ path: String, body: Data? = nil) async throws -> Data {
        guard let base = URL(string: url), let target = URL(string: base.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path) else {
            throw ValidationError("--url is not a URL")
        }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.setValue("Bearer \(try adminKey())", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse)
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw CLIError("cannot reach \(url): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            let detail = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["detail"] as? String ?? ""
            throw CLIError("\(method) \(path) answered \(status) \(detail)")
        }
        return data
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func printJSON(_ data: Data) {
    if data.isEmpty { return }
    if let object = try? JSONSerialization.jsonObject(with: data),
       let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: pretty, as: UTF8.self))
    } else {
        print(String(decoding: data, as: UTF8.self))
    }
}

func userPath(_ user: String) throws -> String {
    guard user.contains("@"), let escaped = user.lowercased().addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) else {
        throw ValidationError("'\(user)' is not an email address")
    }
    return "/v1/users/" + escaped
}

/// `gatehouse users …`: operator commands against a running node's admin API.
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Status, reset, unlock and import of users (through a node's admin API).",
        subcommands: [Status.self, Reset.self, Unlock.self, RevokeSessions.self, Import.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user's two-step status and throttle state.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The user (email address).") var user: String
        func run() async throws { printJSON(try await node.call("GET", try userPath(user))) }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lost phone: remove the second step, devices and every session.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The user (email address).") var user: String
        func run() async throws {
            _ = try await node.call("DELETE", try userPath(user) + "/two-step")
            print("two-step reset for \(user.lowercased())")
        }
    }

    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a user's failure count, wait and lock.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The user (email address).") var user: String
        func run() async throws {
            _ = try await node.call("POST", try userPath(user) + "/unlock")
            print("unlocked \(user.lowercased())")
        }
    }

    struct RevokeSessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke-sessions", abstract: "Sign a user out everywhere.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The user (email address).") var user: String
        func run() async throws {
            _ = try await node.call("POST", try userPath(user) + "/sessions/revoke-all")
            print("revoked every session of \(user.lowercased())")
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import NDJSON lines {\"user\",\"totp_secret\"?,\"recovery_email\"?,\"verified\"?}; prints a result per line.",
            discussion: "Exits non-zero when any line failed (the good lines land regardless)."
        )
        @OptionGroup var node: NodeOptions
        @Argument(help: "The NDJSON file ('-' for standard input).") var file: String
        func run() async throws {
            let data: Data
            if file == "-" { data = FileHandle.standardInput.readDataToEndOfFile() } else {
                guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
                data = d
            }
            let reply = try await node.call("POST", "/v1/users/import", body: data)
            guard let object = (try? JSONSerialization.jsonObject(with: reply)) as? [String: Any] else { throw CLIError("unexpected answer") }
            for result in object["results"] as? [[String: Any]] ?? [] {
                let line = result["line"] as? Int ?? 0
                if result["ok"] as? Bool == true {
                    print("line \(line): ok \(result["user"] as? String ?? "")")
                } else {
                    print("line \(line): error \(result["error"] as? String ?? "")")
                }
            }
            let failed = object["failed"] as? Int ?? 0
            print("imported \(object["imported"] as? Int ?? 0), failed \(failed)")
            if failed > 0 { throw ExitCode(2) }
        }
    }
}

/// `gatehouse domains policy DOMAIN [--mode …]`.
struct DomainsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "domains", abstract: "Domain policies.", subcommands: [Policy.self])

    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a domain's policy, or change it with any of the options.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The domain.") var domain: String
        @Option(help: "disabled, optional or enforced.") var mode: String?
        @Option(help: "Comma-separated second steps: totp,email.") var methods: String?
        @Option(name: .customLong("remember-device-days"), help: "0 turns remember-me off.") var rememberDeviceDays: Int?
        @Option(name: .customLong("session-hours")) var sessionHours: Int?
        @Option(name: .customLong("app-password-reveal"), help: "true or false.") var appPasswordReveal: Bool?

        func run() async throws {
            let path = "/v1/domains/\(domain.lowercased())/policy"
            let changing = mode != nil || methods != nil || rememberDeviceDays != nil || sessionHours != nil || appPasswordReveal != nil
            guard changing else {
                printJSON(try await node.call("GET", path))
                return
            }
            let current = (try? JSONSerialization.jsonObject(with: try await node.call("GET", path))) as? [String: Any] ?? [:]
            var body: [String: Any] = ["mode": mode ?? (current["mode"] as? String ?? "optional")]
            if let methods { body["methods"] = methods.split(separator: ",").map(String.init) }
            if let rememberDeviceDays { body["remember_device_days"] = rememberDeviceDays }
            if let sessionHours { body["session_hours"] = sessionHours }
            if let appPasswordReveal { body["app_password_reveal"] = appPasswordReveal }
            printJSON(try await node.call("PUT", path, body: try JSONSerialization.data(withJSONObject: body)))
        }
    }
}

/// `gatehouse api-key create`: a new key line for GATEHOUSE_API_KEYS.
struct APIKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "api-key", abstract: "API keys.", subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a new name:scopes:secret line for GATEHOUSE_API_KEYS.")
        @Option(help: "The caller's name.") var name: String
        @Option(help: "Scopes joined by '+': verify, frontend, mail, admin.") var scopes: String

        func validate() throws {
            guard !name.isEmpty, !name.contains(":"), !name.contains(",") else { throw ValidationError("--name must be non-empty without ':' or ','") }
            let allowed: Set<Substring> = ["verify", "frontend", "mail", "admin"]
            let list = scopes.split(separator: "+")
            guard !list.isEmpty, list.allSatisfy(allowed.contains) else { throw ValidationError("--scopes must be verify, frontend, mail and/or admin joined by '+'") }
        }

        func run() throws {
            print("\(name):\(scopes):\(Base64URL.encode(try SystemRandom().bytes(32)))")
        }
    }
}
