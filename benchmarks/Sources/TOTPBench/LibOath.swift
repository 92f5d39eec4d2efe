import COath

/// The liboath (OATH Toolkit) calls TOTPBench makes, in one place. Secrets are passed as raw
/// bytes; liboath treats them as opaque (`const char *` plus a length).
enum LibOath {
    /// `oath_init()`, once per process (liboath requires it before any other call).
    static func initialize() throws {
        let rc = oath_init()
        guard rc == Int32(OATH_OK.rawValue) else { throw LibOathError(call: "oath_init", code: rc) }
    }

    /// `oath_totp_validate(secret, n, now, 30, 0, window, otp)`: the matched window position
    /// (>= 0, the distance from the current step) or a negative `oath_rc`
    /// (`OATH_INVALID_OTP` = -6 when no step in the window matches).
    @inline(__always)
    static func validate(secret: UnsafeBufferPointer<UInt8>, now: Int64, window: Int, otp: UnsafePointer<CChar>) -> Int32 {
        secret.withMemoryRebound(to: CChar.self) { s in
            oath_totp_validate(s.baseAddress, s.count, time_t(now), 30, 0, window, otp)
        }
    }

    /// The 6-digit code liboath generates at `now`, or nil on error.
    static func code(secret: [UInt8], now: Int64) -> String? {
        var output = [CChar](repeating: 0, count: 16)
        let rc = secret.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { s in
                oath_totp_generate(s.baseAddress, s.count, time_t(now), 30, 0, 6, &output)
            }
        }
        guard rc == Int32(OATH_OK.rawValue) else { return nil }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `OATH_INVALID_OTP`.
    static let invalidOTP = Int32(OATH_INVALID_OTP.rawValue)
}

/// A liboath call returned an error code.
struct LibOathError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call) failed: \(code)" }
}
