import Foundation
import FuzzSupport
import GatehouseCore

// libFuzzer target over Base32 (TOTP secrets) and Base64URL (every token segment, key files).
//
// Each input is used both ways:
// - as bytes to encode: decode(encode(x)) == x, the encoding has the expected length and only
//   alphabet characters, and the allocation-free Base64URL paths agree with the array ones;
// - as text to decode: what a decoder accepts re-encodes to the very same text (Base32: up to the
//   case of the letters), i.e. each byte string has exactly one accepted spelling; and a decoder
//   accepts exactly what a plain reference decoder (written from RFC 4648 below) accepts, with
//   the same bytes. Base64URL is also checked against Foundation's base64 decoder.

@main
enum BaseEncodingFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input.bytes) }
    }
}

func fuzzOneInput(_ bytes: [UInt8]) {
    checkBase32(encoding: bytes)
    checkBase64URL(encoding: bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    // Only valid UTF-8 reaches the decoders as the same bytes; anything else is decoded as the
    // String it becomes (with replacement characters), which the checks below handle alike.
    checkBase32(decoding: Array(text.utf8), text: text)
    checkBase64URL(decoding: Array(text.utf8), text: text)
}

// MARK: Base32

private let base32Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

private func checkBase32(encoding bytes: [UInt8]) {
    let encoded = Base32.encode(bytes)
    let characters = Array(encoded.utf8)
    Fuzz.check(characters.count == (bytes.count * 8 + 4) / 5, "Base32 length \(characters.count) for \(bytes.count) bytes")
    Fuzz.check(characters.allSatisfy(base32Alphabet.contains), "Base32 wrote a character outside its alphabet: \(encoded)")
    Fuzz.check(Base32.decode(encoded) == bytes, "Base32 round trip failed for \(bytes)")
    Fuzz.check(Base32.decode(encoded.lowercased()) == bytes, "lower-case Base32 round trip failed for \(bytes)")
    Fuzz.check(characters == referenceBase32Encode(bytes), "Base32 differs from the reference encoder for \(bytes)")
}

private func checkBase32(decoding characters: [UInt8], text: String) {
    let decoded = Base32.decode(text)
    let reference = referenceBase32Decode(characters)
    Fuzz.check(decoded == reference, "Base32.decode(\(characters)) = \(String(describing: decoded)), the reference says \(String(describing: reference))")
    guard let decoded else { return }
    let upper = characters.map { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) ? $0 - 32 : $0 }
    Fuzz.check(Array(Base32.encode(decoded).utf8) == upper, "accepted Base32 \(characters) does not re-encode to itself")
}

/// RFC 4648 §6, the plain way: each character is 5 bits, most significant first; the unused
/// bits of the last character must be zero; lengths 1, 3 and 6 (mod 8) cannot occur; no padding.
/// Either case.
private func referenceBase32Decode(_ characters: [UInt8]) -> [UInt8]? {
    var bits: [Bool] = []
    for c in characters {
        var upper = c
        if (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) { upper = c - 32 }
        guard let value = base32Alphabet.firstIndex(of: upper) else { return nil }
        for shift in (0..<5).reversed() { bits.append((value >> shift) & 1 == 1) }
    }
    guard ![1, 3, 6].contains(characters.count % 8) else { return nil }
    let whole = bits.count / 8
    guard bits[(whole * 8)...].allSatisfy({ !$0 }) else { return nil }
    return (0..<whole).map { i in bits[(i * 8)..<(i * 8 + 8)].reduce(UInt8(0)) { $0 << 1 | ($1 ? 1 : 0) } }
}

private func referenceBase32Encode(_ bytes: [UInt8]) -> [UInt8] {
    var bits: [Bool] = []
    for b in bytes { for shift in (0..<8).reversed() { bits.append((b >> shift) & 1 == 1) } }
    while bits.count % 5 != 0 { bits.append(false) }
    return stride(from: 0, to: bits.count, by: 5).map { i in base32Alphabet[bits[i..<(i + 5)].reduce(0) { $0 << 1 | ($1 ? 1 : 0) }] }
}

// MARK: Base64URL

private let base64URLAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

private func checkBase64URL(encoding bytes: [UInt8]) {
    let encoded = Base64URL.encode(bytes)
    let characters = Array(encoded.utf8)
    Fuzz.check(characters.count == Base64URL.encodedLength(bytes.count), "Base64URL length \(characters.count) for \(bytes.count) bytes")
    Fuzz.check(characters.allSatisfy(base64URLAlphabet.contains), "Base64URL wrote a character outside its alphabet: \(encoded)")
    Fuzz.check(Base64URL.decode(encoded) == bytes, "Base64URL round trip failed for \(bytes)")
    // The appending encoder (token signing) writes the same after what is already there.
    var appended: [UInt8] = [0x2E]
    bytes.withUnsafeBytes { Base64URL.encode($0, into: &appended) }
    Fuzz.check(appended == [0x2E] + characters, "Base64URL.encode(into:) differs from encode(_:)")
    // Foundation's base64, with the URL alphabet swapped back and padding added.
    let standard = Data(bytes).base64EncodedString()
    let expected = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
    Fuzz.check(encoded == expected, "Base64URL differs from Foundation's base64 for \(bytes)")
}

private func checkBase64URL(decoding characters: [UInt8], text: String) {
    let decoded = Base64URL.decode(text)
    let reference = referenceBase64URLDecode(characters)
    Fuzz.check(decoded == reference, "Base64URL.decode(\(characters)) = \(String(describing: decoded)), the reference says \(String(describing: reference))")
    // The allocation-free decoder (token verification) into a buffer of exactly the decoded
    // length, and into one with room to spare: the same answer.
    if let length = Base64URL.decodedLength(characters.count) {
        for spare in [0, 3] {
            var out = [UInt8](repeating: 0xA5, count: length + spare)
            let written = characters.withUnsafeBufferPointer { input in out.withUnsafeMutableBufferPointer { Base64URL.decode(input, into: $0) } }
            Fuzz.check(written.map { Array(out[..<$0]) } == reference, "Base64URL.decode(_:into:) disagrees on \(characters)")
            if let written { Fuzz.check(out[written...].allSatisfy { $0 == 0xA5 }, "Base64URL.decode(_:into:) wrote past its result") }
        }
    } else {
        Fuzz.check(reference == nil, "decodedLength refuses a length the reference decodes: \(characters.count)")
    }
    guard let decoded else { return }
    Fuzz.check(Array(Base64URL.encode(decoded).utf8) == characters, "accepted Base64URL \(characters) does not re-encode to itself")
    // Foundation accepts the same text (padded, standard alphabet) as the same bytes.
    var standard = String(decoding: characters, as: UTF8.self).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while standard.utf8.count % 4 != 0 { standard += "=" }
    Fuzz.check(Data(base64Encoded: standard).map(Array.init) == decoded, "Foundation decodes accepted Base64URL \(characters) differently")
}

/// RFC 4648 §5 without padding, the plain way; the unused bits of the last character must be
/// zero, and a length of 1 (mod 4) cannot occur.
private func referenceBase64URLDecode(_ characters: [UInt8]) -> [UInt8]? {
    var bits: [Bool] = []
    for c in characters {
        guard let value = base64URLAlphabet.firstIndex(of: c) else { return nil }
        for shift in (0..<6).reversed() { bits.append((value >> shift) & 1 == 1) }
    }
    guard characters.count % 4 != 1 else { return nil }
    let whole = bits.count / 8
    guard bits[(whole * 8)...].allSatisfy({ !$0 }) else { return nil }
    return (0..<whole).map { i in bits[(i * 8)..<(i * 8 + 8)].reduce(UInt8(0)) { $0 << 1 | ($1 ? 1 : 0) } }
}
