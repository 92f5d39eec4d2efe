import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// The test function of the program, set once by ``Fuzz/run(_:)`` before libFuzzer starts.
nonisolated(unsafe) private var testOneInput: ((FuzzInput) -> Void)?

/// What every fuzz target shares: libFuzzer's driver, a reader that turns the input into choices,
/// and invariant checks that stop the run with a message.
public enum Fuzz {
    /// Runs libFuzzer's driver (the program's arguments are libFuzzer's flags and corpus
    /// directories) with `test` as the test function, and exits with its status.
    ///
    /// SwiftPM links an executable with `main` defined as the module's entry point, so libFuzzer's
    /// own `main` is not used; `LLVMFuzzerRunDriver` runs exactly as it would.
    public static func run(_ test: @escaping (FuzzInput) -> Void) -> Never {
        testOneInput = test
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
            testOneInput!(FuzzInput(bytes))
            return 0
        }
        exit(status)
    }

    /// Stops the run with `message` (libFuzzer saves the input as a crash artifact) unless
    /// `condition` holds.
    @inline(__always)
    public static func check(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        if !condition { fail(message(), file: file, line: line) }
    }

    /// Stops the run with `message`: an invariant does not hold for this input.
    public static func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
        // One line on stderr that scripts/fuzz.sh looks for, then a trap (libFuzzer's "deadly
        // signal": the input is written to the artifact directory).
        let text = "==INVARIANT== \(file):\(line): \(message)\n"
        _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        abort()
    }
}

/// `LLVMFuzzerTestOneInput`: libFuzzer's `-runs`, `-merge` and the plain replay of a crash file
/// (`Program crash-…`) call this symbol too; it forwards to the test function of ``Fuzz/run(_:)``.
@_cdecl("LLVMFuzzerTestOneInput")
public func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    testOneInput?(FuzzInput(bytes))
    return 0
}

/// The input read as a sequence of choices, from the front: a byte, a number in a range, a
/// length-prefixed piece. When the bytes run out every choice is its smallest value, so any
/// input means something (libFuzzer's mutations stay meaningful).
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - position }
    public var isEmpty: Bool { remaining == 0 }

    /// The next byte, 0 when none is left.
    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A number in `range` from the next one to eight bytes (as many as the range needs).
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound) &- Int64(range.lowerBound))
        guard span > 0 else { return range.lowerBound }
        var value: UInt64 = 0
        var covered: UInt64 = 0
        while covered < span {
            value = value << 8 | UInt64(byte())
            covered = covered << 8 | 0xFF
        }
        let offset = span == UInt64.max ? value : value % (span + 1)
        return Int(Int64(range.lowerBound) &+ Int64(bitPattern: offset))
    }

    /// A 64-bit value from the next eight bytes.
    public mutating func uint64() -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(byte()) }
        return value
    }

    /// The next `count` bytes (fewer if the input ends).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { position += n }
        return Array(bytes[position..<position + n])
    }

    /// A piece whose length (at most `maxLength`) is the next byte or two.
    public mutating func piece(maxLength: Int = 255) -> [UInt8] {
        bytes(int(in: 0...maxLength))
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { bytes(remaining) }

    /// One of `choices`.
    public mutating func pick<T>(_ choices: [T]) -> T { choices[int(in: 0...(choices.count - 1))] }
}

/// Cuts `bytes` into consecutive pieces at cut points chosen by `input` (at most `maxPieces`),
/// as reads from a socket might deliver them.
public func pieces(of bytes: [UInt8], maxPieces: Int, input: inout FuzzInput) -> [ArraySlice<UInt8>] {
    var cuts: [Int] = []
    let count = input.int(in: 0...max(0, maxPieces - 1))
    for _ in 0..<count where !bytes.isEmpty { cuts.append(input.int(in: 0...bytes.count)) }
    cuts.sort()
    var out: [ArraySlice<UInt8>] = []
    var start = 0
    for cut in cuts + [bytes.count] {
        out.append(bytes[start..<cut])
        start = cut
    }
    return out
}
