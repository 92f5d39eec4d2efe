import Foundation
import GatehouseCore
import GatehouseCrypto
import Testing

@Suite("Envelope encryption (AES-256-GCM)")
struct EnvelopeTests {
    @Test func roundTrip() throws {
        let box = SecretBox(try DataKeyFile.generate())
        let secret = Array("12345678901234567890".utf8)
        let sealed = try box.seal(secret, user: "jane@example.org", purpose: "totp")
        #expect(sealed.hasPrefix("v1.\(box.activeKeyID)."))
        #expect(!sealed.contains("12345678901234567890"))
        #expect(try box.open(sealed, user: "jane@example.org", purpose: "totp") == secret)
        // Fresh nonce per seal.
        #expect(try box.seal(secret, user: "jane@example.org", purpose: "totp") != sealed)
    }

    @Test("a ciphertext is bound to its user and purpose")
    func binding() throws {
        let box = SecretBox(try DataKeyFile.generate())
        let sealed = try box.seal(Array("secret".utf8), user: "jane@example.org", purpose: "totp")
        #expect(throws: CoreError.self) { try box.open(sealed, user: "john@example.org", purpose: "totp") }
        #expect(throws: CoreError.self) { try box.open(sealed, user: "jane@example.org", purpose: "app-password") }
    }

    @Test("tampering and foreign keys are detected")
    func tampering() throws {
        let box = SecretBox(try DataKeyFile.generate())
        let sealed = try box.seal(Array("secret".utf8), user: "u@x.org", purpose: "totp")
        var bytes = Array(sealed.utf8)
        let i = bytes.count - 5
        bytes[i] = bytes[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: CoreError.self) { try box.open(String(decoding: bytes, as: UTF8.self), user: "u@x.org", purpose: "totp") }
        let other = SecretBox(try DataKeyFile.generate())
        #expect(throws: CoreError.self) { try other.open(sealed, user: "u@x.org", purpose: "totp") }
        for junk in ["", "v1", "v2.a.b", "v1.\(box.activeKeyID).!!", "v1.\(box.activeKeyID).AAAA"] {
            #expect(throws: CoreError.self) { try box.open(junk, user: "u@x.org", purpose: "totp") }
        }
    }

    @Test("after rotation old envelopes still open and new ones use the new key")
    func rotation() throws {
        var file = try DataKeyFile.generate()
        let old = SecretBox(file)
        let sealed = try old.seal(Array("s".utf8), user: "u@x.org", purpose: "totp")
        let newID = try file.rotate()
        let box = SecretBox(file)
        #expect(try box.open(sealed, user: "u@x.org", purpose: "totp") == Array("s".utf8))
        #expect(try box.seal(Array("s".utf8), user: "u@x.org", purpose: "totp").hasPrefix("v1.\(newID)."))
    }

    @Test("data-key files are validated")
    func fileValidation() throws {
        let good = try DataKeyFile.generate()
        #expect(try DataKeyFile(json: good.jsonData()) == good)
        #expect(throws: CoreError.self) { try DataKeyFile(json: Data("{\"version\":1,\"active\":\"x\",\"keys\":{}}".utf8)) }
        let short = DataKeyFile(active: "d1", keys: ["d1": Base64URL.encode([UInt8](repeating: 0, count: 16))])
        #expect(throws: CoreError.self) { try DataKeyFile(json: short.jsonData()) }
    }

    @Test("AES-256-GCM with a wrong-sized key is an error")
    func keySize() {
        #expect(throws: CryptoError.self) { try AES256GCM.seal([1], key: [UInt8](repeating: 0, count: 16), aad: []) }
        #expect(throws: CryptoError.self) { try AES256GCM.open([UInt8](repeating: 0, count: 40), key: [UInt8](repeating: 0, count: 32), aad: []) }
    }
}
