/*
 * tls.c — see tls.h.
 *
 * Ticket keys: a ring of two {name, AES-256 key, HMAC-SHA256 key}. New tickets are sealed
 * with the current key; a ticket under the previous key is accepted and re-issued
 * (return 2 from the callback); any other ticket is refused, which falls back to a full
 * handshake. The ring is process-wide so tickets survive a certificate reload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "server/tls.h"

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int valid;
};

static struct ticket_key tkeys[2]; /* [0] current, [1] previous */
static SSL_CTX *current_ctx;
static char *cert_file, *key_file;

static void new_key(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof k->name) != 1 || RAND_bytes(k->aes, sizeof k->aes) != 1 ||
        RAND_bytes(k->hmac, sizeof k->hmac) != 1)
        capx_fatal("RAND_bytes failed for a session ticket key");
    k->valid = 1;
}

void tls_rotate_ticket_keys(void)
{
    tkeys[1] = tkeys[0];
    new_key(&tkeys[0]);
}

static int set_hmac(EVP_MAC_CTX *hctx, unsigned char *key)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket callback: 1 ok, 2 ok but renew, 0 no such key, -1 error. */
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    UNUSED(s);
    if (enc) {
        struct ticket_key *k = &tkeys[0];
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(key_name, k->name, 16);
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 ||
            set_hmac(hctx, k->hmac) != 1)
            return -1;
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        struct ticket_key *k = &tkeys[i];
        if (!k->valid || memcmp(key_name, k->name, 16) != 0)
            continue;
        if (set_hmac(hctx, k->hmac) != 1 ||
            EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
            return -1;
        return i == 0 ? 1 : 2;
    }
    return 0;
}

static void ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, e ? buf : "unknown error");
    ERR_clear_error();
}

static SSL_CTX *build_ctx(char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
        ssl_err(err, errlen, "cipher list");
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) != 1) {
        ssl_err(err, errlen, "TLS 1.3 ciphersuites");
        goto fail;
    }
    if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        ssl_err(err, errlen, "groups");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_err(err, errlen, "certificate file");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, errlen, "private key file");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errlen, "private key does not match the certificate");
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_init(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    cert_file = xstrdup(cert_path);
    key_file = xstrdup(key_path);
    new_key(&tkeys[0]);
    current_ctx = build_ctx(err, errlen);
    return current_ctx ? 0 : -1;
}

SSL_CTX *tls_ctx(void)
{
    return current_ctx;
}

int tls_reload(char *err, size_t errlen)
{
    SSL_CTX *n = build_ctx(err, errlen);
    if (!n)
        return -1;
    SSL_CTX_free(current_ctx); /* open connections hold their own reference */
    current_ctx = n;
    return 0;
}

void tls_shutdown(void)
{
    SSL_CTX_free(current_ctx);
    current_ctx = NULL;
    free(cert_file);
    free(key_file);
    cert_file = key_file = NULL;
    OPENSSL_cleanse(tkeys, sizeof tkeys);
}
