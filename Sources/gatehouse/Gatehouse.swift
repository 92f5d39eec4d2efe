import ArgumentParser

/// The `gatehouse` command: the service and the operator's tools.
@main
struct Gatehouse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Two-step verification and session service for mail providers.",
        subcommands: [KeysCommand.self, DataKeyCommand.self, OTPCommand.self, EnrollPreviewCommand.self]
    )
}
