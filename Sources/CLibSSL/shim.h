#ifndef GATEHOUSE_CLIBSSL_SHIM_H
#define GATEHOUSE_CLIBSSL_SHIM_H

// OpenSSL's libssl for STARTTLS in GatehouseMail. Several of the calls a TLS client needs are
// macros over SSL_ctrl/SSL_CTX_ctrl, which Swift cannot import; the static inline wrappers below
// give them real signatures (the same approach as GRDB's SQLite shim).

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/// Refuses anything older than TLS 1.2 (SSL_CTX_set_min_proto_version is a macro).
static inline int gh_ssl_ctx_require_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

/// Sends the server name (SNI) in the ClientHello (SSL_set_tlsext_host_name is a macro).
static inline int gh_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// Tells the certificate check to match an IP address against the certificate's IP SANs
/// (SSL_set1_host only matches DNS names).
static inline int gh_ssl_expect_ip(SSL *ssl, const char *address) {
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address);
}

#endif
