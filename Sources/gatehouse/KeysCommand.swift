import ArgumentParser
import Foundation
import GatehouseCore

/// `gatehouse keys …`: the token-signing keyring file.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list, rotate and retire token-signing keys.",
        discussion: """
        Rotation, step by step: (1) `gatehouse keys rotate --file F` adds a new active key and \
        turns the old active key into a verify-only key; (2) reload every node (SIGHUP, or they \
        notice the file change); (3) after the longest token lifetime has passed (remember \
        tokens: the domain's remember_device_days, 30 days by default), `gatehouse keys retire \
        --file F --kid OLD` stops the old key verifying; reload again.
        """,
        subcommands: [Create.self, List.self, Rotate.self, Retire.self, JWKS.self]
    )

    struct FileOption: ParsableArguments {
        @Option(name: .long, help: "Keyring file path.")
        var file: String = ProcessInfo.processInfo.environment["GATEHOUSE_KEYRING_FILE"] ?? "keyring.json"
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a new keyring with one active key (mode 0600).")
        @OptionGroup var options: FileOption
        @Option(name: .long, help: "Session-token algorithm for the key: HS256 or EdDSA.")
        var sessionAlg: String = "HS256"
        @Flag(name: .long, help: "Overwrite an existing file.")
        var force = false

        func run() throws {
            let algorithm = try parseAlgorithm(sessionAlg)
            if !force, FileManager.default.fileExists(atPath: options.file) {
                throw ValidationError("\(options.file) exists; use --force to replace it (all tokens signed with it will die)")
            }
            let entry = try KeyringFile.newEntry(state: .active, sessionAlgorithm: algorithm)
            let file = KeyringFile(keys: [entry])
            try KeyFiles.writeSecret(try file.jsonData(), to: options.file)
            print("created \(options.file) with active key \(entry.kid)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List key ids and states (never secrets).")
        @OptionGroup var options: FileOption

        func run() throws {
            let file = try KeyringFile(json: KeyFiles.read(path: options.file))
            print("KID".padding(toLength: 24, withPad: " ", startingAt: 0) + "STATE    SESSION_ALG  CREATED")
            for key in file.keys {
                let state = key.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                let alg = (key.sessionAlgorithm ?? .hs256).rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
                print(key.kid.padding(toLength: 24, withPad: " ", startingAt: 0) + state + alg + (key.createdAt ?? "-"))
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new active key; the old active key becomes verify-only.")
        @OptionGroup var options: FileOption
        @Option(name: .long, help: "Session-token algorithm for the new key (default: same as the old active key).")
        var sessionAlg: String?

        func run() throws {
            var file = try KeyringFile(json: KeyFiles.read(path: options.file))
            let entry = try file.rotate(sessionAlgorithm: try sessionAlg.map(parseAlgorithm))
            try KeyFiles.writeSecret(try file.jsonData(), to: options.file)
            print("new active key \(entry.kid); previous active key is now verify-only")
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a verify-only key from verifying.")
        @OptionGroup var options: FileOption
        @Option(name: .long, help: "The key id to retire.")
        var kid: String

        func run() throws {
            var file = try KeyringFile(json: KeyFiles.read(path: options.file))
            try file.retire(kid: kid)
            try KeyFiles.writeSecret(try file.jsonData(), to: options.file)
            print("retired \(kid)")
        }
    }

    struct JWKS: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the JWKS document of EdDSA session keys.")
        @OptionGroup var options: FileOption

        func run() throws {
            print(try Keyring.load(path: options.file).jwks)
        }
    }
}

func parseAlgorithm(_ text: String) throws -> TokenAlgorithm {
    guard let algorithm = TokenAlgorithm(rawValue: text) else {
        throw ValidationError("unknown session algorithm '\(text)': use HS256 or EdDSA")
    }
    return algorithm
}

/// `gatehouse data-key …`: the AES-256 data-key file for secrets at rest.
struct DataKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-key",
        abstract: "Create or rotate the data-key file that encrypts secrets at rest.",
        subcommands: [Create.self, Rotate.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a new data-key file (mode 0600).")
        @Option(name: .long, help: "Data-key file path.")
        var file: String = ProcessInfo.processInfo.environment["GATEHOUSE_DATA_KEY_FILE"] ?? "data-key.json"
        @Flag(name: .long, help: "Overwrite an existing file (everything sealed with it becomes unreadable).")
        var force = false

        func run() throws {
            if !force, FileManager.default.fileExists(atPath: file) {
                throw ValidationError("\(file) exists; use --force to replace it")
            }
            let keys = try DataKeyFile.generate()
            try KeyFiles.writeSecret(try keys.jsonData(), to: file)
            print("created \(file) with active data key \(keys.active)")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new active data key; older keys still open old envelopes.")
        @Option(name: .long, help: "Data-key file path.")
        var file: String = ProcessInfo.processInfo.environment["GATEHOUSE_DATA_KEY_FILE"] ?? "data-key.json"

        func run() throws {
            var keys = try DataKeyFile(json: KeyFiles.read(path: file))
            let id = try keys.rotate()
            try KeyFiles.writeSecret(try keys.jsonData(), to: file)
            print("new active data key \(id)")
        }
    }
}
