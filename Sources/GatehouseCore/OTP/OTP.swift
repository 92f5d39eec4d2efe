public import GatehouseCrypto

/// HOTP (RFC 4226) over a prepared HMAC key.
public enum HOTP {
    /// Powers of ten for the supported digit counts (6…8), indexed by digits.
    @usableFromInline
    static let modulus: [UInt32] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// The supported code lengths.
    public static let supportedDigits: ClosedRange<Int> = 6...8

    /// The HOTP value for `counter` (a full 64-bit moving factor) with `digits` digits.
    /// Allocation-free.
    public static func code(key: HMACKey, counter: UInt64, digits: Int) -> UInt32 {
        precondition(supportedDigits.contains(digits), "HOTP digits must be 6...8")
        var message = counter.bigEndian
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { mac in
            withUnsafeBytes(of: &message) { key.authenticate($0, into: mac) }
            // Dynamic truncation (RFC 4226 §5.3): low nibble of the last byte picks the offset.
            let last = mac[key.algorithm.digestLength - 1]
            let offset = Int(last & 0x0F)
            let binary = (UInt32(mac[offset]) & 0x7F) << 24
                | UInt32(mac[offset + 1]) << 16
                | UInt32(mac[offset + 2]) << 8
                | UInt32(mac[offset + 3])
            return binary % modulus[digits]
        }
    }

    /// Formats `code` zero-padded to `digits`.
    public static func format(_ code: UInt32, digits: Int) -> String {
        let s = String(code)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// Parses a code typed by a user: exactly `digits` ASCII digits, nothing else (no spaces,
    /// signs, Unicode digits). Returns nil otherwise.
    public static func parse(_ text: some StringProtocol, digits: Int) -> UInt32? {
        guard supportedDigits.contains(digits) else { return nil }
        var value: UInt32 = 0
        var count = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), count < digits else { return nil }
            value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
            count += 1
        }
        return count == digits ? value : nil
    }
}

/// TOTP parameters (RFC 6238) for one secret.
public struct TOTP: Sendable {
    /// The default step length in seconds.
    public static let defaultPeriod = 30

    /// The hash function.
    public var algorithm: HashAlgorithm { key.algorithm }
    /// Number of digits, 6…8.
    public let digits: Int
    /// Step length in seconds.
    public let period: Int
    /// The prepared key.
    public let key: HMACKey

    /// Creates a TOTP generator/validator for `secret`.
    ///
    /// - Throws: `CoreError.invalidParameter` for digits outside 6…8, a period outside 1…3600 s,
    ///   or a secret shorter than 10 bytes (RFC 4226 requires 128 bits; 80 is the floor some
    ///   providers used, accepted for imports).
    public init(secret: [UInt8], algorithm: HashAlgorithm = .sha1, digits: Int = 6, period: Int = TOTP.defaultPeriod) throws(CoreError) {
        guard HOTP.supportedDigits.contains(digits) else { throw CoreError(.invalidParameter, "digits must be 6...8") }
        guard (1...3600).contains(period) else { throw CoreError(.invalidParameter, "period must be 1...3600 seconds") }
        guard secret.count >= 10 else { throw CoreError(.invalidParameter, "secret must be at least 80 bits") }
        self.key = HMACKey(algorithm, key: secret)
        self.digits = digits
        self.period = period
    }

    /// The time step containing `unixTime` (T0 = 0). Times before 1970 have no step.
    public func step(at unixTime: Int64) -> UInt64? {
        unixTime >= 0 ? UInt64(unixTime) / UInt64(period) : nil
    }

    /// The code for a given step.
    public func code(step: UInt64) -> UInt32 { HOTP.code(key: key, counter: step, digits: digits) }

    /// The code shown at `unixTime`, zero-padded.
    public func code(at unixTime: Int64) -> String? {
        step(at: unixTime).map { HOTP.format(code(step: $0), digits: digits) }
    }

    /// A successful match: which step the code belongs to, and its distance from the current one.
    public struct Match: Sendable, Equatable {
        /// The matched time step (the replay check stores and compares this).
        public let step: UInt64
        /// `step - currentStep`, in `-window...window`.
        public let offset: Int

        /// Creates a match.
        public init(step: UInt64, offset: Int) {
            self.step = step
            self.offset = offset
        }
    }

    /// Checks `input` against the steps `current-window ... current+window`.
    ///
    /// The input must be exactly `digits` ASCII digits. Every step in the window is computed and
    /// compared without an early exit, so timing does not reveal which step (if any) matched.
    /// When a code matches several steps (a 10⁻⁶ coincidence), the latest of them wins: replay
    /// protection records the matched step and refuses every step up to it, so taking the latest
    /// means the same six digits are never accepted twice, and a code whose own step is unspent
    /// is never refused because an earlier, spent step happens to have the same code.
    /// A concrete String overload; the generic one ran HOTP.parse unspecialised
    /// (an IteratorProtocol witness call per character, ~2,400 instructions for 6 digits).
    public func validate(_ input: String, at unixTime: Int64, window: Int = 1) -> Match? {
        var value: UInt32 = 0, count = 0
        for byte in input.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), count < digits else { return nil }
            value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
            count += 1
        }
        guard count == digits else { return nil }
        return validate(value, at: unixTime, window: window)
    }

    public func validate(_ input: some StringProtocol, at unixTime: Int64, window: Int = 1) -> Match? {
        guard let value = HOTP.parse(input, digits: digits) else { return nil }
        return validate(value, at: unixTime, window: window)
    }

    /// `validate(_:at:window:)` for an already-parsed code. Allocation-free.
    public func validate(_ value: UInt32, at unixTime: Int64, window: Int = 1) -> Match? {
        guard window >= 0, window <= 10, let current = step(at: unixTime) else { return nil }
        var found: UInt32 = 0
        var bestOffset = 0
        // From the earliest step to the latest, every hit replaces the one before, without
        // branching on the secret: the latest hit remains.
        for offset in -window...window {
            if offset < 0, UInt64(-offset) > current { continue }  // before the epoch
            let candidate = offset < 0 ? current - UInt64(-offset) : current &+ UInt64(offset)
            let hit = ConstantTime.isEqual(code(step: candidate), value)
            // Branch-free select: mask is all-ones when `hit` is 1.
            let mask = 0 &- Int(hit)
            bestOffset = (offset & mask) | (bestOffset & ~mask)
            found |= hit
        }
        guard found == 1 else { return nil }
        let matched = bestOffset < 0 ? current - UInt64(-bestOffset) : current + UInt64(bestOffset)
        return Match(step: matched, offset: bestOffset)
    }
}
