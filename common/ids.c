/*
 * ids.c — see ids.h. base32 (RFC 4648 lower case) over bytes from RAND_bytes; a failing
 * CSPRNG is fatal, never a weaker fallback.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/ids.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static void random_b32(char *out, size_t nchars)
{
    unsigned char raw[64];
    CAPX_ASSERT(nchars <= sizeof raw);
    if (RAND_bytes(raw, (int)nchars) != 1)
        capx_fatal("RAND_bytes failed");
    for (size_t i = 0; i < nchars; i++)
        out[i] = b32[raw[i] & 31];
    OPENSSL_cleanse(raw, sizeof raw);
}

void capx_id_new(const char *prefix, char *buf, size_t size)
{
    size_t pl = strlen(prefix);
    CAPX_ASSERT(size >= pl + CAPX_ID_RAND_LEN + 1);
    memcpy(buf, prefix, pl);
    random_b32(buf + pl, CAPX_ID_RAND_LEN);
    buf[pl + CAPX_ID_RAND_LEN] = '\0';
}

void capx_key_new(char buf[CAPX_KEY_LEN + 1])
{
    memcpy(buf, "capx_", 5);
    random_b32(buf + 5, 32);
    buf[CAPX_KEY_LEN] = '\0';
}

int capx_key_wellformed(const char *s, size_t len)
{
    if (len != CAPX_KEY_LEN || memcmp(s, "capx_", 5) != 0)
        return 0;
    for (size_t i = 5; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
            return 0;
    return 1;
}

void capx_key_hash(const char *key, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        capx_fatal("SHA-256 failed");
}

int capx_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
