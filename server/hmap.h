/*
 * hmap.h — a string-keyed hash map (open addressing, linear probing, power-of-two
 * capacity, tombstones on delete). Keys are copied; values are the caller's pointers.
 */
#ifndef CAPX_SERVER_HMAP_H
#define CAPX_SERVER_HMAP_H

#include <stddef.h>

struct hmap_slot {
    char *key; /* NULL empty; HMAP_TOMB deleted */
    void *val;
};

struct hmap {
    struct hmap_slot *slots;
    size_t cap, len, used; /* used counts tombstones too */
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
void *hmap_get(const struct hmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *hmap_put(struct hmap *m, const char *key, void *val);
void *hmap_del(struct hmap *m, const char *key);
/* Iterate: for (size_t i = 0; hmap_next(m, &i, &k, &v);) */
int hmap_next(const struct hmap *m, size_t *i, const char **key, void **val);

#endif
