import FuzzSupport
import GatehouseCore
import GatehouseCrypto

// libFuzzer target over what Gatehouse reads of authenticator-app material: `otpauth://totp/`
// URIs (OTPAuthURI), imported secrets (OTPSecret.parse) and typed codes (HOTP.parse, TOTP).
//
// The first byte picks how the rest is used:
// 0. as a URI: OTPAuthURI(parsing:) accepts exactly what a byte-level reference parser of the
//    documented rules accepts (below), with the same fields (strings compared byte for byte),
//    and what it accepts it writes as a URI that reads back as the same fields;
// 1. as fields: any issuer, account, secret, algorithm, digits (6…8) and period (1…3600)
//    written as a URI read back as themselves, and the URI is plain ASCII;
// 2. as a secret and codes: OTPSecret.parse accepts exactly base32 (either case, ASCII) of
//    10…128 bytes, as Base32 spells it; the three code parsers agree with each other and with
//    "exactly `digits` ASCII digits"; a TOTP code validates at its own time with offset 0, and
//    a code of a neighbouring step with that step's offset (or a nearer one that also matches).

@main
enum OTPAuthFuzzer {
    static func main() {
        Fuzz.run { input in fuzzOneInput(input) }
    }
}

func fuzzOneInput(_ input: FuzzInput) {
    var input = input
    switch input.byte() % 3 {
    case 0: checkParsing(input.rest())
    case 1: checkWriting(&input)
    default: checkSecretAndCodes(&input)
    }
}

// MARK: URIs

/// The fields of a parsed URI, strings as bytes.
private struct Fields: Equatable {
    var issuer: [UInt8]
    var account: [UInt8]
    var secret: [UInt8]
    var algorithm: HashAlgorithm
    var digits: Int
    var period: Int

    init(_ uri: OTPAuthURI) {
        self.issuer = Array(uri.issuer.utf8)
        self.account = Array(uri.account.utf8)
        self.secret = uri.secret
        self.algorithm = uri.algorithm
        self.digits = uri.digits
        self.period = uri.period
    }

    init(issuer: [UInt8], account: [UInt8], secret: [UInt8], algorithm: HashAlgorithm, digits: Int, period: Int) {
        self.issuer = issuer
        self.account = account
        self.secret = secret
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }
}

private func checkParsing(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    let parsed = OTPAuthURI(parsing: text).map(Fields.init)
    let reference = referenceParse(Array(text.utf8))
    Fuzz.check(parsed == reference, "OTPAuthURI(parsing: \(text.debugDescription)) = \(String(describing: parsed)), the rules say \(String(describing: reference))")
    if let uri = OTPAuthURI(parsing: text) {
        let again = OTPAuthURI(parsing: uri.uri).map(Fields.init)
        Fuzz.check(again == Fields(uri), "the accepted URI \(text.debugDescription) written as \(uri.uri.debugDescription) reads back as \(String(describing: again))")
    }
}

private func checkWriting(_ input: inout FuzzInput) {
    let issuer = String(decoding: input.piece(maxLength: 64), as: UTF8.self)
    let account = String(decoding: input.piece(maxLength: 64), as: UTF8.self)
    let secret = input.piece(maxLength: 64)
    let algorithm = input.pick(HashAlgorithm.allCases)
    let digits = input.int(in: 6...8)
    let period = input.int(in: 1...3600)
    let uri = OTPAuthURI(issuer: issuer, account: account, secret: secret, algorithm: algorithm, digits: digits, period: period)
    let text = uri.uri
    Fuzz.check(text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "the URI is not plain ASCII: \(text.debugDescription)")
    let back = OTPAuthURI(parsing: text).map(Fields.init)
    Fuzz.check(back == Fields(uri), "\(text.debugDescription) reads back as \(String(describing: back)), written from \(Fields(uri))")
    Fuzz.check(referenceParse(Array(text.utf8)) == Fields(uri), "the rules read \(text.debugDescription) otherwise")
}

/// The documented rules, on bytes (docs/api.md, enrolment; Google's Key Uri Format):
/// `otpauth://totp/LABEL?PARAMS`; LABEL is `issuer:account` split at the first literal `:`, or
/// just the account; PARAMS are `name=value` pairs joined by `&` (empty pairs ignored), each
/// name (as written) at most once; values are percent-decoded (`%XX`) UTF-8; `secret` (required)
/// is base32 in either case; `issuer`, if given with an issuer in the label, equals it;
/// `algorithm` is SHA1, SHA256 or SHA512 in any ASCII case (default SHA1); `digits` 6, 7 or 8
/// and `period` 1…3600, written as plain decimal numbers (defaults 6 and 30); other names are
/// ignored.
private func referenceParse(_ bytes: [UInt8]) -> Fields? {
    let prefix = Array("otpauth://totp/".utf8)
    guard bytes.starts(with: prefix) else { return nil }
    let rest = bytes[prefix.count...]
    guard let question = rest.firstIndex(of: UInt8(ascii: "?")) else { return nil }
    let label = rest[..<question]
    var labelIssuer: [UInt8]?
    let account: [UInt8]
    if let colon = label.firstIndex(of: UInt8(ascii: ":")) {
        guard let i = percentDecode(label[..<colon]), let a = percentDecode(label[(colon + 1)...]) else { return nil }
        labelIssuer = i
        account = a
    } else {
        guard let a = percentDecode(label) else { return nil }
        account = a
    }
    var params: [[UInt8]: [UInt8]] = [:]
    for pair in rest[(question + 1)...].split(separator: UInt8(ascii: "&")) {
        guard let equals = pair.firstIndex(of: UInt8(ascii: "=")), let value = percentDecode(pair[(equals + 1)...]) else { return nil }
        let name = Array(pair[..<equals])
        guard params[name] == nil else { return nil }
        params[name] = value
    }
    func param(_ name: String) -> [UInt8]? { params[Array(name.utf8)] }
    guard let secretText = param("secret"), let secret = Base32.decode(String(decoding: secretText, as: UTF8.self)),
          secretText.allSatisfy({ $0 < 0x80 }) else { return nil }
    let issuer = param("issuer") ?? labelIssuer ?? []
    if let labelIssuer, labelIssuer != issuer { return nil }
    let algorithm: HashAlgorithm
    switch param("algorithm").map({ String(decoding: $0.map { (0x61...0x7A).contains($0) ? $0 - 32 : $0 }, as: UTF8.self) }) ?? "SHA1" {
    case "SHA1": algorithm = .sha1
    case "SHA256": algorithm = .sha256
    case "SHA512": algorithm = .sha512
    default: return nil
    }
    func decimal(_ text: [UInt8]?, default value: Int, in range: ClosedRange<Int>) -> Int? {
        guard let text else { return value }
        guard !text.isEmpty, text.count <= 4, text.allSatisfy({ (0x30...0x39).contains($0) }), text.count == 1 || text[0] != 0x30 else { return nil }
        let n = text.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        return range.contains(n) ? n : nil
    }
    guard let digits = decimal(param("digits"), default: 6, in: 6...8), let period = decimal(param("period"), default: 30, in: 1...3600) else {
        return nil
    }
    return Fields(issuer: issuer, account: account, secret: secret, algorithm: algorithm, digits: digits, period: period)
}

/// `%XX` escapes decoded (either case of hex digit); the result must be UTF-8.
private func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
    var out: [UInt8] = []
    var i = bytes.startIndex
    while i < bytes.endIndex {
        if bytes[i] == UInt8(ascii: "%") {
            guard i + 2 < bytes.endIndex, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) else { return nil }
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return String(validating: out, as: UTF8.self) == nil ? nil : out
}

// MARK: Secrets and codes

private func checkSecretAndCodes(_ input: inout FuzzInput) {
    let digits = input.int(in: 5...9)
    let time = Int64(input.int(in: 0...4_102_444_800))
    let codeText = String(decoding: input.piece(maxLength: 12), as: UTF8.self)
    let secretText = String(decoding: input.rest(), as: UTF8.self)

    // An imported secret.
    let secret = OTPSecret.parse(base32: secretText)
    let characters = Array(secretText.utf8)
    let upper = characters.map { (0x61...0x7A).contains($0) ? $0 - 32 : $0 }
    let expected = Base32.decode(secretText).flatMap { OTPSecret.importedLengths.contains($0.count) ? $0 : nil }
    Fuzz.check(secret == expected, "OTPSecret.parse(\(secretText.debugDescription)) = \(String(describing: secret)), base32 says \(String(describing: expected))")
    if let secret {
        Fuzz.check(characters.allSatisfy { $0 < 0x80 }, "a secret spelled with non-ASCII characters was accepted: \(secretText.debugDescription)")
        Fuzz.check(Array(Base32.encode(secret).utf8) == upper, "the accepted secret \(secretText.debugDescription) is not Base32's spelling of its bytes")
    }

    // The code parsers: exactly `digits` ASCII digits.
    let codeBytes = Array(codeText.utf8)
    let plain = HOTP.supportedDigits.contains(digits) && codeBytes.count == digits && codeBytes.allSatisfy { (0x30...0x39).contains($0) }
    let value = HOTP.parse(codeText, digits: digits)
    Fuzz.check((value != nil) == plain, "HOTP.parse(\(codeText.debugDescription), digits: \(digits)) = \(String(describing: value))")
    if let value {
        Fuzz.check(HOTP.format(value, digits: digits) == codeText, "HOTP.format does not give back \(codeText)")
    }
    guard HOTP.supportedDigits.contains(digits) else { return }
    let key = secret ?? Array(characters.prefix(20)) + Array(repeating: 0x5A, count: max(0, 10 - characters.count))
    let algorithm = HashAlgorithm.allCases[Int(time % 3)]
    guard let totp = try? TOTP(secret: key, algorithm: algorithm, digits: digits, period: 30) else {
        Fuzz.fail("TOTP refused a secret of \(key.count) bytes")
    }
    // The String and the generic (Substring) validators and the parsed-value one agree.
    let a = totp.validate(codeText, at: time)
    let b = totp.validate(codeText[...], at: time)
    let c = value.flatMap { totp.validate($0, at: time) }
    Fuzz.check(a == b && b == c, "validators disagree on \(codeText.debugDescription): \(String(describing: a)) \(String(describing: b)) \(String(describing: c))")
    // A code validates at its own time with offset 0.
    let step = UInt64(time) / 30
    guard let own = totp.code(at: time) else { Fuzz.fail("no code at \(time)") }
    Fuzz.check(totp.validate(own, at: time) == TOTP.Match(step: step, offset: 0), "the current code does not validate at offset 0")
    // A neighbouring step's code: its offset, unless a nearer step (searched 0, -1, +1) has the same code.
    let offset = input.pick([-1, 1])
    guard step > 0 else { return }
    let neighbour = HOTP.format(totp.code(step: UInt64(Int64(step) + Int64(offset))), digits: digits)
    guard let match = totp.validate(neighbour, at: time) else { Fuzz.fail("the code of step \(offset) does not validate") }
    let order = [0, -1, 1]
    Fuzz.check(match.offset == offset || order.firstIndex(of: match.offset)! < order.firstIndex(of: offset)!,
               "the code of step \(offset) matched as \(match)")
    Fuzz.check(match.step == UInt64(Int64(step) + Int64(match.offset)), "match \(match) names the wrong step")
}
