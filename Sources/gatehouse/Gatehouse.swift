import ArgumentParser

/// The `gatehouse` command: the service and the operator's tools.
@main
struct GatehouseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Two-step verification and session service for mail providers.",
        subcommands: [ServeCommand.self, UsersCommand.self, DomainsCommand.self, APIKeyCommand.self, KeysCommand.self, DataKeyCommand.self, OTPCommand.self, EnrollPreviewCommand.self, LoadCommand.self, DebugCommand.self]
    )
}
