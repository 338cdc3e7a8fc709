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

/* The value of key, IDMAP_NONE when absent. */
static inline uint32_t idmap_get(const idmap *m, uint64_t key)
{
    uint32_t i = idmap_hash(key) & m->mask;
    for (;;) {
        const idmap_slot *s = &m->slots[i];
        if (s->key == key)
            return s->val;
        if (s->key == 0)
            return IDMAP_NONE;
        i = (i + 1) & m->mask;
    }
}

/*
 * seqmap: the same interface, for ids handed out in sequence (the server numbers its objects
 * 1, 2, 3, ...). A direct-mapped front (bucket = the id's low bits) holds every live id whose
 * bucket is free, so while the live ids span fewer ids than it has buckets a lookup is one
 * read and a removal one write, with no probing and no shifting; an id whose bucket is taken
 * (a long-lived one from a lap ago, or any id at all from a caller that does not count)
 * goes to an idmap behind it. The front doubles when the two together fill half of it.
 */
typedef struct seqmap {
    idmap_slot *front; /* 2^k buckets; key 0 = empty; hash: how many ids of the bucket are behind */
    uint32_t fmask;    /* buckets - 1 */
    uint32_t fn;       /* ids in the front */
    idmap back;        /* the rest */
} seqmap;

void seqmap_init(seqmap *m, uint32_t min_buckets);
void seqmap_free(seqmap *m);
void seqmap_put(seqmap *m, uint64_t key, uint32_t val); /* key must be absent and non-zero */
void seqmap_del(seqmap *m, uint64_t key);               /* key must be present */
uint32_t *seqmap_upsert_slow(seqmap *m, uint64_t key, bool *existed);
uint32_t seqmap_take_slow(seqmap *m, uint64_t key); /* key is not in its front bucket */
size_t seqmap_memory(const seqmap *m);

static inline uint32_t seqmap_get(const seqmap *m, uint64_t key)
{
    const idmap_slot *s = &m->front[key & m->fmask];
    if (s->key == key && key != 0)
        return s->val;
    return s->hash ? idmap_get(&m->back, key) : IDMAP_NONE; /* hash: ids of the bucket behind */
}

/* The value slot of key, inserted (IDMAP_NONE) when absent; *existed says which. Valid until the
 * next put or upsert. The usual case (a new id whose bucket is free, nothing behind it, no growth
 * due) is inline. */
static inline uint32_t *seqmap_upsert(seqmap *m, uint64_t key, bool *existed)
{
    idmap_slot *s = &m->front[key & m->fmask];
    if (s->key == 0 && s->hash == 0 && key != 0 && (m->fn + m->back.n + 1) * 2 <= m->fmask + 1) {
        s->key = key;
        s->val = IDMAP_NONE;
        m->fn++;
        *existed = false;
        return &s->val;
    }
    return seqmap_upsert_slow(m, key, existed);
}

/* Remove key and return its value, or IDMAP_NONE when absent. */
static inline uint32_t seqmap_take(seqmap *m, uint64_t key)
{
    idmap_slot *s = &m->front[key & m->fmask];
    if (s->key == key && key != 0) {
        uint32_t v = s->val;
        s->key = 0;
        s->val = 0;
        m->fn--;
        return v;
    }
    return seqmap_take_slow(m, key);
}

#endif
