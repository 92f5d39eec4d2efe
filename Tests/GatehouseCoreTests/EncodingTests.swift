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
