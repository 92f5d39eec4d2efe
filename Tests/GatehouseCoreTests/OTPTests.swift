import GatehouseCore
import GatehouseCrypto
import Testing

@Suite("HOTP and TOTP")
struct OTPTests {
    static let rfc4226Secret = Array("12345678901234567890".utf8)

    // RFC 4226 Appendix D.
    @Test(arguments: zip(0..<10, [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489]))
    func rfc4226Vectors(counter: Int, expected: Int) {
        let key = HMACKey(.sha1, key: Self.rfc4226Secret)
        #expect(HOTP.code(key: key, counter: UInt64(counter), digits: 6) == UInt32(expected))
    }

    struct RFC6238Vector: Sendable, CustomTestStringConvertible {
        var time: Int64
        var algorithm: HashAlgorithm
        var code: String
        var testDescription: String { "\(algorithm) @ \(time)" }
    }

    // RFC 6238 Appendix B, with the per-algorithm seeds of 20/32/64 bytes.
    static let rfc6238: [RFC6238Vector] = {
        let table: [(Int64, String, String, String)] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ]
        return table.flatMap { row in
            [RFC6238Vector(time: row.0, algorithm: .sha1, code: row.1),
             RFC6238Vector(time: row.0, algorithm: .sha256, code: row.2),
             RFC6238Vector(time: row.0, algorithm: .sha512, code: row.3)]
        }
    }()

    static func seed(_ algorithm: HashAlgorithm) -> [UInt8] {
        switch algorithm {
        case .sha1: Array("12345678901234567890".utf8)
        case .sha256: Array("12345678901234567890123456789012".utf8)
        case .sha512: Array("1234567890123456789012345678901234567890123456789012345678901234".utf8)
        }
    }

    @Test(arguments: rfc6238)
    func rfc6238Vectors(vector: RFC6238Vector) throws {
        let totp = try TOTP(secret: Self.seed(vector.algorithm), algorithm: vector.algorithm, digits: 8)
        #expect(totp.code(at: vector.time) == vector.code)
        // And the validator accepts it at exactly that step.
        let match = totp.validate(vector.code, at: vector.time)
        #expect(match?.offset == 0)
        #expect(match?.step == UInt64(vector.time) / 30)
    }

    @Test("times past 2038 use the full 64-bit counter")
    func beyond2038() throws {
        let totp = try TOTP(secret: Self.seed(.sha1), digits: 8)
        let t: Int64 = 20_000_000_000  // year 2603
        #expect(totp.step(at: t) == 666_666_666)
        #expect(totp.code(at: t) == "65353130")
        // A counter above 2^32 must not be truncated: these differ.
        #expect(totp.code(step: 1 << 32) != totp.code(step: 0))
    }

    @Test("the window reports which step matched")
    func windowReportsStep() throws {
        let totp = try TOTP(secret: Self.seed(.sha1))
        let now: Int64 = 1_700_000_015
        let current = UInt64(now) / 30
        let previous = totp.code(at: now - 30)!
        let next = totp.code(at: now + 30)!
        #expect(totp.validate(previous, at: now) == TOTP.Match(step: current - 1, offset: -1))
        #expect(totp.validate(next, at: now) == TOTP.Match(step: current + 1, offset: 1))
        #expect(totp.validate(totp.code(at: now)!, at: now) == TOTP.Match(step: current, offset: 0))
        // Two steps away is outside ±1 but inside ±2.
        let twoBack = totp.code(at: now - 60)!
        #expect(Set([twoBack, previous, next, totp.code(at: now)!]).count == 4)
        #expect(totp.validate(twoBack, at: now) == nil)
        #expect(totp.validate(twoBack, at: now, window: 2)?.offset == -2)
        // Window 0 accepts only the current step (the RFC seed's codes at these steps differ).
        #expect(previous != totp.code(at: now)!)
        #expect(totp.validate(previous, at: now, window: 0) == nil)
    }

    @Test("a code that two steps share matches the later one")
    func sharedCodeMatchesLaterStep() throws {
        // With the RFC 6238 SHA-1 seed, steps 57,766,335 and 57,766,336 both show 251166.
        let totp = try TOTP(secret: Self.seed(.sha1))
        let first: UInt64 = 57_766_335
        #expect(totp.code(step: first) == 251_166)
        #expect(totp.code(step: first + 1) == 251_166)
        // Whichever step is current, the later of the two is the one reported, so replay
        // protection (which refuses every step up to the recorded one) never takes the same
        // digits twice and never refuses them for the earlier, spent step.
        for current in [first, first + 1, first + 2] {
            let now = Int64(current) * 30 + 7
            let match = totp.validate("251166", at: now)
            #expect(match?.step == first + 1)
            #expect(match?.offset == Int(first + 1) - Int(current))
        }
        // When only the earlier step is in the window, that one matches.
        #expect(totp.validate("251166", at: Int64(first - 1) * 30)?.step == first)
    }

    @Test("a wrong code matches no step")
    func wrongCode() throws {
        let totp = try TOTP(secret: Self.seed(.sha1))
        let now: Int64 = 1_700_000_000
        let valid = Set((-1...1).map { totp.code(at: now + Int64($0) * 30)! })
        let wrong = (0..<1_000_000).lazy.map { HOTP.format(UInt32($0), digits: 6) }.first { !valid.contains($0) }!
        #expect(totp.validate(wrong, at: now) == nil)
    }

    @Test("the step before the epoch is never computed")
    func atEpoch() throws {
        let totp = try TOTP(secret: Self.seed(.sha1))
        #expect(totp.validate(totp.code(at: 0)!, at: 0)?.step == 0)
        #expect(totp.step(at: -1) == nil)
        #expect(totp.validate("000000", at: -5) == nil)
    }

    @Test("input must be exactly N ASCII digits", arguments: [
        "", "12345", "1234567", " 123456", "123456 ", "12 3456", "+12345", "-12345", "12345a",
        "١٢٣٤٥٦", "１２３４５６", "123456\n", "12345\u{0}",
    ])
    func strictInput(input: String) throws {
        #expect(HOTP.parse(input, digits: 6) == nil)
        let totp = try TOTP(secret: Self.seed(.sha1))
        #expect(totp.validate(input, at: 1_700_000_000) == nil)
    }

    @Test func parsesLeadingZeros() {
        #expect(HOTP.parse("000042", digits: 6) == 42)
        #expect(HOTP.parse("00000042", digits: 8) == 42)
        #expect(HOTP.format(42, digits: 6) == "000042")
    }

    @Test("parameters out of range are refused")
    func parameterRanges() {
        #expect(throws: CoreError.self) { try TOTP(secret: Self.seed(.sha1), digits: 5) }
        #expect(throws: CoreError.self) { try TOTP(secret: Self.seed(.sha1), digits: 9) }
        #expect(throws: CoreError.self) { try TOTP(secret: Self.seed(.sha1), period: 0) }
        #expect(throws: CoreError.self) { try TOTP(secret: [1, 2, 3]) }
    }

    @Test("an imported secret is base32 in either case, 10 to 128 bytes")
    func importedSecrets() {
        #expect(OTPSecret.parse(base32: "JBSWY3DPEHPK3PXP") == Base32.decode("JBSWY3DPEHPK3PXP"))
        #expect(OTPSecret.parse(base32: "jbswy3dpehpk3pxp") == Base32.decode("JBSWY3DPEHPK3PXP"))
        #expect(OTPSecret.parse(base32: "MZXW6") == nil, "3 bytes")
        #expect(OTPSecret.parse(base32: Base32.encode(Array(repeating: 7, count: 9))) == nil)
        #expect(OTPSecret.parse(base32: Base32.encode(Array(repeating: 7, count: 10))) == Array(repeating: 7, count: 10))
        #expect(OTPSecret.parse(base32: Base32.encode(Array(repeating: 7, count: 128))) == Array(repeating: 7, count: 128))
        #expect(OTPSecret.parse(base32: Base32.encode(Array(repeating: 7, count: 129))) == nil)
    }

    @Test("an imported secret spelled with letters that only upper-case to base32 is refused (caught by the otpauth fuzz target)", arguments: [
        // U+017F LATIN SMALL LETTER LONG S → S, U+0131 LATIN SMALL LETTER DOTLESS I → I, ß → SS.
        "\u{17F}BSWY3DPEHPK3PXP", "JBSWY3DPEHPK3PX\u{17F}", "\u{131}BSWY3DPEHPK3PXP", "JBSWY3DPEHPK3P\u{DF}",
    ])
    func importedSecretIsASCII(text: String) {
        #expect(OTPSecret.parse(base32: text) == nil)
    }

    @Test("fresh secrets are 160 bits from the CSPRNG and differ")
    func secrets() throws {
        let a = try OTPSecret.generate(), b = try OTPSecret.generate()
        #expect(a.count == 20)
        #expect(a != b)
        #expect(Base32.encode(a).count == 32)
    }
}

@Suite("HMAC")
struct HMACTests {
    static func hex(_ s: String) -> [UInt8] {
        var out = [UInt8]()
        var chars = Array(s.utf8)[...]
        while chars.count >= 2 {
            out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
            chars = chars.dropFirst(2)
        }
        return out
    }

    @Test("RFC 2202 and RFC 4231 vectors")
    func vectors() {
        // RFC 2202 case 1 (SHA-1).
        #expect(HMACKey(.sha1, key: [UInt8](repeating: 0x0b, count: 20)).authenticationCode(for: Array("Hi There".utf8))
            == Self.hex("b617318655057264e28bc0b6fb378c8ef146be00"))
        // RFC 4231 case 2 (key "Jefe").
        let jefe = Array("Jefe".utf8), msg = Array("what do ya want for nothing?".utf8)
        #expect(HMACKey(.sha256, key: jefe).authenticationCode(for: msg)
            == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        #expect(HMACKey(.sha512, key: jefe).authenticationCode(for: msg)
            == Self.hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"))
        // RFC 4231 case 6: a key longer than the block is hashed first.
        let longKey = [UInt8](repeating: 0xaa, count: 131)
        let case6 = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        #expect(HMACKey(.sha256, key: longKey).authenticationCode(for: case6)
            == Self.hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"))
        #expect(HMACKey(.sha512, key: longKey).authenticationCode(for: case6)
            == Self.hex("80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"))
    }

    @Test("the prepared key gives the same MAC on every call")
    func reuse() {
        let key = HMACKey(.sha256, key: Array("Jefe".utf8))
        let first = key.authenticationCode(for: Array("a".utf8))
        _ = key.authenticationCode(for: Array("something else entirely".utf8))
        #expect(key.authenticationCode(for: Array("a".utf8)) == first)
    }

    @Test func constantTimeCompare() {
        let key = HMACKey(.sha256, key: Array("k".utf8))
        let msg = Array("m".utf8)
        var mac = key.authenticationCode(for: msg)
        #expect(mac.withUnsafeBytes { m in msg.withUnsafeBytes { key.isValidAuthenticationCode(m, for: $0) } })
        mac[31] ^= 1
        #expect(!mac.withUnsafeBytes { m in msg.withUnsafeBytes { key.isValidAuthenticationCode(m, for: $0) } })
        #expect(!Array(mac.prefix(16)).withUnsafeBytes { m in msg.withUnsafeBytes { key.isValidAuthenticationCode(m, for: $0) } })
        #expect(ConstantTime.isEqual(7, 7) == 1)
        #expect(ConstantTime.isEqual(7, 0x8000_0007) == 0)
    }

    @Test("HMACSHA256Key gives the MACs of HMACKey(.sha256): RFC 4231 case 2, keys of every length around the block, messages of every length up to 200")
    func hmacSHA256Key() {
        let jefe = HMACSHA256Key(key: Array("Jefe".utf8))
        var mac = [UInt8](repeating: 0, count: 32)
        Array("what do ya want for nothing?".utf8).withUnsafeBytes { m in mac.withUnsafeMutableBytes { jefe.authenticate(m, into: $0) } }
        #expect(mac == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        for keyLength in [0, 1, 31, 32, 63, 64, 65, 131] {
            let keyBytes = (0..<keyLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let reference = HMACKey(.sha256, key: keyBytes)
            let prepared = HMACSHA256Key(reference)
            let fresh = HMACSHA256Key(key: keyBytes)
            for length in 0...200 {
                let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ keyLength) }
                let expected = reference.authenticationCode(for: message)
                for key in [prepared, fresh] {
                    var out = [UInt8](repeating: 0xA5, count: 33)
                    message.withUnsafeBytes { m in out.withUnsafeMutableBytes { key.authenticate(m, into: $0) } }
                    #expect(Array(out[..<32]) == expected && out[32] == 0xA5)
                }
            }
        }
    }

    @Test("buffer comparison: equal buffers of every length up to 40 compare equal, and one bit flipped anywhere does not")
    func constantTimeBuffers() {
        for length in 0...40 {
            let a = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(a.withUnsafeBytes { x in Array(a).withUnsafeBytes { ConstantTime.equals(x, $0) } })
            for position in 0..<length {
                for bit in [0, 7] {
                    var b = a
                    b[position] ^= 1 << bit
                    #expect(!a.withUnsafeBytes { x in b.withUnsafeBytes { ConstantTime.equals(x, $0) } }, "length \(length), byte \(position)")
                }
            }
            #expect(!a.withUnsafeBytes { x in (a + [0]).withUnsafeBytes { ConstantTime.equals(x, $0) } })
        }
    }
}
