import Foundation
import Glibc

/// A loopback `http://host:port[/base]` resolved to a socket address.
package struct LoadEndpoint: Sendable {
    /// The URL as given.
    package let url: String
    let family: Int32
    /// A `sockaddr_in` or `sockaddr_in6`, as bytes.
    let address: [UInt8]
    let hostHeader: String
    let basePath: String

    /// Resolves `text` to its first loopback address; errors are ``LoadError/Code/invalidOption``.
    init(parsing text: String) throws(LoadError) {
        guard let url = URL(string: text), url.scheme == "http", var host = url.host, !host.isEmpty else {
            throw LoadError(.invalidOption, "--url '\(text)' is not an http:// URL")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = url.port ?? 80
        guard (1...65535).contains(port) else { throw LoadError(.invalidOption, "--url '\(text)': bad port") }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw LoadError(.invalidOption, "--url '\(text)': cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var chosen: (Int32, [UInt8])?
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let e = entry, chosen == nil {
            let bytes = Array(UnsafeRawBufferPointer(start: e.pointee.ai_addr, count: Int(e.pointee.ai_addrlen)))
            if Self.isLoopback(family: e.pointee.ai_family, bytes) { chosen = (e.pointee.ai_family, bytes) }
            entry = e.pointee.ai_next
        }
        guard let chosen else { throw LoadError(.invalidOption, "--url '\(text)': the load generator only targets loopback addresses") }
        self.url = text
        self.family = chosen.0
        self.address = chosen.1
        let bracketed = host.contains(":") ? "[\(host)]" : host
        self.hostHeader = url.port.map { "\(bracketed):\($0)" } ?? bracketed
        let path = url.path
        self.basePath = path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// A TCP socket for this endpoint with TCP_NODELAY, optionally non-blocking.
    func openSocket(nonBlocking: Bool) throws(LoadError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let s = socket(family, type, 0)
        guard s >= 0 else { throw .transport("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return s
    }

    /// connect(2) to this endpoint (0, or -1 with errno).
    func connect(_ s: Int32) -> Int32 {
        address.withUnsafeBytes { raw in
            Glibc.connect(s, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }

    /// Whether a `sockaddr_in` (127.0.0.0/8) or `sockaddr_in6` (::1) is a loopback address. Read
    /// at the fields' offsets in Linux's layout (family and port first, then IPv4's address, or
    /// IPv6's flow information and address), not through the fields: with SwiftNIO in the module
    /// the C structs' members would need one of NIO's internal modules imported.
    static func isLoopback(family: Int32, _ bytes: [UInt8]) -> Bool {
        if family == AF_INET, bytes.count >= MemoryLayout<sockaddr_in>.size {
            return bytes[4] == 127
        }
        if family == AF_INET6, bytes.count >= MemoryLayout<sockaddr_in6>.size {
            return bytes[8..<23].allSatisfy { $0 == 0 } && bytes[23] == 1
        }
        return false
    }
}

