/*
 * idmap.h — the caller's 64-bit ids to the engine's 32-bit slot indices.
 * Open addressing with linear probing and backward-shift deletion; the table
 * doubles at 50 % load, so lookups stay one or two cache lines. Id 0 is never
 * stored (it marks an empty bucket).
 */
#ifndef CAPX_MATCHING_IDMAP_H
#define CAPX_MATCHING_IDMAP_H

#include "common/capx.h"

#define IDMAP_NONE UINT32_MAX

typedef struct idmap_slot {
    uint64_t key;  /* the caller's id; 0 = empty */
    uint32_t val;  /* engine slot index */
    uint32_t hash; /* idmap_hash(key): deletion's backward shift needs every home bucket */
} idmap_slot;

typedef struct idmap {
    idmap_slot *slots; /* 2^k buckets */
    uint32_t mask;     /* buckets - 1 */
    uint32_t n;        /* ids stored */
} idmap;

void idmap_init(idmap *m, uint32_t min_buckets);
void idmap_free(idmap *m);
uint32_t idmap_get(const idmap *m, uint64_t key);     /* IDMAP_NONE when absent */
void idmap_put(idmap *m, uint64_t key, uint32_t val); /* key must be absent and non-zero */
void idmap_del(idmap *m, uint64_t key);               /* key must be present */
/* The value slot of key, inserted (value IDMAP_NONE) when absent; *existed says which. The
 * pointer is valid until the next put or upsert. */
uint32_t *idmap_upsert(idmap *m, uint64_t key, bool *existed);
/* Remove key and return its value, or IDMAP_NONE when absent (one probe). */
uint32_t idmap_take(idmap *m, uint64_t key);
size_t idmap_memory(const idmap *m);

static inline uint32_t idmap_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

#endif
