import Foundation
import GatehouseCore
import GatehouseService
import Logging
import ServiceLifecycle

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
