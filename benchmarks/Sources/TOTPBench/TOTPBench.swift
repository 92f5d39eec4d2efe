import BenchSupport
import Foundation
import GatehouseCore
import GatehouseCrypto

/// TOTP checks: Gatehouse's `TOTP` against liboath's `oath_totp_validate`, both in the worst case
/// (a wrong code, so all three steps of window 1 are computed). In the service every check is for
/// a different user, so the headline includes preparing the key (`TOTP(secret:)`) per check, and
/// the checks cycle through 256 distinct secrets on both sides.
@main
enum TOTPBench {
    static func main() throws {
        let options = Options.parse(program: "TOTPBench")
        try run(options)
    }

    static let secretCount = 256  // a power of two: the loops index with `& (secretCount - 1)`

    static func run(_ options: Options) throws {
        var report = Report(title: "TOTPBench: TOTP check, SHA1, 6 digits, 30 s, window 1, wrong code")
        try LibOath.initialize()
        let t = Int64(Date().timeIntervalSince1970)
        let wrongText = "123456"
        let wrongValue: UInt32 = 123_456

        // MARK: Cross-checks with known answers
        let rfc = try TOTP(secret: Array("12345678901234567890".utf8))
        try check(rfc.code(at: 59) == "287082", "Gatehouse matches RFC 6238 (T=59, SHA1, 6 digits)")
        try check(LibOath.code(secret: Array("12345678901234567890".utf8), now: 59) == "287082", "liboath matches RFC 6238 (T=59)")

        // Secrets for which 123456 is wrong at every step of the window (both implementations agree).
        var secrets: [[UInt8]] = []
        while secrets.count < secretCount {
            let secret = try OTPSecret.generate()
            let totp = try TOTP(secret: secret)
            guard totp.validate(wrongValue, at: t, window: 1) == nil else { continue }  // a 3-in-a-million draw
            secrets.append(secret)
        }
        let prepared = try secrets.map { try TOTP(secret: $0) }
        let mask = secretCount - 1
        let otp = strdup(wrongText)!
        defer { free(otp) }
        var agree = true, gatehouseRefuses = true, liboathRefuses = true
        for (secret, totp) in zip(secrets, prepared) {
            agree = agree && LibOath.code(secret: secret, now: t) == totp.code(at: t)
            gatehouseRefuses = gatehouseRefuses && totp.validate(wrongText, at: t, window: 1) == nil
            liboathRefuses = liboathRefuses && secret.withUnsafeBufferPointer {
                LibOath.validate(secret: $0, now: t, window: 1, otp: otp) == LibOath.invalidOTP
            }
        }
        try check(agree, "Gatehouse and liboath generate the same codes for all \(secretCount) secrets")
        try check(gatehouseRefuses, "Gatehouse returns nil for the wrong code (all secrets, UInt32 and String)")
        try check(liboathRefuses, "liboath returns OATH_INVALID_OTP for the wrong code (all secrets)")
        let right = prepared[0].code(at: t)!, previous = prepared[0].code(at: t - 30)!
        try check(prepared[0].validate(right, at: t, window: 1)?.offset == 0, "Gatehouse matches the current code at offset 0")
        try check(prepared[0].validate(previous, at: t, window: 1)?.offset == -1, "Gatehouse matches the previous step at offset -1")
        try check(secrets[0].withUnsafeBufferPointer { LibOath.validate(secret: $0, now: t, window: 1, otp: right) } == 0,
                  "liboath matches the current code at position 0")
        try check(secrets[0].withUnsafeBufferPointer { LibOath.validate(secret: $0, now: t, window: 1, otp: previous) } == 1,
                  "liboath matches the previous step at position 1")
        report.note("machine", Machine.describe())

        // MARK: Interleaved rounds
        let steps: [(String, () -> Void)] = [
            ("gatehouse_init_validate_string", {
                report.add("gatehouse_init_validate_string", measure(slice: options.slice) { n in
                    for i in 0..<n {
                        let totp = try? TOTP(secret: secrets[i & mask])
                        blackHole(totp?.validate(wrongText, at: t, window: 1))
                    }
                }, note: "TOTP(secret:) + validate(\"123456\", at:, window: 1) per check (headline)")
            }),
            ("liboath_totp_validate", {
                report.add("liboath_totp_validate", measure(slice: options.slice) { n in
                    for i in 0..<n {
                        secrets[i & mask].withUnsafeBufferPointer { blackHole(LibOath.validate(secret: $0, now: t, window: 1, otp: otp)) }
                    }
                }, note: "oath_totp_validate(secret, 20, t, 30, 0, 1, \"123456\")")
            }),
            ("gatehouse_init_validate_uint32", {
                report.add("gatehouse_init_validate_uint32", measure(slice: options.slice) { n in
                    for i in 0..<n {
                        let totp = try? TOTP(secret: secrets[i & mask])
                        blackHole(totp?.validate(wrongValue, at: t, window: 1))
                    }
                })
            }),
            ("gatehouse_validate_uint32", {
                report.add("gatehouse_validate_uint32", measure(slice: options.slice) { n in
                    for i in 0..<n { blackHole(prepared[i & mask].validate(wrongValue, at: t, window: 1)) }
                }, note: "key prepared in advance")
            }),
            ("gatehouse_validate_string", {
                report.add("gatehouse_validate_string", measure(slice: options.slice) { n in
                    for i in 0..<n { blackHole(prepared[i & mask].validate(wrongText, at: t, window: 1)) }
                }, note: "key prepared in advance")
            }),
        ]
        if let name = options.profile {
            guard let step = steps.first(where: { $0.0 == name }) else {
                throw BenchFailure("no series \(name); one of: \(steps.map(\.0).joined(separator: ", "))")
            }
            step.1()
            report.print()
            return
        }
        for round in 0..<options.rounds {
            for k in steps.indices { steps[(k + round) % steps.count].1() }
        }

        // MARK: Allocations
        let interposed = Allocations.interposerWorks()
        report.note("malloc interposer", interposed ? "works (counter moves for Swift array allocations)" : "NOT WORKING: counts below are meaningless")
        let n = options.allocationIterations
        var i = 0
        report.allocations("totp_init_validate_allocs_per_op", Allocations.perOperation(iterations: n) {
            i += 1
            blackHole((try? TOTP(secret: secrets[i & mask]))?.validate(wrongText, at: t, window: 1))
        }, target: nil)
        report.allocations("totp_validate_allocs_per_op", Allocations.perOperation(iterations: n) {
            i += 1
            blackHole(prepared[i & mask].validate(wrongValue, at: t, window: 1))
        }, target: nil)
        report.allocations("liboath_validate_allocs_per_op", Allocations.perOperation(iterations: n) {
            i += 1
            secrets[i & mask].withUnsafeBufferPointer { blackHole(LibOath.validate(secret: $0, now: t, window: 1, otp: otp)) }
        }, target: nil)

        // MARK: Targets
        report.ratio("totp_check_vs_liboath", "gatehouse_init_validate_string", over: "liboath_totp_validate", target: 1.0, style: .fraction)
        report.ratio("totp_check_uint32_vs_liboath", "gatehouse_init_validate_uint32", over: "liboath_totp_validate", target: nil, style: .fraction)
        report.ratio("totp_validate_only_vs_liboath", "gatehouse_validate_uint32", over: "liboath_totp_validate", target: nil, style: .fraction)

        report.print()
        if options.json { print(report.json()) }
    }
}
