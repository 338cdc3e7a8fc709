/*
 * soldmap.h — GPUs sold per pool-hour, stored sparsely.
 *
 * A pool's hours are cut into blocks of 64. A block that every fill covered
 * whole is one number (`add`); only a block that a fill covered in part gets a
 * dense chunk of 64 counters, taken from a shared arena and given back when the
 * block becomes uniform again. Each block also keeps its maximum, so the
 * largest sale over a long range costs one read per block. Blocks before the
 * first the pool ever sold are not stored at all, and blocks wholly in the past
 * are trimmed. Sales only grow (a contract is never unsold).
 */
#ifndef CAPX_MATCHING_SOLDMAP_H
#define CAPX_MATCHING_SOLDMAP_H

#include "common/capx.h"

#define SOLD_BLOCK_SHIFT 6
#define SOLD_BLOCK       (1 << SOLD_BLOCK_SHIFT) /* hours per block */

typedef struct sold_block {
    int32_t add;    /* GPUs sold in every hour of the block */
    int32_t max;    /* add + the largest dense counter */
    uint32_t dense; /* 1 + chunk index in the arena, or 0: no per-hour part */
} sold_block;

/* Dense chunks shared by every pool of an engine. */
typedef struct sold_arena {
    int32_t (*chunks)[SOLD_BLOCK]; /* chunk storage, grown geometrically */
    uint32_t n, cap;               /* chunks handed out (incl. freed), capacity */
    uint32_t *free;                /* freed chunk indices */
    uint32_t nfree, free_cap;      /* */
} sold_arena;

typedef struct soldmap {
    sold_block *blocks; /* blocks[i] is block base + i */
    int64_t base;       /* block number of blocks[0] */
    uint32_t n, cap;    /* blocks stored, capacity */
} soldmap;

void sold_arena_init(sold_arena *a);
void sold_arena_free(sold_arena *a);
size_t sold_arena_memory(const sold_arena *a);

void soldmap_init(soldmap *m);
void soldmap_free(soldmap *m, sold_arena *a);
size_t soldmap_memory(const soldmap *m);

/* Add q GPUs sold to every hour of [from, to). */
void soldmap_add(soldmap *m, sold_arena *a, int64_t from, int64_t to, int32_t q);
/* The most GPUs sold in any hour of [from, to) (from < to). */
int32_t soldmap_max(const soldmap *m, const sold_arena *a, int64_t from, int64_t to);
/* out[h - from] = GPUs sold in hour h, for h in [from, to). */
void soldmap_hourly(const soldmap *m, const sold_arena *a, int64_t from, int64_t to, int32_t *out);
int32_t soldmap_get(const soldmap *m, const sold_arena *a, int64_t hour);
/* Forget the blocks that end at or before `hour`. */
void soldmap_trim(soldmap *m, sold_arena *a, int64_t hour);
/* Hour after the last stored block (0 when empty). */
int64_t soldmap_end(const soldmap *m);

#endif
