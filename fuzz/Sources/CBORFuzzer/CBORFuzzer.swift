import FuzzSupport
import GatehouseCore

// libFuzzer entry point: every parser a passkey response reaches, on the same input. A crash,
// a sanitizer report or a broken invariant (below) is a finding; thrown errors are the expected
// outcome for almost every input.
//
// The invariant: CTAP2 canonical CBOR gives every value exactly one encoding, so whatever the
// reader accepts must re-encode to the very same bytes. A reader that accepted a second encoding
// of some value (a longer length form, another key order) would break it.

/// A fixed relying party and ceremony, so that the verifier's later steps run on inputs that get
/// through the parsers (the W3C "ES256 Credential with No Attestation" test vector's values).
private enum Fixed {
    static let rp = RelyingParty(id: "example.org", allowedOrigins: ["https://example.org"], requireUserVerification: false)
    static let challenge = Array("fuzzing challenge, 32 bytes long".utf8)
    static let registrationClientData = Array(
        "{\"type\":\"webauthn.create\",\"challenge\":\"ZnV6emluZyBjaGFsbGVuZ2UsIDMyIGJ5dGVzIGxvbmc\",\"origin\":\"https://example.org\"}".utf8)
    static let assertionClientData = Array(
        "{\"type\":\"webauthn.get\",\"challenge\":\"ZnV6emluZyBjaGFsbGVuZ2UsIDMyIGJ5dGVzIGxvbmc\",\"origin\":\"https://example.org\"}".utf8)
    /// The vector's COSE key (EC2, ES256).
    static let key: [UInt8] = [
        0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20,
        0xaf, 0xef, 0xa1, 0x6f, 0x97, 0xca, 0x9b, 0x2d, 0x23, 0xeb, 0x86, 0xcc, 0xb6, 0x40, 0x98, 0xd2,
        0x0d, 0xb9, 0x08, 0x56, 0x06, 0x2e, 0xb2, 0x49, 0xc3, 0x3a, 0x9b, 0x67, 0x2f, 0x26, 0xdf, 0x61,
        0x22, 0x58, 0x20,
        0x93, 0x0a, 0x56, 0xb8, 0x7a, 0x2f, 0xca, 0x66, 0x33, 0x4b, 0x03, 0x45, 0x8a, 0xbf, 0x87, 0x97,
        0x17, 0xc1, 0x2c, 0xc6, 0x8e, 0xd7, 0x32, 0x90, 0xaf, 0x2e, 0x26, 0x64, 0x79, 0x6b, 0x92, 0x20,
    ]
    static let signature: [UInt8] = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]
}

/// The program: libFuzzer's driver with this file's test function (see fuzz/Package.swift).
@main
enum CBORFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input.bytes) }
    }
}

func fuzzOneInput(_ bytes: [UInt8]) {
    if let value = try? CBORReader().decode(bytes) {
        let encoded = encode(value)
        Fuzz.check(encoded == bytes, "accepted CBOR does not re-encode to the same bytes: \(bytes) → \(encoded)")
    }
    _ = try? AttestationObject(bytes: bytes)
    _ = try? AuthenticatorData(bytes: bytes)
    _ = try? COSEKey(bytes: bytes)
    _ = try? CollectedClientData(json: bytes)
    _ = try? Fixed.rp.verifyRegistration(
        clientDataJSON: Fixed.registrationClientData, attestationObject: bytes, expectedChallenge: Fixed.challenge)
    _ = try? Fixed.rp.verifyAssertion(
        credential: StoredCredential(publicKey: Fixed.key, signCount: 0), clientDataJSON: Fixed.assertionClientData,
        authenticatorData: bytes, signature: Fixed.signature, expectedChallenge: Fixed.challenge)
}

/// CTAP2 canonical encoding of a value: shortest heads, map entries in the order held (the reader
/// only accepts canonical order, so that order is already canonical).
private func encode(_ value: CBORValue) -> [UInt8] {
    var out: [UInt8] = []
    append(value, to: &out)
    return out
}

private func head(_ major: UInt8, _ argument: UInt64, to out: inout [UInt8]) {
    let m = major << 5
    switch argument {
    case 0..<24: out.append(m | UInt8(argument))
    case 24...0xFF: out.append(m | 24); out.append(UInt8(argument))
    case 0x100...0xFFFF: out.append(m | 25); appendBigEndian(argument, 2, to: &out)
    case 0x1_0000...0xFFFF_FFFF: out.append(m | 26); appendBigEndian(argument, 4, to: &out)
    default: out.append(m | 27); appendBigEndian(argument, 8, to: &out)
    }
}

private func appendBigEndian(_ value: UInt64, _ width: Int, to out: inout [UInt8]) {
    for i in (0..<width).reversed() { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
}

private func append(_ value: CBORValue, to out: inout [UInt8]) {
    switch value {
    case .unsigned(let n): head(0, n, to: &out)
    case .negative(let n): head(1, n, to: &out)
    case .bytes(let b): head(2, UInt64(b.count), to: &out); out += b
    case .text(let t): head(3, UInt64(t.utf8.count), to: &out); out += Array(t.utf8)
    case .array(let a): head(4, UInt64(a.count), to: &out); for v in a { append(v, to: &out) }
    case .map(let entries):
        head(5, UInt64(entries.count), to: &out)
        for e in entries { append(e.key, to: &out); append(e.value, to: &out) }
    case .bool(let b): out.append(b ? 0xF5 : 0xF4)
    case .null: out.append(0xF6)
    }
}
