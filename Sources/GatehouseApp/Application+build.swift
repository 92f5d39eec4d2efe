import Foundation
import GatehouseCore
public import GatehouseHTTP
import GatehouseWeb
public import GatehouseService
public import Hummingbird
public import Logging
import ServiceLifecycle

/// Builds one Gatehouse node from its configuration: Redis (the configured one, or an embedded
/// `redis-server` under the state folder), the keys, the code mailer, the service layer, the
/// keyring reloader and the HTTP edge, as one Hummingbird application. `gatehouse serve` runs it
/// until SIGTERM or SIGINT; tests run it in-process.
///
/// Services start in this order and stop in the reverse one (after the HTTP server has
/// stopped): the embedded Redis, the service layer (its Redis client, clock and revocation
/// follower), the keyring reloader.
public func buildApplication(configuration: GatehouseConfiguration) async throws -> some ApplicationProtocol {
    try await buildApplication(configuration: configuration, hooks: ApplicationHooks())
}

/// What an in-process test sets on a node that `gatehouse serve` leaves at its defaults.
package struct ApplicationHooks: Sendable {
    /// The node's logger (tests capture the lines); nil: a `gatehouse` logger at the configured level.
    package var logger: Logger?
    /// Moves the service's clocks (tests advance TOTP steps instead of waiting for them).
    package var clockOffset: ClockOffset?
    /// Where the server listens: the bound address and port.
    package struct Listening: Sendable {
        package var host: String
        package var port: Int
    }

    /// Called with the bound address once the server listens.
    package var onListening: (@Sendable (Listening) async -> Void)?
    /// Print the URL and the development key on start (what `gatehouse serve` shows a person).
    package var announce = true

    package init(logger: Logger? = nil, clockOffset: ClockOffset? = nil, onListening: (@Sendable (Listening) async -> Void)? = nil, announce: Bool = true) {
        self.logger = logger
        self.clockOffset = clockOffset
        self.onListening = onListening
        self.announce = announce
    }
}

/// ``buildApplication(configuration:)`` with test hooks.
package func buildApplication(configuration: GatehouseConfiguration, hooks: ApplicationHooks) async throws -> some ApplicationProtocol {
    var configuration = configuration
    // The stand-in webmail is on by default only for the development node (embedded Redis).
    configuration.web.demo = configuration.web.demoEnabled(embeddedRedis: configuration.redisURL == nil)
    var logger = hooks.logger ?? Logger(label: "gatehouse")
    if hooks.logger == nil { logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info }
    let prepared = try StateFolder.prepare(configuration)
    var embedded: EmbeddedRedis?
    let redisURL: String
    if let url = configuration.redisURL {
        redisURL = url
    } else {
        let server = try await EmbeddedRedis.start(stateDirectory: configuration.stateDirectory, logger: logger)
        embedded = server
        redisURL = server.url
    }
    do {
        let keyring = KeyringStore(try Keyring.load(path: prepared.keyringFile))
        let secrets = try SecretBox.load(path: prepared.dataKeyFile)
        let mailer: any CodeMailer = if let smtp = configuration.smtpURL {
            try SMTPCodeMailer(url: smtp, from: configuration.mailFrom, issuer: configuration.issuer, logger: logger)
        } else {
            NoMailer()
        }
        let gatehouse = try Gatehouse(
            configuration: configuration, redisURL: redisURL, keyring: keyring, secrets: secrets, mailer: mailer,
            clockOffset: hooks.clockOffset, logger: logger
        )
        let pages = configuration.web.pages ? try WebPages(gatehouse: gatehouse).routes : nil
        let edge = HTTPEdge(gatehouse: gatehouse, apiKeys: prepared.apiKeys, pages: pages)
        let reloader = KeyringReloader(store: keyring, path: prepared.keyringFile, logger: logger)
        var services: [any Service] = []
        if let embedded { services.append(EmbeddedRedisService(server: embedded)) }
        services += [gatehouse, reloader, MemoryReturner()]
        let listen = configuration.listen, demo = configuration.web.demo == true
        let announce = hooks.announce, onListening = hooks.onListening
        return Application(
            responder: edge.responder,
            // Requests are answered from the channel pipeline (the fast path); Hummingbird takes
            // the import's streamed body and requests pipelined behind one of those.
            server: edge.server,
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port), serverName: nil),
            services: services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                if announce {
                    print("Gatehouse listening on http://\(listen.host):\(port)")
                    if demo {
                        // localhost, not the IP: passkeys need a host their relying-party ID covers.
                        let host = listen.host == "127.0.0.1" ? "localhost" : listen.host
                        print("demo webmail (a stand-in for trying the pages): http://\(host):\(port)/demo/login — any address, password \(WebPages.demoPassword)")
                    }
                    if let key = prepared.createdDevelopmentKey {
                        print("development API key (all scopes), saved in \(prepared.developmentKeyFile ?? ""): \(key.split(separator: ":").last ?? "")")
                    } else if let file = prepared.developmentKeyFile {
                        print("development API key: see \(file)")
                    }
                    fflush(nil)
                }
                await onListening?(ApplicationHooks.Listening(host: channel.localAddress?.ipAddress ?? listen.host, port: port))
            },
            logger: logger
        )
    } catch {
        await embedded?.stop()
        throw error
    }
}

/// The embedded `redis-server` as a service: it runs until the node shuts down and is stopped
/// last, after everything that talks to it.
struct EmbeddedRedisService: Service {
    let server: EmbeddedRedis

    func run() async throws {
        // Returns at graceful shutdown, or throws when the group is cancelled: stop either way.
        try? await gracefulShutdown()
        await server.stop()
    }
}
