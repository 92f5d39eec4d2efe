import Foundation
import GatehouseCore
import GatehouseCrypto
import Testing

@Suite("base32 and base64url")
struct EncodingTests {
    // RFC 4648 §10, without padding.
    @Test(arguments: [
        ("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI"),
    ])
    func base32Vectors(plain: String, encoded: String) {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
        #expect(Base32.decode(encoded) == Array(plain.utf8))
        #expect(Base32.decode(encoded.lowercased()) == Array(plain.utf8))
    }

    @Test("base32 decoding is strict", arguments: [
        "MY======", "MZXW6===", "M", "MZX", "MZXW6Y", "MZ", "MY 8", "MY1", "MY0", "MY-A", "MZXW6YTBO!",
        "MZXW 6YTB", "\u{00C9}MY",
    ])
    func base32Strict(text: String) {
        #expect(Base32.decode(text) == nil)
    }

    @Test func base32RoundTripsRandomLengths() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }

    // RFC 4648 §10 base64 vectors, in the URL alphabet without padding.
    @Test(arguments: [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")])
    func base64Vectors(plain: String, encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test("URL alphabet, not the standard one")
    func urlAlphabet() {
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        #expect(Base64URL.decode("+/8") == nil)
    }

    @Test("base64url decoding is canonical only", arguments: [
        "Zg==", "Zg=", "Zh", "Zm9=", "Zm9w", "Z", "Zm9vY", "Zm 9v", "Zm9v\n", "Zm9v.", "Zm9v+", "Zm9v/",
    ])
    func base64Strict(text: String) {
        // "Zh" and "Zm9w" differ from "Zg"/"Zm8" only in unused bits; "Zm9w" is valid (3 bytes), so
        // only assert on the ones that are non-canonical or malformed.
        if text == "Zm9w" {
            #expect(Base64URL.decode(text) == Array("fop".utf8))
        } else {
            #expect(Base64URL.decode(text) == nil)
        }
    }
}

@Suite("otpauth URIs")
struct OTPAuthURITests {
    @Test("issuer and account are percent-encoded")
    func encoding() {
        let secret = Array("12345678901234567890".utf8)
        let uri = OTPAuthURI(issuer: "ACME Mail & Co", account: "jane+test@example.org", secret: secret)
        #expect(uri.uri == "otpauth://totp/ACME%20Mail%20%26%20Co:jane%2Btest%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            + "&issuer=ACME%20Mail%20%26%20Co&algorithm=SHA1&digits=6&period=30")
        #expect(OTPAuthURI.percentEncode("a:b/c?d#e%f é") == "a%3Ab%2Fc%3Fd%23e%25f%20%C3%A9")
    }

    @Test("round trip through the parser")
    func roundTrip() {
        let original = OTPAuthURI(issuer: "Mail: Ünïcode", account: "o'brien@example.org", secret: Array(0..<20), algorithm: .sha256, digits: 8, period: 60)
        #expect(OTPAuthURI(parsing: original.uri) == original)
    }

    @Test("the parser is strict", arguments: [
        "otpauth://hotp/x:y?secret=MY", "otpauth://totp/x:y?secret=MY1", "otpauth://totp/x:y?secret=MZXW6&algorithm=MD5",
        "otpauth://totp/x:y?secret=MZXW6&digits=9", "otpauth://totp/a:y?secret=MZXW6&issuer=b", "otpauth://totp/x:y?secret=MZXW6&secret=MZXW6",
        "otpauth://totp/x%zz:y?secret=MZXW6",
    ])
    func strictParse(text: String) {
        #expect(OTPAuthURI(parsing: text) == nil)
    }

    @Test("numbers are plain decimals, the algorithm ASCII in any case, the label and query split on bytes (caught by the otpauth fuzz target)", arguments: [
        "otpauth://totp/x:y?secret=MZXW6&digits=+6", "otpauth://totp/x:y?secret=MZXW6&digits=06", "otpauth://totp/x:y?secret=MZXW6&period=030",
        "otpauth://totp/x:y?secret=MZXW6&period=+30",
        // U+017F LATIN SMALL LETTER LONG S upper-cases to S: not a spelling of SHA1.
        "otpauth://totp/x:y?secret=MZXW6&algorithm=%C5%BFha1",
        // The same issuer in another normal form (NFC in the label, NFD in the query) is another issuer.
        "otpauth://totp/Caf%C3%A9:y?secret=MZXW6&issuer=Cafe%CC%81",
    ])
    func strictNumbersAndNames(text: String) {
        #expect(OTPAuthURI(parsing: text) == nil)
    }

    @Test("a combining mark does not hide a separator: the label splits at the colon, the query at the ampersand")
    func bytewiseSplitting() throws {
        let label = try #require(OTPAuthURI(parsing: "otpauth://totp/x:\u{301}y?secret=MZXW6"))
        #expect(Array(label.issuer.utf8) == Array("x".utf8) && Array(label.account.utf8) == Array("\u{301}y".utf8))
        let query = try #require(OTPAuthURI(parsing: "otpauth://totp/x?secret=MZXW6&\u{301}issuer=y&algorithm=sha256"))
        #expect(query.secret == Base32.decode("MZXW6") && query.issuer == "" && query.algorithm == .sha256)
        #expect(OTPAuthURI(parsing: "otpauth://totp/\u{301}x?secret=MZXW6")?.account == "\u{301}x")
    }
}

/// The base64url decoder reads eight characters at a time with table look-ups; these compare it
/// with a plain decoder written from RFC 4648 (§4 and §5, no padding, unused bits zero) over
/// every length, every foreign byte at every position, and every non-canonical tail.
@Suite("base64url against a reference decoder")
struct Base64URLReferenceTests {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// Bytes that are not base64url: padding, the standard alphabet's two, whitespace, JWS and
    /// JSON punctuation, NUL, DEL, and bytes with the high bit set.
    static let foreign: [UInt8] = Array("=+/ \n\t.\"\\*".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]

    /// RFC 4648, the plain way: six bits per character, most significant first; a length of 1
    /// (mod 4) cannot occur; the unused bits of the last character must be zero.
    static func reference(_ characters: [UInt8]) -> [UInt8]? {
        guard characters.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for c in characters {
            guard let value = alphabet.firstIndex(of: c) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }

    /// `Base64URL.decode(_:into:)` into a buffer `spare` bytes longer than needed, pre-filled;
    /// checks that nothing past the decoded length was written.
    static func decodeIntoBuffer(_ characters: [UInt8], spare: Int = 0) -> [UInt8]? {
        guard let length = Base64URL.decodedLength(characters.count) else {
            var out = [UInt8](repeating: 0, count: characters.count)
            #expect(characters.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { Base64URL.decode(i, into: $0) } } == nil)
            return nil
        }
        var out = [UInt8](repeating: 0xA5, count: length + spare)
        let written = characters.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { Base64URL.decode(i, into: $0) } }
        #expect(out[length...].allSatisfy { $0 == 0xA5 }, "decode(_:into:) wrote past the decoded length for \(characters)")
        return written.map { Array(out[..<$0]) }
    }

    /// A deterministic generator (SplitMix64), so a failure names an input that reproduces.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("text of every length up to 130 decodes as the reference says, and what is accepted re-encodes to itself")
    func everyLength() {
        var generator = Generator(state: 1)
        for length in 0...130 {
            for _ in 0..<20 {
                let text = (0..<length).map { _ in Self.alphabet.randomElement(using: &generator)! }
                let expected = Self.reference(text)
                let string = String(decoding: text, as: UTF8.self)
                #expect(Base64URL.decode(string) == expected, "\(string)")
                #expect(Self.decodeIntoBuffer(text) == expected, "\(string)")
                #expect(Self.decodeIntoBuffer(text, spare: 9) == expected, "\(string)")
                if let expected { #expect(Base64URL.encode(expected) == string) }
            }
        }
    }

    @Test("a foreign byte at any position of any length up to 40 is refused")
    func foreignBytes() {
        var generator = Generator(state: 2)
        for length in 1...40 where length % 4 != 1 {
            let valid = Base64URL.encode((0..<(length * 3 / 4)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let text = Array(valid.utf8)
            #expect(text.count == length)
            for position in 0..<length {
                for byte in Self.foreign {
                    var bad = text
                    bad[position] = byte
                    #expect(Self.decodeIntoBuffer(bad) == nil, "\(bad) accepted")
                    #expect(Self.decodeIntoBuffer(bad, spare: 9) == nil, "\(bad) accepted")
                }
            }
        }
    }

    @Test("every alphabet character in the last position after 0 to 12 whole groups: accepted exactly when its unused bits are zero")
    func tails() {
        for groups in 0...12 {
            let head = Array(String(repeating: "Zm9v", count: groups).utf8)
            for tail in [[UInt8(ascii: "Z")], [UInt8(ascii: "Z"), UInt8(ascii: "m")]] {
                for last in Self.alphabet {
                    let text = head + tail + [last]
                    let expected = Self.reference(text)
                    // Two characters carry 12 bits for one byte (4 unused), three carry 18 for two (2 unused).
                    let unusedMask: Int = tail.count == 1 ? 0x0F : 0x03
                    #expect((expected != nil) == (Self.alphabet.firstIndex(of: last)! & unusedMask == 0))
                    #expect(Self.decodeIntoBuffer(text) == expected, "\(text)")
                    #expect(Base64URL.decode(String(decoding: text, as: UTF8.self)) == expected)
                }
            }
        }
    }

    @Test("lengths of 1 (mod 4) are refused, whatever the characters")
    func impossibleLengths() {
        for length in stride(from: 1, through: 41, by: 4) {
            #expect(Base64URL.decode(String(repeating: "A", count: length)) == nil)
            #expect(Self.decodeIntoBuffer(Array(repeating: UInt8(ascii: "A"), count: length)) == nil)
        }
    }

    @Test("a buffer shorter than the decoded length is refused")
    func shortBuffer() {
        let text = Array("Zm9vYmFyZm9vYmFy".utf8)
        var out = [UInt8](repeating: 0, count: 11)
        #expect(text.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { Base64URL.decode(i, into: $0) } } == nil)
    }

    @Test("the three encoders agree with each other and with Foundation's base64, for every length up to 100")
    func encoders() {
        var generator = Generator(state: 3)
        for length in 0...100 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Base64URL.encode(bytes)
            let standard = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(text == standard)
            var appended: [UInt8] = [0x2E]
            bytes.withUnsafeBytes { Base64URL.encode($0, into: &appended) }
            #expect(appended == [0x2E] + Array(text.utf8))
            var buffer = [UInt8](repeating: 0xA5, count: Base64URL.encodedLength(length) + 3)
            let written = bytes.withUnsafeBytes { input in buffer.withUnsafeMutableBytes { Base64URL.encode(input, into: $0) } }
            #expect(written == Base64URL.encodedLength(length))
            #expect(Array(buffer[..<written]) == Array(text.utf8))
            #expect(buffer[written...].allSatisfy { $0 == 0xA5 })
            #expect(Base64URL.decode(text) == bytes)
        }
    }
}
