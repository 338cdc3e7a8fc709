/*
 * tls.h — capxd's TLS context, after Mozilla's "intermediate" profile: TLS 1.2 and 1.3
 * only; for 1.2 only ECDHE suites with AES-GCM or ChaCha20-Poly1305; groups X25519, P-256,
 * P-384; no renegotiation, no compression; stateless session tickets encrypted with keys
 * capxd makes itself and rotates (the previous key still decrypts, and asks for renewal).
 *
 * tls_reload (SIGHUP) builds a new context from the certificate files and swaps it in for
 * new connections; open connections keep the context they started with.
 */
#ifndef CAPX_SERVER_TLS_H
#define CAPX_SERVER_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "common/capx.h"

#define TLS_CIPHERS_12                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS     "X25519:P-256:P-384"

MUSTCHECK int tls_init(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* The context for new connections (borrowed). */
SSL_CTX *tls_ctx(void);
/* Re-read the certificate and key; on failure the old context stays. */
MUSTCHECK int tls_reload(char *err, size_t errlen);
/* New current ticket key; the current one becomes the previous one. */
void tls_rotate_ticket_keys(void);
void tls_shutdown(void);

#endif
