/*
 * ids.h — random, prefixed ids (acct_…, ord_…) and API keys (capx_ + 32 base32), and the
 * SHA-256 hash under which a key is stored. Randomness from OpenSSL's CSPRNG.
 */
#ifndef CAPX_COMMON_IDS_H
#define CAPX_COMMON_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"

#define CAPX_KEY_LEN     37 /* "capx_" + 32 */
#define CAPX_ID_RAND_LEN 20 /* base32 characters after the prefix (100 bits) */

/* buf gets prefix + 20 base32 characters + NUL; size at least strlen(prefix) + 21. */
void capx_id_new(const char *prefix, char *buf, size_t size);
/* A fresh API key into buf[CAPX_KEY_LEN + 1]. */
void capx_key_new(char buf[CAPX_KEY_LEN + 1]);
/* 1 when s matches ^capx_[a-z2-7]{32}$. */
int capx_key_wellformed(const char *s, size_t len);
/* SHA-256 of the key text. */
void capx_key_hash(const char *key, size_t len, unsigned char out[32]);
/* Constant-time comparison of n bytes. */
int capx_ct_equal(const void *a, const void *b, size_t n);

#endif
