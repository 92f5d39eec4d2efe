import Foundation
import GatehouseCore
public import GatehouseService
import Hummingbird
import Logging
import ServiceLifecycle

/// `gatehouse serve`: assembles a node from configuration and runs it until SIGTERM/SIGINT.
public enum GatehouseServer {
    /// Runs a node. Prints the URL (and, on first start, the development API key) to stdout.
    public static func run(configuration: GatehouseConfiguration) async throws {
        var logger = Logger(label: "gatehouse")
        logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
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
        // Stopping the embedded redis-server waits for it (async), which a defer cannot.
        do {
            try await run(configuration: configuration, prepared: prepared, redisURL: redisURL, logger: logger)
        } catch {
            await embedded?.stop()
            throw error
        }
        await embedded?.stop()
    }

    /// The node on `redisURL`, until SIGTERM/SIGINT.
    static func run(configuration: GatehouseConfiguration, prepared: StateFolder.Prepared, redisURL: String, logger: Logger) async throws {
        let keyring = KeyringStore(try Keyring.load(path: prepared.keyringFile))
        let secrets = try SecretBox.load(path: prepared.dataKeyFile)
        let mailer: any CodeMailer = if let smtp = configuration.smtpURL {
            try SMTPCodeMailer(url: smtp, from: configuration.mailFrom, issuer: configuration.issuer, logger: logger)
        } else {
            NoMailer()
        }
        let gatehouse = try Gatehouse(configuration: configuration, redisURL: redisURL, keyring: keyring, secrets: secrets, mailer: mailer, logger: logger)
        let metrics = MetricsEndpoint()
        let responder = GatehouseResponder(gatehouse: gatehouse, apiKeys: APIKeyRegistry(prepared.apiKeys), metrics: metrics)
        let reloader = KeyringReloader(store: keyring, path: prepared.keyringFile, logger: logger)
        let listen = configuration.listen
        let app = Application(
            responder: responder,
            // Requests are answered from the channel pipeline (see FastPathHandler); Hummingbird
            // takes the import's streamed body and requests pipelined behind one of those.
            server: .gatehouse(responder),
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port), serverName: nil),
            services: [gatehouse, reloader],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                print("Gatehouse listening on http://\(listen.host):\(port)")
                if let key = prepared.createdDevelopmentKey {
                    print("development API key (all scopes), saved in \(prepared.developmentKeyFile ?? ""): \(key.split(separator: ":").last ?? "")")
                } else if let file = prepared.developmentKeyFile {
                    print("development API key: see \(file)")
                }
                fflush(nil)
            },
            logger: logger
        )
        try await app.runService()
    }
}

/// Reloads the keyring on SIGHUP and when the file changes (checked every second), without
/// dropping a request: verification keeps using the old keyring until the new one is ready.
final class KeyringReloader: Service {
    let store: KeyringStore
    let path: String
    let logger: Logger

    init(store: KeyringStore, path: String, logger: Logger) {
        self.store = store
        self.path = path
        self.logger = logger
    }

    func run() async throws {
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP)
        signal(SIGHUP, SIG_IGN)
        let (requests, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        hangup.setEventHandler { continuation.yield() }
        hangup.resume()
        defer { hangup.cancel() }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                continuation.yield()
            }
        }
        defer { ticker.cancel() }
        var lastModified = Self.modified(path)
        await withGracefulShutdownHandler {
            for await _ in requests {
                let modified = Self.modified(path)
                guard modified != lastModified else { continue }
                lastModified = modified
                do {
                    try store.reload(path: path)
                    logger.notice("keyring reloaded", metadata: ["active_kid": "\(store.keyring.activeKeyID)"])
                } catch {
                    logger.error("keyring reload failed; keeping the current keys", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }

    static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}
