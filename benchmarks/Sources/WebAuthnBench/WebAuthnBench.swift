import BenchSupport
import GatehouseCore
import GatehouseCrypto

/// Passkey sign-in check: `RelyingParty.verifyAssertion` on a real ES256 assertion (parse
/// clientDataJSON, type/challenge/origin, parse authenticator data, RP ID hash and flags, SHA-256
/// of the client data, read the stored COSE key and load it into libcrypto, SHA-256 of
/// authData ‖ hash, one ECDSA P-256 verification, counter) against `openssl speed ecdsap256`
/// verify, the curve arithmetic alone, measured in the same run. Rounds are interleaved (the order
/// rotates each round) and every figure is a median over rounds.
@main
enum WebAuthnBench {
    static func main() throws {
        let options = Options.parse(program: "WebAuthnBench")
        try run(options)
    }

    // The W3C WebAuthn test vector "ES256 Credential with No Attestation" (§ Test Vectors,
    // https://w3c.github.io/webauthn/#sctn-test-vectors-none-es256): bytes made by the spec's own
    // generator, as a browser and authenticator would send them.
    static let registrationChallenge = hex("00c30fb78531c464d2b6771dab8d7b603c01162f2fa486bea70f283ae556e130")
    static let registrationClientDataJSON = hex("""
        7b2274797065223a22776562617574686e2e637265617465222c226368616c6c656e6765223a22414d4d5074345578784754
        53746e63647134313759447742466938767049612d7077386f4f755657345441222c226f726967696e223a2268747470733a
        2f2f6578616d706c652e6f7267222c2263726f73734f726967696e223a66616c73652c22657874726144617461223a22636c
        69656e74446174614a534f4e206d617920626520657874656e6465642077697468206164646974696f6e616c206669656c64
        7320696e20746865206675747572652c207375636820617320746869733a20426b5165446a646354427258426941774a544c
        453551227d
        """)
    static let attestationObject = hex("""
        a363666d74646e6f6e656761747453746d74a068617574684461746158a4bfabc37432958b063360d3ad6461c9c4735ae7f8
        edd46592a5e0f01452b2e4b559000000008446ccb9ab1db374750b2367ff6f3a1f0020f91f391db4c9b2fde0ea70189cba3f
        b63f579ba6122b33ad94ff3ec330084be4a5010203262001215820afefa16f97ca9b2d23eb86ccb64098d20db90856062eb2
        49c33a9b672f26df61225820930a56b87a2fca66334b03458abf879717c12cc68ed73290af2e2664796b9220
        """)
    static let assertionChallenge = hex("39c0e7521417ba54d43e8dc95174f423dee9bf3cd804ff6d65c857c9abf4d408")
    static let authenticatorData = hex("bfabc37432958b063360d3ad6461c9c4735ae7f8edd46592a5e0f01452b2e4b51900000000")
    static let assertionClientDataJSON = hex("""
        7b2274797065223a22776562617574686e2e676574222c226368616c6c656e6765223a224f63446e55685158756c5455506f
        334a5558543049393770767a7a59425039745a63685879617630314167222c226f726967696e223a2268747470733a2f2f65
        78616d706c652e6f7267222c2263726f73734f726967696e223a66616c73657d
        """)
    static let signature = hex("""
        3046022100f50a4e2e4409249c4a853ba361282f09841df4dd4547a13a87780218deffcd380221008480ac0f0b93538174f5
        75bf11a1dd5d78c6e486013f937295ea13653e331e87
        """)

    static func run(_ options: Options) throws {
        var report = Report(title: "WebAuthnBench: passkey sign-in check (ES256) vs openssl speed ecdsap256 verify")
        let rp = RelyingParty(id: "example.org", allowedOrigins: ["https://example.org"], requireUserVerification: false)

        // MARK: Sanity: the published registration and sign-in verify; altered ones do not
        let credential = try rp.verifyRegistration(
            clientDataJSON: registrationClientDataJSON, attestationObject: attestationObject, expectedChallenge: registrationChallenge)
        try check(credential.algorithm == .es256 && credential.publicKey.count == 77, "the W3C registration verifies (ES256, 77-byte COSE key)")
        let stored = StoredCredential(publicKey: credential.publicKey, signCount: credential.signCount)
        func assertion(signature: [UInt8] = signature, challenge: [UInt8] = assertionChallenge) throws -> AssertionResult {
            try rp.verifyAssertion(
                credential: stored, clientDataJSON: assertionClientDataJSON, authenticatorData: authenticatorData,
                signature: signature, expectedChallenge: challenge)
        }
        try check(try assertion().newSignCount == 0, "the W3C assertion verifies")
        var tampered = signature
        tampered[10] ^= 0x01
        try expectFailure("a tampered signature is refused") { _ = try assertion(signature: tampered) }
        try expectFailure("another challenge is refused") { _ = try assertion(challenge: registrationChallenge) }

        // The pieces, for information: the curve arithmetic through GatehouseCrypto with a key
        // loaded once, and reading + loading the stored key.
        let key = try P256PublicKey(
            x: Array(credential.publicKey[10..<42]), y: Array(credential.publicKey[45..<77]))
        let digest = Digest.hash(.sha256, authenticatorData + Digest.hash(.sha256, assertionClientDataJSON))
        try check(signature.withUnsafeBytes { s in digest.withUnsafeBytes { key.isValidSignature(s, digest: $0) } },
                  "GatehouseCrypto P256PublicKey verifies the same signature over the digest")
        let probe = try OpenSSLSpeed.ecdsaP256Verify(seconds: 1)
        try check(probe.operations > 0, "openssl speed ecdsap256 reports a verify count (+R6)")
        report.note("machine", Machine.describe())
        report.note("assertion", "W3C test vector none-ES256: clientDataJSON \(assertionClientDataJSON.count) bytes, authenticatorData \(authenticatorData.count) bytes, DER signature \(signature.count) bytes, COSE key \(credential.publicKey.count) bytes")

        // MARK: Interleaved rounds
        let steps: [(String, () throws -> Void)] = [
            ("gatehouse_webauthn_assertion", {
                report.add("gatehouse_webauthn_assertion", measure(slice: options.slice) { n in
                    for _ in 0..<n { blackHole(try? assertion()) }
                }, note: "RelyingParty.verifyAssertion: client data, authenticator data, hashes, COSE key load, ECDSA verify, counter")
            }),
            ("openssl_ecdsap256_verify", {
                report.add("openssl_ecdsap256_verify", try OpenSSLSpeed.ecdsaP256Verify(seconds: options.opensslSeconds),
                           note: "openssl speed -seconds \(options.opensslSeconds) ecdsap256, verify line (prepared key and context, digest only)")
            }),
            ("gatehouse_p256_verify_only", {
                report.add("gatehouse_p256_verify_only", measure(slice: options.slice) { n in
                    signature.withUnsafeBytes { s in
                        digest.withUnsafeBytes { d in for _ in 0..<n { blackHole(key.isValidSignature(s, digest: d)) } }
                    }
                }, note: "P256PublicKey.isValidSignature(_:digest:) with a key loaded once")
            }),
            ("gatehouse_cose_key_load", {
                report.add("gatehouse_cose_key_load", measure(slice: options.slice) { n in
                    for _ in 0..<n { blackHole(try? COSEKey(bytes: stored.publicKey)) }
                }, note: "COSEKey(bytes:): CBOR read of the stored key and EVP_PKEY_fromdata")
            }),
            ("gatehouse_webauthn_registration", {
                report.add("gatehouse_webauthn_registration", measure(slice: options.slice) { n in
                    for _ in 0..<n {
                        blackHole(try? rp.verifyRegistration(
                            clientDataJSON: registrationClientDataJSON, attestationObject: attestationObject,
                            expectedChallenge: registrationChallenge))
                    }
                }, note: "RelyingParty.verifyRegistration, attestation none (no signature to verify)")
            }),
        ]
        if let name = options.profile {
            guard let step = steps.first(where: { $0.0 == name }) else {
                throw BenchFailure("no series \(name); one of: \(steps.map(\.0).joined(separator: ", "))")
            }
            try step.1()
            report.print()
            return
        }
        for round in 0..<options.rounds {
            for k in steps.indices { try steps[(k + round) % steps.count].1() }
        }

        // MARK: Allocations (information)
        let interposed = Allocations.interposerWorks()
        report.note("malloc interposer", interposed ? "works" : "NOT WORKING: counts below are meaningless")
        report.allocations("webauthn_assertion_allocs_per_op", Allocations.perOperation(iterations: min(options.allocationIterations, 2000)) {
            blackHole(try? assertion())
        }, target: nil)

        // MARK: Targets
        report.ratio("webauthn_assertion_vs_openssl_ecdsap256", "gatehouse_webauthn_assertion", over: "openssl_ecdsap256_verify", target: 0.8, style: .fraction)
        report.ratio("p256_verify_only_vs_openssl_ecdsap256", "gatehouse_p256_verify_only", over: "openssl_ecdsap256_verify", target: nil, style: .fraction)
        report.ratio("webauthn_assertion_vs_p256_verify_only", "gatehouse_webauthn_assertion", over: "gatehouse_p256_verify_only", target: nil, style: .fraction)
        report.ratio("cose_key_load_vs_p256_verify_only", "gatehouse_cose_key_load", over: "gatehouse_p256_verify_only", target: nil, style: .times)

        report.print()
        if options.json { print(report.json()) }
    }

    /// Bytes from hex digits (whitespace and line breaks ignored); traps on anything else, since
    /// the inputs are the constants above.
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.utf8.filter { !($0 == 0x20 || $0 == 0x0A) }
        precondition(digits.count % 2 == 0)
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            default: preconditionFailure("not a hex digit")
            }
        }
        return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
    }
}
