import CHiredis

/// hiredis's RESP2 reader over bytes in memory: what a connection does with the bytes it reads
/// from Redis (``ReplyAssembly``: hiredis parses, the reply is copied into ``RedisValue``, the
/// reply's size is counted against a limit), without the socket. The fuzzer feeds it arbitrary
/// bytes in arbitrary pieces (fuzz/, target `resp`).
///
/// Not `Sendable`: a reader belongs to one thread.
package final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>
    private var assembly = ReplyAssembly()
    /// The size limit of one reply, as ``RedisConfiguration/Limits/maxReplyBytes`` is for a
    /// connection.
    package let maxReplyBytes: Int

    package init(maxReplyBytes: Int) {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        self.reader = reader
        self.maxReplyBytes = maxReplyBytes
    }

    deinit {
        redisReaderFree(self.reader)
    }

    /// Adds bytes as a read from the socket would. Throws once the reader has failed (hiredis
    /// keeps the first error).
    package func feed(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard redisReaderFeed(self.reader, base.assumingMemoryBound(to: CChar.self), bytes.count) == REDIS_OK else {
            throw RedisError(.protocolError, "the reader has failed and takes no more bytes")
        }
        self.assembly.received(bytes.count)
    }

    /// The next complete reply, or nil when more bytes are needed; throws as a connection's read
    /// does (a protocol error, a reply past ``maxReplyBytes``).
    package func next() throws(RedisError) -> RedisValue? {
        try self.assembly.next(from: self.reader, maxBytes: self.maxReplyBytes)
    }

    /// Bytes fed that belong to the reply being assembled (after ``next()`` returned one: the
    /// bytes already buffered after it).
    package var bytesTowardReply: Int { self.assembly.bytesTowardReply }
}
