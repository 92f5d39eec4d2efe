import CLibSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A TLS client session over an already connected ``TCPSocket`` (STARTTLS): owns the `SSL_CTX`
/// and `SSL` handles and frees them in `deinit`. Every libssl call of the module is in this file.
///
/// The socket stays non-blocking, so `SSL_connect`/`SSL_read`/`SSL_write` return
/// `SSL_ERROR_WANT_READ`/`WANT_WRITE` instead of blocking; each is answered with a deadline-bounded
/// poll on the socket. Used by one delivery thread only (an `SSL` is not thread-safe).
final class TLSSession {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let socket: TCPSocket

    private init(context: OpaquePointer, ssl: OpaquePointer, socket: TCPSocket) {
        self.context = context
        self.ssl = ssl
        self.socket = socket
    }

    deinit {
        SSL_free(self.ssl)
        SSL_CTX_free(self.context)
    }

    /// Runs the TLS handshake as a client. With `verify`, the certificate must chain to the
    /// system's trusted roots and name `host` (a DNS name, or an IP address in the IP SANs).
    ///
    /// A context per handshake, not per client: deliveries are rare (a few per sign-in at most) and
    /// a fresh context picks up a changed system trust store without a restart.
    static func handshake(
        over socket: TCPSocket, host: String, verify: Bool, deadline: ContinuousClock.Instant
    ) throws(MailError) -> TLSSession {
        // The OpenSSL error queue is per thread; start clean so messages name this failure.
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw MailError(.tlsFailed, "SSL_CTX_new failed: \(Self.errorQueueText())")
        }
        guard gh_ssl_ctx_require_tls12(context) == 1 else {
            SSL_CTX_free(context)
            throw MailError(.tlsFailed, "cannot require TLS 1.2: \(Self.errorQueueText())")
        }
        if verify {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                SSL_CTX_free(context)
                throw MailError(.tlsFailed, "cannot load the system's trusted certificates: \(Self.errorQueueText())")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw MailError(.tlsFailed, "SSL_new failed: \(Self.errorQueueText())")
        }
        // From here `session.deinit` frees both handles on every path.
        let session = TLSSession(context: context, ssl: ssl, socket: socket)
        guard SSL_set_fd(ssl, socket.descriptor) == 1 else {
            throw MailError(.tlsFailed, "SSL_set_fd failed: \(Self.errorQueueText())")
        }
        if Self.isIPAddress(host) {
            // No SNI for addresses (RFC 6066 §3); match the address against the IP SANs.
            if verify, gh_ssl_expect_ip(ssl, host) != 1 {
                throw MailError(.tlsFailed, "cannot set the expected IP address \(host): \(Self.errorQueueText())")
            }
        } else {
            guard gh_ssl_set_sni(ssl, host) == 1 else {
                throw MailError(.tlsFailed, "cannot set the TLS server name \(host): \(Self.errorQueueText())")
            }
            if verify, SSL_set1_host(ssl, host) != 1 {
                throw MailError(.tlsFailed, "cannot set the expected host name \(host): \(Self.errorQueueText())")
            }
        }
        while true {
            ERR_clear_error()
            let result = SSL_connect(ssl)
            if result == 1 { return session }
            let error = SSL_get_error(ssl, result)
            switch error {
            case SSL_ERROR_WANT_READ:
                try socket.wait(for: Int16(POLLIN), until: deadline, step: "in the TLS handshake")
            case SSL_ERROR_WANT_WRITE:
                try socket.wait(for: Int16(POLLOUT), until: deadline, step: "in the TLS handshake")
            default:
                let verifyResult = SSL_get_verify_result(ssl)
                if verify && verifyResult != X509_V_OK {
                    let reason = String(cString: X509_verify_cert_error_string(verifyResult))
                    throw MailError(.tlsFailed, "the SMTP server's certificate was not accepted: \(reason) (use tls_verify=false only for test servers)")
                }
                if error == SSL_ERROR_SYSCALL {
                    // The connection itself broke mid-handshake (the server went away): a
                    // transport failure worth retrying, not a TLS verdict.
                    throw MailError(.connectionFailed, "the connection failed during the TLS handshake: \(Self.describe(error: error, result: result))")
                }
                throw MailError(.tlsFailed, "the TLS handshake failed: \(Self.describe(error: error, result: result))")
            }
        }
    }

    /// Reads what is available (at least one byte), waiting until `deadline`.
    func read(into buffer: inout [UInt8], until deadline: ContinuousClock.Instant, step: String) throws(MailError) -> Int {
        while true {
            ERR_clear_error()
            let count = buffer.withUnsafeMutableBytes { SSL_read(self.ssl, $0.baseAddress, Int32(clamping: $0.count)) }
            if count > 0 { return Int(count) }
            let error = SSL_get_error(self.ssl, count)
            switch error {
            case SSL_ERROR_WANT_READ: try self.socket.wait(for: Int16(POLLIN), until: deadline, step: step)
            case SSL_ERROR_WANT_WRITE: try self.socket.wait(for: Int16(POLLOUT), until: deadline, step: step)
            case SSL_ERROR_ZERO_RETURN: throw MailError(.connectionFailed, "the server closed the TLS connection while \(step)")
            default: throw MailError(.connectionFailed, "TLS read failed while \(step): \(Self.describe(error: error, result: count))")
            }
        }
    }

    /// Writes all of `bytes`, waiting until `deadline`. SSL_write is retried with the same
    /// buffer after WANT_* as OpenSSL requires.
    func write(_ bytes: [UInt8], until deadline: ContinuousClock.Instant, step: String) throws(MailError) {
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let count = bytes.withUnsafeBytes {
                SSL_write(self.ssl, $0.baseAddress! + offset, Int32(clamping: $0.count - offset))
            }
            if count > 0 {
                offset += Int(count)
                continue
            }
            let error = SSL_get_error(self.ssl, count)
            switch error {
            case SSL_ERROR_WANT_READ: try self.socket.wait(for: Int16(POLLIN), until: deadline, step: step)
            case SSL_ERROR_WANT_WRITE: try self.socket.wait(for: Int16(POLLOUT), until: deadline, step: step)
            default: throw MailError(.connectionFailed, "TLS write failed while \(step): \(Self.describe(error: error, result: count))")
            }
        }
    }

    /// Sends close_notify without waiting for the server's (we close the socket right after).
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(self.ssl)
    }

    private static func isIPAddress(_ host: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    }

    private static func describe(error: Int32, result: Int32) -> String {
        if error == SSL_ERROR_SYSCALL {
            let queued = self.errorQueueText()
            if queued != "no details" { return queued }
            return result == 0 ? "the server closed the connection" : TCPSocket.errorText(errno)
        }
        return self.errorQueueText()
    }

    /// The OpenSSL error queue of this thread as text, emptied.
    private static func errorQueueText() -> String {
        var messages: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return messages.isEmpty ? "no details" : messages.joined(separator: "; ")
    }
}
