/*
 * idmap.c — see idmap.h. Backward-shift deletion keeps probe runs short without
 * tombstones, so a long add/cancel stream never degrades the table.
 */
#include "matching/idmap.h"

#include <stdlib.h>
#include <string.h>

/* A table's bucket count: the least power of two >= min_buckets, at least 16. */
static uint32_t buckets_for(uint32_t min_buckets)
{
    uint32_t b = 16;
    while (b < min_buckets)
        b <<= 1;
    return b;
}

void idmap_init(idmap *m, uint32_t min_buckets)
{
    uint32_t b = buckets_for(min_buckets);
    m->slots = xcalloc(b, sizeof(*m->slots));
    m->mask = b - 1;
    m->n = 0;
}

void idmap_free(idmap *m)
{
    free(m->slots);
    m->slots = NULL;
}

static void idmap_insert(idmap_slot *slots, uint32_t mask, uint64_t key, uint32_t val, uint32_t h)
{
    uint32_t i = h & mask;
    while (slots[i].key != 0)
        i = (i + 1) & mask;
    slots[i] = (idmap_slot){key, val, h};
}

static void grow(idmap *m);
static inline void grow_if_needed(idmap *m)
{
    if ((m->n + 1) * 2 > m->mask + 1)
        grow(m);
}

void idmap_put(idmap *m, uint64_t key, uint32_t val)
{
    CAPX_ASSERT(key != 0);
    grow_if_needed(m);
    idmap_insert(m->slots, m->mask, key, val, idmap_hash(key));
    m->n++;
}

static void grow(idmap *m)
{
    uint32_t nb = (m->mask + 1) * 2;
    idmap_slot *ns = xcalloc(nb, sizeof(*ns));
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key)
            idmap_insert(ns, nb - 1, m->slots[i].key, m->slots[i].val, m->slots[i].hash);
    free(m->slots);
    m->slots = ns;
    m->mask = nb - 1;
}

uint32_t *idmap_upsert(idmap *m, uint64_t key, bool *existed)
{
    CAPX_ASSERT(key != 0);
    grow_if_needed(m);
    uint32_t h = idmap_hash(key), i = h & m->mask;
    for (;;) {
        idmap_slot *s = &m->slots[i];
        if (s->key == key) {
            *existed = true;
            return &s->val;
        }
        if (s->key == 0) {
            *s = (idmap_slot){key, IDMAP_NONE, h};
            m->n++;
            *existed = false;
            return &s->val;
        }
        i = (i + 1) & m->mask;
    }
}

static void del_at(idmap *m, uint32_t i);

uint32_t idmap_take(idmap *m, uint64_t key)
{
    uint32_t i = idmap_hash(key) & m->mask;
    for (;;) {
        if (m->slots[i].key == key) {
            uint32_t v = m->slots[i].val;
            del_at(m, i);
            return v;
        }
        if (m->slots[i].key == 0)
            return IDMAP_NONE;
        i = (i + 1) & m->mask;
    }
}

void idmap_del(idmap *m, uint64_t key)
{
    uint32_t i = idmap_hash(key) & m->mask;
    while (m->slots[i].key != key) {
        CAPX_ASSERT(m->slots[i].key != 0);
        i = (i + 1) & m->mask;
    }
    del_at(m, i);
}

static void del_at(idmap *m, uint32_t i)
{
    /* Backward shift: move later members of the run into the hole when their home allows. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & m->mask; m->slots[j].key != 0; j = (j + 1) & m->mask) {
        uint32_t home = m->slots[j].hash & m->mask;
        /* j may move to hole iff home is not in (hole, j] cyclically. */
        bool in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_between) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (idmap_slot){0, 0, 0};
    m->n--;
}

size_t idmap_memory(const idmap *m)
{
    return (size_t)(m->mask + 1) * sizeof(idmap_slot);
}

/* ---- seqmap ---- */

/* In the front, a slot's `hash` field counts the ids of its bucket that live behind it: when 0
 * (nearly always), an id whose bucket does not hold it is absent, without a probe behind. */

void seqmap_init(seqmap *m, uint32_t min_buckets)
{
    uint32_t b = buckets_for(min_buckets);
    m->front = xcalloc(b, sizeof(*m->front));
    m->fmask = b - 1;
    m->fn = 0;
    idmap_init(&m->back, 16);
}

void seqmap_free(seqmap *m)
{
    free(m->front);
    m->front = NULL;
    idmap_free(&m->back);
}

size_t seqmap_memory(const seqmap *m)
{
    return (size_t)(m->fmask + 1) * sizeof(*m->front) + idmap_memory(&m->back);
}

/* Place key (absent) in the front if its bucket is free, else behind it. */
static void seqmap_place(seqmap *m, uint64_t key, uint32_t val)
{
    idmap_slot *s = &m->front[key & m->fmask];
    if (s->key == 0) {
        s->key = key;
        s->val = val;
        m->fn++;
    } else {
        idmap_put(&m->back, key, val);
        s->hash++;
    }
}

static void seqmap_grow(seqmap *m)
{
    uint32_t ob = m->fmask + 1;
    idmap_slot *old = m->front;
    idmap oldback = m->back;
    m->front = xcalloc((size_t)ob * 2, sizeof(*m->front));
    m->fmask = ob * 2 - 1;
    m->fn = 0;
    idmap_init(&m->back, 16);
    for (uint32_t i = 0; i < ob; i++)
        if (old[i].key)
            seqmap_place(m, old[i].key, old[i].val);
    for (uint32_t i = 0; i <= oldback.mask; i++)
        if (oldback.slots[i].key)
            seqmap_place(m, oldback.slots[i].key, oldback.slots[i].val);
    free(old);
    idmap_free(&oldback);
}

static inline void seqmap_grow_if_needed(seqmap *m)
{
    if ((m->fn + m->back.n + 1) * 2 > m->fmask + 1)
        seqmap_grow(m);
}

void seqmap_put(seqmap *m, uint64_t key, uint32_t val)
{
    CAPX_ASSERT(key != 0 && seqmap_get(m, key) == IDMAP_NONE);
    seqmap_grow_if_needed(m);
    seqmap_place(m, key, val);
}

uint32_t *seqmap_upsert_slow(seqmap *m, uint64_t key, bool *existed)
{
    CAPX_ASSERT(key != 0);
    idmap_slot *s = &m->front[key & m->fmask];
    if (s->key == key) {
        *existed = true;
        return &s->val;
    }
    if (s->hash && idmap_get(&m->back, key) != IDMAP_NONE)
        return idmap_upsert(&m->back, key, existed); /* present behind the front */
    seqmap_grow_if_needed(m);
    s = &m->front[key & m->fmask];
    *existed = false;
    if (s->key != 0) { /* its bucket is taken: behind */
        s->hash++;
        return idmap_upsert(&m->back, key, existed);
    }
    s->key = key;
    s->val = IDMAP_NONE;
    m->fn++;
    return &s->val;
}

uint32_t seqmap_take_slow(seqmap *m, uint64_t key)
{
    idmap_slot *s = &m->front[key & m->fmask]; /* (seqmap_take looked in it) */
    if (s->hash == 0)
        return IDMAP_NONE;
    uint32_t v = idmap_take(&m->back, key);
    if (v != IDMAP_NONE)
        s->hash--;
    return v;
}

void seqmap_del(seqmap *m, uint64_t key)
{
    uint32_t v = seqmap_take(m, key);
    CAPX_ASSERT(v != IDMAP_NONE);
}
