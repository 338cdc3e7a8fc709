/*
 * soldmap.c — see soldmap.h. Hours are >= 0 (the engine checks), so a block
 * number is hour >> SOLD_BLOCK_SHIFT and the offset is hour & 63.
 */
#include "matching/soldmap.h"

#include <stdlib.h>
#include <string.h>

void sold_arena_init(sold_arena *a)
{
    memset(a, 0, sizeof(*a));
}

void sold_arena_free(sold_arena *a)
{
    free(a->chunks);
    free(a->free);
    memset(a, 0, sizeof(*a));
}

size_t sold_arena_memory(const sold_arena *a)
{
    return (size_t)a->cap * sizeof(*a->chunks) + (size_t)a->free_cap * sizeof(uint32_t);
}

static uint32_t chunk_get(sold_arena *a)
{
    uint32_t i;
    if (a->nfree > 0) {
        i = a->free[--a->nfree];
    } else {
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 256;
            a->chunks = xrealloc(a->chunks, (size_t)a->cap * sizeof(*a->chunks));
        }
        i = a->n++;
    }
    memset(a->chunks[i], 0, sizeof(a->chunks[i]));
    return i;
}

static void chunk_put(sold_arena *a, uint32_t i)
{
    if (a->nfree == a->free_cap) {
        a->free_cap = a->free_cap ? a->free_cap * 2 : 256;
        a->free = xrealloc(a->free, (size_t)a->free_cap * sizeof(uint32_t));
    }
    a->free[a->nfree++] = i;
}

void soldmap_init(soldmap *m)
{
    memset(m, 0, sizeof(*m));
}

void soldmap_free(soldmap *m, sold_arena *a)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->blocks[i].dense)
            chunk_put(a, m->blocks[i].dense - 1);
    free(m->blocks);
    memset(m, 0, sizeof(*m));
}

size_t soldmap_memory(const soldmap *m)
{
    return (size_t)m->cap * sizeof(sold_block);
}

int64_t soldmap_end(const soldmap *m)
{
    return m->n ? (m->base + m->n) << SOLD_BLOCK_SHIFT : 0;
}

/* Make blocks [b0, b1] exist (zeroed when new). */
static void ensure_blocks(soldmap *m, int64_t b0, int64_t b1)
{
    if (m->n == 0) {
        m->base = b0;
    }
    int64_t lo = b0 < m->base ? b0 : m->base;
    int64_t hi_cur = m->n ? m->base + m->n - 1 : b1;
    int64_t hi = b1 > hi_cur ? b1 : hi_cur;
    int64_t need = hi - lo + 1;
    CAPX_ASSERT(need > 0 && need < (1 << 24));
    if ((uint32_t)need > m->cap) {
        uint32_t nc = m->cap ? m->cap : 8;
        while (nc < (uint32_t)need)
            nc *= 2;
        m->blocks = xrealloc(m->blocks, (size_t)nc * sizeof(sold_block));
        m->cap = nc;
    }
    if (lo < m->base && m->n) {
        uint32_t shift = (uint32_t)(m->base - lo);
        memmove(m->blocks + shift, m->blocks, (size_t)m->n * sizeof(sold_block));
        memset(m->blocks, 0, (size_t)shift * sizeof(sold_block));
        m->n += shift;
        m->base = lo;
    }
    uint32_t want = (uint32_t)(hi - m->base + 1);
    if (want > m->n) {
        memset(m->blocks + m->n, 0, (size_t)(want - m->n) * sizeof(sold_block));
        m->n = want;
    }
}

void soldmap_add(soldmap *m, sold_arena *a, int64_t from, int64_t to, int32_t q)
{
    CAPX_ASSERT(from >= 0 && from < to && q > 0);
    int64_t b0 = from >> SOLD_BLOCK_SHIFT, b1 = (to - 1) >> SOLD_BLOCK_SHIFT;
    ensure_blocks(m, b0, b1);
    for (int64_t b = b0; b <= b1; b++) {
        sold_block *blk = &m->blocks[b - m->base];
        int64_t bs = b << SOLD_BLOCK_SHIFT;
        int lo = from > bs ? (int)(from - bs) : 0;
        int hi = to < bs + SOLD_BLOCK ? (int)(to - bs) : SOLD_BLOCK;
        if (lo == 0 && hi == SOLD_BLOCK) {
            blk->add += q;
            blk->max += q;
            continue;
        }
        if (!blk->dense)
            blk->dense = chunk_get(a) + 1;
        int32_t *d = a->chunks[blk->dense - 1];
        for (int i = lo; i < hi; i++)
            d[i] += q;
        int32_t mx = d[0], mn = d[0];
        for (int i = 1; i < SOLD_BLOCK; i++) {
            mx = d[i] > mx ? d[i] : mx;
            mn = d[i] < mn ? d[i] : mn;
        }
        if (mn == mx) { /* uniform again: fold into add, give the chunk back */
            blk->add += mn;
            chunk_put(a, blk->dense - 1);
            blk->dense = 0;
            blk->max = blk->add;
        } else {
            blk->max = blk->add + mx;
        }
    }
}

int32_t soldmap_get(const soldmap *m, const sold_arena *a, int64_t hour)
{
    int64_t b = hour >> SOLD_BLOCK_SHIFT;
    if (m->n == 0 || b < m->base || b >= m->base + m->n)
        return 0;
    const sold_block *blk = &m->blocks[b - m->base];
    return blk->add + (blk->dense ? a->chunks[blk->dense - 1][hour & (SOLD_BLOCK - 1)] : 0);
}

int32_t soldmap_max(const soldmap *m, const sold_arena *a, int64_t from, int64_t to)
{
    if (m->n == 0)
        return 0;
    int64_t b0 = from >> SOLD_BLOCK_SHIFT, b1 = (to - 1) >> SOLD_BLOCK_SHIFT;
    if (b0 < m->base)
        b0 = m->base;
    if (b1 > m->base + m->n - 1)
        b1 = m->base + m->n - 1;
    int32_t best = 0;
    for (int64_t b = b0; b <= b1; b++) {
        const sold_block *blk = &m->blocks[b - m->base];
        if (blk->max <= best)
            continue;
        int64_t bs = b << SOLD_BLOCK_SHIFT;
        int lo = from > bs ? (int)(from - bs) : 0;
        int hi = to < bs + SOLD_BLOCK ? (int)(to - bs) : SOLD_BLOCK;
        if ((lo == 0 && hi == SOLD_BLOCK) || !blk->dense) {
            int32_t v = blk->dense ? blk->max : blk->add;
            best = v > best ? v : best;
            continue;
        }
        const int32_t *d = a->chunks[blk->dense - 1];
        int32_t mx = d[lo];
        for (int i = lo + 1; i < hi; i++)
            mx = d[i] > mx ? d[i] : mx;
        mx += blk->add;
        best = mx > best ? mx : best;
    }
    return best;
}

void soldmap_hourly(const soldmap *m, const sold_arena *a, int64_t from, int64_t to, int32_t *out)
{
    int64_t h = from;
    while (h < to) {
        int64_t b = h >> SOLD_BLOCK_SHIFT;
        int64_t bs = b << SOLD_BLOCK_SHIFT;
        int64_t stop = bs + SOLD_BLOCK < to ? bs + SOLD_BLOCK : to;
        int32_t *o = out + (h - from);
        int cnt = (int)(stop - h);
        if (m->n == 0 || b < m->base || b >= m->base + m->n) {
            memset(o, 0, (size_t)cnt * sizeof(int32_t));
        } else {
            const sold_block *blk = &m->blocks[b - m->base];
            if (blk->dense) {
                const int32_t *d = a->chunks[blk->dense - 1] + (h - bs);
                for (int i = 0; i < cnt; i++)
                    o[i] = blk->add + d[i];
            } else {
                for (int i = 0; i < cnt; i++)
                    o[i] = blk->add;
            }
        }
        h = stop;
    }
}

void soldmap_trim(soldmap *m, sold_arena *a, int64_t hour)
{
    if (m->n == 0)
        return;
    int64_t keep = hour >> SOLD_BLOCK_SHIFT; /* first block that still matters */
    if (keep <= m->base)
        return;
    uint32_t drop = keep - m->base >= m->n ? m->n : (uint32_t)(keep - m->base);
    for (uint32_t i = 0; i < drop; i++)
        if (m->blocks[i].dense)
            chunk_put(a, m->blocks[i].dense - 1);
    memmove(m->blocks, m->blocks + drop, (size_t)(m->n - drop) * sizeof(sold_block));
    m->n -= drop;
    m->base += drop;
    if (m->n == 0)
        m->base = 0;
}
