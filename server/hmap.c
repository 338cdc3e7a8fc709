/* hmap.c — see hmap.h. FNV-1a hashing; grows at 70 % occupancy (tombstones included). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/capx.h"
#include "server/hmap.h"

static char tomb_marker;
#define HMAP_TOMB (&tomb_marker)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void hmap_init(struct hmap *m)
{
    memset(m, 0, sizeof *m);
}

void hmap_free(struct hmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != HMAP_TOMB)
            free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static struct hmap_slot *find(const struct hmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        struct hmap_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != HMAP_TOMB && !strcmp(s->key, key))
            return s;
    }
}

static void grow(struct hmap *m)
{
    struct hmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    while (old.len * 2 >= m->cap)
        m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->len = m->used = 0;
    for (size_t i = 0; i < old.cap; i++) {
        struct hmap_slot *s = &old.slots[i];
        if (s->key && s->key != HMAP_TOMB) {
            size_t mask = m->cap - 1, j = hash(s->key) & mask;
            while (m->slots[j].key)
                j = (j + 1) & mask;
            m->slots[j] = *s;
            m->len++;
            m->used++;
        }
    }
    free(old.slots);
}

void *hmap_get(const struct hmap *m, const char *key)
{
    struct hmap_slot *s = find(m, key);
    return s ? s->val : NULL;
}

void *hmap_put(struct hmap *m, const char *key, void *val)
{
    struct hmap_slot *s = find(m, key);
    if (s) {
        void *old = s->val;
        s->val = val;
        return old;
    }
    if ((m->used + 1) * 10 >= m->cap * 7)
        grow(m);
    size_t mask = m->cap - 1, i = hash(key) & mask;
    while (m->slots[i].key && m->slots[i].key != HMAP_TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = xstrdup(key);
    m->slots[i].val = val;
    m->len++;
    return NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
    struct hmap_slot *s = find(m, key);
    if (!s)
        return NULL;
    void *v = s->val;
    free(s->key);
    s->key = HMAP_TOMB;
    s->val = NULL;
    m->len--;
    return v;
}

int hmap_next(const struct hmap *m, size_t *i, const char **key, void **val)
{
    while (*i < m->cap) {
        struct hmap_slot *s = &m->slots[(*i)++];
        if (s->key && s->key != HMAP_TOMB) {
            *key = s->key;
            *val = s->val;
            return 1;
        }
    }
    return 0;
}
