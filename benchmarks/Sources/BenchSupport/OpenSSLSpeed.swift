import Foundation

/// Runs `openssl speed` as a subprocess: the machine's own HMAC throughput, measured in the same
/// run as the Swift figures it is compared with.
public enum OpenSSLSpeed {
    /// One `openssl speed -mr -hmac sha256 -bytes N -seconds S` run (single process, one thread).
    ///
    /// `-mr` prints `+R:<count>:hmac(sha256):<seconds>`, where seconds is user CPU time by default
    /// (OpenSSL divides by CPU time unless `-elapsed`), so count/seconds is ops per CPU second —
    /// the same basis as `Sample.opsPerCPUSecond`. The run lasts S seconds of wall time (SIGALRM),
    /// so count/S is the wall basis. Falls back to the human table (`hmac(sha256)  586654.80k`,
    /// in 1000s of bytes per second: ops/s = k × 1000 / N) if no `+R` line is found.
    public static func hmacSHA256(bytes: Int, seconds: Int) throws -> Sample {
        let result = try Subprocess.run(["openssl", "speed", "-mr", "-hmac", "sha256", "-bytes", String(bytes), "-seconds", String(seconds)])
        guard result.status == 0 else {
            throw SpeedError(message: "openssl speed exited \(result.status): \(result.output.suffix(300))")
        }
        let output = result.output
        return try parse(output, bytes: bytes, seconds: seconds)
    }

    /// Ed25519 verifications per CPU second from `openssl speed -mr -seconds S ed25519` (which also
    /// times signing; the `+R9` line is verify: `+R9:<count>:<bits>:Ed25519:<seconds>`).
    public static func ed25519Verify(seconds: Int) throws -> Sample {
        let result = try Subprocess.run(["openssl", "speed", "-mr", "-seconds", String(seconds), "ed25519"])
        guard result.status == 0 else {
            throw SpeedError(message: "openssl speed ed25519 exited \(result.status): \(result.output.suffix(300))")
        }
        for line in result.output.split(whereSeparator: \.isNewline) where line.hasPrefix("+R9:") {
            let fields = line.split(separator: ":")
            if fields.count >= 5, let count = Int(fields[1]), let cpu = Double(fields[4]), cpu > 0 {
                return Sample(operations: count, wallSeconds: Double(seconds), cpuSeconds: cpu)
            }
        }
        throw SpeedError(message: "no +R9 line in openssl speed ed25519 output: \(result.output.suffix(300))")
    }

    /// ECDSA P-256 verifications per CPU second from `openssl speed -mr -seconds S ecdsap256`
    /// (which also times signing; the `+R6` line is verify: `+R6:<count>:<bits>:<seconds>`). Each
    /// verification is of a fixed 20-byte digest with a key and `EVP_PKEY_CTX` prepared once: the
    /// curve arithmetic alone, no hashing, parsing or key loading.
    public static func ecdsaP256Verify(seconds: Int) throws -> Sample {
        let result = try Subprocess.run(["openssl", "speed", "-mr", "-seconds", String(seconds), "ecdsap256"])
        guard result.status == 0 else {
            throw SpeedError(message: "openssl speed ecdsap256 exited \(result.status): \(result.output.suffix(300))")
        }
        for line in result.output.split(whereSeparator: \.isNewline) where line.hasPrefix("+R6:") {
            let fields = line.split(separator: ":")
            if fields.count >= 4, let count = Int(fields[1]), let cpu = Double(fields[3]), cpu > 0 {
                return Sample(operations: count, wallSeconds: Double(seconds), cpuSeconds: cpu)
            }
        }
        throw SpeedError(message: "no +R6 line in openssl speed ecdsap256 output: \(result.output.suffix(300))")
    }

    /// Parses `openssl speed` output (see `hmacSHA256(bytes:seconds:)`).
    static func parse(_ output: String, bytes: Int, seconds: Int) throws -> Sample {
        for line in output.split(whereSeparator: \.isNewline) where line.hasPrefix("+R:") {
            let fields = line.split(separator: ":")
            if fields.count >= 4, let count = Int(fields[1]), let cpu = Double(fields[3]), cpu > 0 {
                return Sample(operations: count, wallSeconds: Double(seconds), cpuSeconds: cpu)
            }
        }
        for line in output.split(whereSeparator: \.isNewline) where line.hasPrefix("hmac(sha256)") {
            if let last = line.split(separator: " ").last, last.hasSuffix("k"), let k = Double(last.dropLast()) {
                let opsPerSecond = k * 1000 / Double(bytes)
                let operations = Int(opsPerSecond * Double(seconds))
                return Sample(operations: operations, wallSeconds: Double(seconds), cpuSeconds: Double(seconds))
            }
        }
        throw SpeedError(message: "no result line in openssl speed output: \(output.suffix(300))")
    }

    /// `openssl version`, for the machine line.
    public static func version() -> String {
        guard let result = try? Subprocess.run(["openssl", "version"]), result.status == 0 else { return "unknown" }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A failed or unparsable `openssl speed` run.
    public struct SpeedError: Error, CustomStringConvertible {
        /// What went wrong.
        public var message: String
        public var description: String { message }
    }
}
