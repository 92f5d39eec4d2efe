#ifndef GATEHOUSE_CLIBCRYPTO_SHIM_H
#define GATEHOUSE_CLIBCRYPTO_SHIM_H

// The HMAC fast path keeps prepared inner/outer digest states and copies them per call,
// which needs the low-level SHA*_CTX API. OpenSSL 3 marks it deprecated but still ships it
// (it is what the EVP providers call underneath); silence the warnings here, in one place.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/opensslv.h>
#include <sys/random.h>
#include <errno.h>

/// Fills `buf` from the kernel CSPRNG (getrandom(2), blocking only until the pool is
/// initialised at boot). Returns 0 on success, -1 on failure. Loops over short reads and EINTR.
static inline int gh_getrandom(void *buf, size_t len) {
    unsigned char *p = (unsigned char *)buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/// The `selection` for `EVP_PKEY_fromdata` that imports a public key with its domain parameters.
/// `EVP_PKEY_PUBLIC_KEY` is a macro built from other macros with `|`, which Swift does not import.
static inline int gh_evp_pkey_public_key_selection(void) {
    return EVP_PKEY_PUBLIC_KEY;
}

/// The `selection` for `EVP_PKEY_fromdata` that imports domain parameters only (same reason).
static inline int gh_evp_pkey_key_parameters_selection(void) {
    return EVP_PKEY_KEY_PARAMETERS;
}

#endif
