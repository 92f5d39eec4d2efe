import Foundation
import GatehouseTesting
import Testing

/// Runs the built `gatehouse` executable, as an operator would.
@Suite("gatehouse CLI")
struct CLITests {
    static var binary: String {
        // swift test runs <build>/debug/<package>PackageTests.xctest; the executable sits beside it.
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = testBinary.deletingLastPathComponent()
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("gatehouse").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("gatehouse").path
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the executable to completion (at most 60 s; GatehouseTesting's ``Program``).
    static func run(_ arguments: [String], environment: [String: String]? = nil) async throws -> Output {
        let result = try await Program.run(binary, arguments, environment: environment)
        return Output(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("otp prints RFC 6238 codes", arguments: [
        (["--time", "59", "--digits", "8"], "94287082"),
        (["--time", "1111111109", "--digits", "8"], "07081804"),
        (["--time", "20000000000", "--digits", "8"], "65353130"),
        (["--time", "59"], "287082"),
    ])
    func otp(arguments: [String], expected: String) async throws {
        let result = try await Self.run(["otp", "--secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"] + arguments)
        #expect(result.status == 0)
        #expect(result.stdout == expected + "\n")
    }

    @Test("otp with SHA-256 and a lower-case secret")
    func otpSHA256() async throws {
        let secret = "gezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgeza"  // "1234…9012" (32 bytes)
        let result = try await Self.run(["otp", "--secret", secret, "--time", "59", "--digits", "8", "--algorithm", "sha256"])
        #expect(result.stdout == "46119246\n")
    }

    @Test("wrong arguments get a clear message and a non-zero exit", arguments: [
        (["otp", "--secret", "not base32!"], "base32"),
        (["otp", "--secret", "GEZDGNBVGY3TQOJQ", "--digits", "9"], "--digits"),
        (["otp", "--secret", "GEZDGNBVGY3TQOJQ", "--algorithm", "md5"], "--algorithm"),
        (["otp", "--secret", "GEZDGNBVGY3TQOJQ", "--time", "-5"], "--time"),
        (["otp"], "--secret"),
        (["enroll-preview", "--user", "not-an-email"], "--user"),
        (["keys", "list", "--file", "/nonexistent/keyring.json"], "cannot read"),
        (["no-such-command"], "no-such-command"),
    ])
    func badArguments(arguments: [String], mention: String) async throws {
        let result = try await Self.run(arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(mention), "stderr: \(result.stderr)")
    }

    @Test("keys create, list, rotate, retire")
    func keys() async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("keyring.json").path
        let created = try await Self.run(["keys", "create", "--file", file])
        #expect(created.status == 0, "\(created.stderr)")
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        // Refuses to overwrite.
        #expect(try await Self.run(["keys", "create", "--file", file]).status != 0)

        let rotated = try await Self.run(["keys", "rotate", "--file", file])
        #expect(rotated.status == 0)
        let list = try await Self.run(["keys", "list", "--file", file])
        #expect(list.status == 0)
        let rows = list.stdout.split(separator: "\n").dropFirst()
        #expect(rows.count == 2)
        #expect(rows.filter { $0.contains(" active ") }.count == 1)
        #expect(rows.filter { $0.contains(" verify ") }.count == 1)
        // Secrets are never printed.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
        for key in json["keys"] as! [[String: Any]] {
            #expect(!list.stdout.contains(key["secret"] as! String))
        }
        let verifyKid = String(rows.first { $0.contains(" verify ") }!.split(separator: " ")[0])
        #expect(try await Self.run(["keys", "retire", "--file", file, "--kid", verifyKid]).status == 0)
        #expect(try await Self.run(["keys", "list", "--file", file]).stdout.contains(" retired "))
        #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test("EdDSA keyrings publish a JWKS")
    func jwks() async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("keyring.json").path
        #expect(try await Self.run(["keys", "create", "--file", file, "--session-alg", "EdDSA"]).status == 0)
        let result = try await Self.run(["keys", "jwks", "--file", file])
        let doc = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [[String: String]]]
        #expect(doc?["keys"]?.first?["crv"] == "Ed25519")
        #expect(try await Self.run(["keys", "create", "--file", file + "2", "--session-alg", "RS256"]).status != 0)
    }

    @Test("enroll-preview prints a secret, a matching URI and a QR code")
    func enrollPreview() async throws {
        let result = try await Self.run(["enroll-preview", "--user", "Jane.Doe@Example.org", "--issuer", "Example Mail"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let secret = lines[0].replacingOccurrences(of: "secret: ", with: "")
        #expect(secret.count == 32)
        #expect(lines[1] == "uri:    otpauth://totp/Example%20Mail:jane.doe%40example.org?secret=\(secret)&issuer=Example%20Mail&algorithm=SHA1&digits=6&period=30")
        #expect(result.stdout.contains("\u{2588}"))
        // Each run makes a new secret.
        let again = try await Self.run(["enroll-preview", "--user", "jane.doe@example.org"])
        #expect(!again.stdout.contains(secret))
    }

    @Test("data-key create writes a 0600 file")
    func dataKey() async throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("data-key.json").path
        #expect(try await Self.run(["data-key", "create", "--file", file]).status == 0)
        #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try await Self.run(["data-key", "rotate", "--file", file]).status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
        #expect((json?["keys"] as? [String: String])?.count == 2)
    }
}
