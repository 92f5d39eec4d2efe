import Foundation

/// Finds one whole HTTP/1.x response at the start of a buffer: for the blocking client (seeding)
/// and the event-driven run alike. Parsed on bytes, only the status and the three headers that
/// frame the body (a dictionary of every header, lower-cased, was a tenth of the generator's
/// CPU, which it shares with the node on a small machine).
package enum LoadResponseParser {
    /// A whole response found at the start of a buffer.
    package struct Parsed {
        /// The status and body.
        package var response: LoadResponse
        /// Bytes of the buffer the response took.
        package var consumed: Int
        /// The connection ends after it (`Connection: close`, HTTP/1.0, or a body read to the end).
        package var close: Bool
    }

    /// The longest response head accepted.
    package static let maximumHead = 64 * 1024
    /// The longest body accepted.
    package static let maximumBody = 16 << 20

    /// The response at the start of `buffer`, or nil when more bytes are needed. With `atEOF`
    /// the stream has ended: a body without a length ends there.
    /// Errors are ``LoadError/Code/malformedResponse``.
    package static func parse(_ buffer: [UInt8], method: String, atEOF: Bool) throws(LoadError) -> Parsed? {
        guard let headEnd = find(buffer, [13, 10, 13, 10], from: 0) else {
            if buffer.count >= maximumHead { throw LoadError(.malformedResponse, "response head too large") }
            return nil
        }
        var lines = buffer[0..<headEnd].split(separator: 13, omittingEmptySubsequences: false)[...]
        let statusLine = lines.removeFirst().split(separator: 32, maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].starts(with: Array("HTTP/1.".utf8)),
              let status = Int(String(decoding: statusLine[1], as: UTF8.self)) else {
            throw LoadError(.malformedResponse, "malformed status line")
        }
        let isHTTP10 = statusLine[0].elementsEqual("HTTP/1.0".utf8)
        var connectionClose = false, chunked = false
        var contentLength: Int?
        for var line in lines {
            if line.first == 10 { line = line.dropFirst() }
            guard let colon = line.firstIndex(of: 58) else { continue }
            let name = line[..<colon]
            var value = line[(colon + 1)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            if equalsIgnoringCase(name, "content-length") {
                contentLength = Int(String(decoding: value, as: UTF8.self))
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                chunked = String(decoding: value, as: UTF8.self).lowercased().contains("chunked")
            } else if equalsIgnoringCase(name, "connection") {
                connectionClose = equalsIgnoringCase(value, "close")
            }
        }
        let bodyStart = headEnd + 4
        var close = connectionClose || isHTTP10
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) {
            return Parsed(response: .init(status: status, body: []), consumed: bodyStart, close: close)
        }
        if chunked {
            var body: [UInt8] = []
            var at = bodyStart
            for _ in 0..<1_000_000 {
                guard let lineEnd = find(buffer, [13, 10], from: at) else { return nil }
                let sizeText = String(decoding: buffer[at..<lineEnd], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "", radix: 16), size >= 0 else {
                    throw LoadError(.malformedResponse, "bad chunk size")
                }
                at = lineEnd + 2
                if size == 0 {
                    // Trailers up to the empty line.
                    for _ in 0..<1000 {
                        guard let end = find(buffer, [13, 10], from: at) else { return nil }
                        let empty = end == at
                        at = end + 2
                        if empty { return Parsed(response: .init(status: status, body: body), consumed: at, close: close) }
                    }
                    throw LoadError(.malformedResponse, "too many trailers")
                }
                guard body.count + size <= maximumBody else { throw LoadError(.malformedResponse, "response body too large") }
                guard buffer.count >= at + size + 2 else { return nil }
                body += buffer[at..<(at + size)]
                at += size + 2
            }
            throw LoadError(.malformedResponse, "too many chunks")
        }
        if let length = contentLength, length >= 0 {
            guard length <= maximumBody else { throw LoadError(.malformedResponse, "response body too large") }
            guard buffer.count >= bodyStart + length else { return nil }
            return Parsed(response: .init(status: status, body: Array(buffer[bodyStart..<(bodyStart + length)])), consumed: bodyStart + length, close: close)
        }
        // No length: the body runs to the end of the stream.
        guard buffer.count - bodyStart <= maximumBody else { throw LoadError(.malformedResponse, "response body too large") }
        guard atEOF else { return nil }
        close = true
        return Parsed(response: .init(status: status, body: Array(buffer[bodyStart...])), consumed: buffer.count, close: close)
    }

    /// ASCII case-insensitive comparison of a header name or value with lower-case `text`.
    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let p = text.utf8Start
        for (i, b) in bytes.enumerated() where (b >= 65 && b <= 90 ? b | 0x20 : b) != p[i] { return false }
        return true
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = start
        let first = needle[0]
        while i + needle.count <= haystack.count {
            if haystack[i] == first {
                var j = 1
                while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

