import ArgumentParser
import GatehouseApp
import Hummingbird
import GatehouseService

/// `gatehouse serve`: runs a node.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a Gatehouse node (with no configuration: embedded redis-server and keys under ./.gatehouse)."
    )

    @Option(name: .long, help: "JSON configuration file (also GATEHOUSE_CONFIG).")
    var config: String?

    func run() async throws {
        let configuration: GatehouseConfiguration
        do { configuration = try GatehouseConfiguration.load(configFile: config) } catch {
            throw ValidationError(error.detail)
        }
        try await buildApplication(configuration: configuration).runService()
    }
}
