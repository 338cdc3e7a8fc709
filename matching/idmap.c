/*
 * idmap.c — see idmap.h. Backward-shift deletion keeps probe runs short without
 * tombstones, so a long add/cancel stream never degrades the table.
 */
#include "matching/idmap.h"

#include <stdlib.h>
#include <string.h>

void idmap_init(idmap *m, uint32_t min_buckets)
{
    uint32_t b = 16;
    while (b < min_buckets)
        b <<= 1;
    m->slots = xcalloc(b, sizeof(*m->slots));
    m->mask = b - 1;
    m->n = 0;
}

void idmap_free(idmap *m)
{
    free(m->slots);
    m->slots = NULL;
}

uint32_t idmap_get(const idmap *m, uint64_t key)
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
