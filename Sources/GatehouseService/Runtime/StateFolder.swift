import Foundation
public import GatehouseCore
import GatehouseCrypto

/// First-start setup of the state folder for a configuration-free `gatehouse serve`:
/// a keyring, a data key and a development API key, each 0600.
public enum StateFolder {
    /// What was prepared.
    public struct Prepared: Sendable {
        public var keyringFile: String
        public var dataKeyFile: String
        /// The API keys to use (configured ones, or the development key).
        public var apiKeys: [APIKeyConfiguration]
        /// The development key's full `name:scopes:secret`, when this start created it.
        public var createdDevelopmentKey: String?
        public var developmentKeyFile: String?
    }

    /// Fills in whatever the configuration leaves open.
    public static func prepare(_ configuration: GatehouseConfiguration) throws(ServiceError) -> Prepared {
        let dir = configuration.stateDirectory
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw ServiceError(.unavailable, "cannot create state folder \(dir)", underlying: error)
        }
        do {
            let keyring = configuration.keyringFile ?? dir + "/keyring.json"
            if configuration.keyringFile == nil, !FileManager.default.fileExists(atPath: keyring) {
                try KeyFiles.writeSecret(KeyringFile(keys: [KeyringFile.newEntry(state: .active)]).jsonData(), to: keyring)
            }
            let dataKey = configuration.dataKeyFile ?? dir + "/data-key.json"
            if configuration.dataKeyFile == nil, !FileManager.default.fileExists(atPath: dataKey) {
                try KeyFiles.writeSecret(DataKeyFile.generate().jsonData(), to: dataKey)
            }
            var prepared = Prepared(keyringFile: keyring, dataKeyFile: dataKey, apiKeys: configuration.apiKeys)
            if configuration.apiKeys.isEmpty {
                let file = dir + "/dev-api-key"
                prepared.developmentKeyFile = file
                if !FileManager.default.fileExists(atPath: file) {
                    let secret = Base64URL.encode(try SystemRandom().bytes(24))
                    let line = "dev:verify+frontend+mail+admin:\(secret)"
                    try KeyFiles.writeSecret(Data((line + "\n").utf8), to: file)
                    prepared.createdDevelopmentKey = line
                }
                let text = String(decoding: try KeyFiles.read(path: file), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                prepared.apiKeys = try APIKeyConfiguration.parseList(text)
            }
            return prepared
        } catch let error as ServiceError {
            throw error
        } catch {
            throw ServiceError(.unavailable, "cannot prepare the state folder \(dir)", underlying: error)
        }
    }
}
