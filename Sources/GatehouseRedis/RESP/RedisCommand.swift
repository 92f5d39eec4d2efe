/// A value that can be one argument of a Redis command.
///
/// `String`, `Substring`, `[UInt8]`, `ArraySlice<UInt8>` and the integer types conform, so
/// `client.send(["SET", key, value])` works with mixed argument types.
public protocol RedisArgumentConvertible: Sendable {
    /// Writes this value as exactly one bulk-string argument.
    func encodeRedisArgument(into encoder: inout RedisCommandEncoder)
}

/// Builds the RESP2 bytes of one command. Commands are encoded on the caller's task so the I/O
/// thread only copies finished bytes into hiredis's output buffer.
public struct RedisCommandEncoder: Sendable {
    package var bytes: [UInt8]
    package private(set) var argumentsWritten = 0

    package init(capacity: Int) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// Writes one bulk-string argument from raw bytes.
    public mutating func writeBulk(_ value: some Collection<UInt8>) {
        self.writeHeader(UInt8(ascii: "$"), value.count)
        self.bytes.append(contentsOf: value)
        self.bytes.append(13)
        self.bytes.append(10)
        self.argumentsWritten += 1
    }

    /// Writes one bulk-string argument from UTF-8 text.
    public mutating func writeBulk(_ value: String) {
        var value = value
        // withUTF8 makes the string contiguous once and hands us its bytes without copying them
        // into an intermediate array.
        value.withUTF8 { self.writeBulk(UnsafeRawBufferPointer($0)) }
    }

    /// Writes one bulk-string argument holding a decimal integer.
    public mutating func writeBulk(_ value: Int64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for "-9223372036854775808"
        let count = withUnsafeMutableBytes(of: &digits) { buffer in
            Self.formatDecimal(value, into: buffer)
        }
        withUnsafeBytes(of: &digits) { self.writeBulk(UnsafeRawBufferPointer(rebasing: $0[(24 - count)...])) }
    }

    package mutating func writeArrayHeader(_ count: Int) {
        self.writeHeader(UInt8(ascii: "*"), count)
    }

    private mutating func writeHeader(_ marker: UInt8, _ count: Int) {
        self.bytes.append(marker)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &digits) { Self.formatDecimal(Int64(count), into: $0) }
        withUnsafeBytes(of: &digits) { self.bytes.append(contentsOf: $0[(24 - length)...]) }
        self.bytes.append(13)
        self.bytes.append(10)
    }

    /// Writes `value` right-aligned at the end of `buffer` (24 bytes) and returns its length;
    /// avoids allocating a `String` per number on the hot path.
    private static func formatDecimal(_ value: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var magnitude = value.magnitude
        var index = buffer.count
        repeat {
            index -= 1
            buffer[index] = UInt8(ascii: "0") &+ UInt8(magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        if value < 0 {
            index -= 1
            buffer[index] = UInt8(ascii: "-")
        }
        return buffer.count - index
    }
}

/// One Redis command, already encoded as RESP2.
public struct RedisCommand: Sendable {
    package let bytes: [UInt8]
    /// The number of arguments, the command name included.
    public let argumentCount: Int

    /// Encodes `arguments`; the first is the command name.
    public init(_ arguments: [any RedisArgumentConvertible]) {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        var encoder = RedisCommandEncoder(capacity: 16 + arguments.count * 24)
        encoder.writeArrayHeader(arguments.count)
        for argument in arguments {
            argument.encodeRedisArgument(into: &encoder)
        }
        precondition(
            encoder.argumentsWritten == arguments.count,
            "a RedisArgumentConvertible must write exactly one bulk string"
        )
        self.bytes = encoder.bytes
        self.argumentCount = arguments.count
    }

    /// Encodes a command from its name and arguments.
    public init(_ name: String, _ arguments: any RedisArgumentConvertible...) {
        self.init([name] + arguments)
    }
}

extension String: RedisArgumentConvertible {
    /// Writes the string's UTF-8 bytes.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(self) }
}

extension Substring: RedisArgumentConvertible {
    /// Writes the substring's UTF-8 bytes.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(String(self)) }
}

extension Array: RedisArgumentConvertible where Element == UInt8 {
    /// Writes the bytes unchanged (binary-safe).
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) {
        self.withUnsafeBytes { encoder.writeBulk($0) }
    }
}

extension ArraySlice: RedisArgumentConvertible where Element == UInt8 {
    /// Writes the bytes unchanged (binary-safe).
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) {
        self.withUnsafeBytes { encoder.writeBulk($0) }
    }
}

extension Int: RedisArgumentConvertible {
    /// Writes the decimal form.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(Int64(self)) }
}

extension Int64: RedisArgumentConvertible {
    /// Writes the decimal form.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(self) }
}

extension Int32: RedisArgumentConvertible {
    /// Writes the decimal form.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(Int64(self)) }
}

extension UInt32: RedisArgumentConvertible {
    /// Writes the decimal form.
    public func encodeRedisArgument(into encoder: inout RedisCommandEncoder) { encoder.writeBulk(Int64(self)) }
}
