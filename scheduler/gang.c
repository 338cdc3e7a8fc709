/*
 * gang.c — gang placement: fewest racks, whole nodes first, NVLink islands kept
 * whole. See gang.h for the order of preference.
 */
#include <stdlib.h>
#include <string.h>

#include "scheduler/gang.h"

int gang_node_capacity(const struct cluster_node *n, const struct job_spec *j)
{
    if (!cluster_node_usable(n) || !job_accepts_model(j, n->model))
        return 0;
    int k = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (cluster_gpu_usable(n, g) && n->gpu_free[g] == CLUSTER_GPU_MILLI)
            k++;
    int64_t cpu, mem;
    job_gang_share(j, &cpu, &mem);
    if (cpu > 0 && n->cpu_free / cpu < k)
        k = (int)(n->cpu_free / cpu);
    if (mem > 0 && n->mem_free / mem < k)
        k = (int)(n->mem_free / mem);
    return k;
}

/* Free usable GPUs in island i of node n, as a mask. */
static uint32_t island_free(const struct cluster_node *n, int i)
{
    uint32_t m = 0;
    for (int g = i * n->island; g < (i + 1) * n->island; g++)
        if (cluster_gpu_usable(n, g) && n->gpu_free[g] == CLUSTER_GPU_MILLI)
            m |= 1u << g;
    return m;
}

uint32_t gang_free_mask(const struct cluster_node *n)
{
    uint32_t m = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (cluster_gpu_usable(n, g) && n->gpu_free[g] == CLUSTER_GPU_MILLI)
            m |= 1u << g;
    return m;
}

int gang_most_free_node(const struct cluster *c, uint32_t first, uint32_t last, int *nfree)
{
    int best = -1;
    *nfree = 0;
    for (uint32_t i = first; i < last && i < c->nnodes; i++) {
        int f = __builtin_popcount(gang_free_mask(&c->nodes[i]));
        if (f > *nfree) {
            best = (int)i;
            *nfree = f;
        }
    }
    return best;
}

/* Lowest `k` set bits of m. */
static uint32_t low_bits(uint32_t m, int k)
{
    uint32_t out = 0;
    while (k-- > 0 && m) {
        uint32_t b = m & -m;
        out |= b;
        m &= ~b;
    }
    return out;
}

uint32_t gang_pick_gpus(const struct cluster_node *n, int k)
{
    if (k <= 0 || n->ngpu == 0)
        return 0;
    int nisl = n->ngpu / n->island;
    uint32_t free_m[CLUSTER_MAX_GPUS];
    int cnt[CLUSTER_MAX_GPUS], total = 0;
    for (int i = 0; i < nisl; i++) {
        free_m[i] = island_free(n, i);
        cnt[i] = __builtin_popcount(free_m[i]);
        total += cnt[i];
    }
    if (total < k)
        return 0;
    uint32_t mask = 0;
    int left = k;
    uint8_t used[CLUSTER_MAX_GPUS] = {0};
    while (left > 0) {
        /* the island with the fewest free GPUs that still holds what is left */
        int best = -1;
        for (int i = 0; i < nisl; i++)
            if (!used[i] && cnt[i] >= left && (best < 0 || cnt[i] < cnt[best]))
                best = i;
        if (best < 0) /* nothing holds the rest: take the island with most free */
            for (int i = 0; i < nisl; i++)
                if (!used[i] && cnt[i] > 0 && (best < 0 || cnt[i] > cnt[best]))
                    best = i;
        CAPX_ASSERT(best >= 0);
        int take = cnt[best] < left ? cnt[best] : left;
        mask |= low_bits(free_m[best], take);
        used[best] = 1;
        left -= take;
    }
    return mask;
}

struct rack_room {
    int rack;
    int64_t room;
};

static int cmp_room_desc(const void *x, const void *y)
{
    const struct rack_room *a = x, *b = y;
    if (a->room != b->room)
        return a->room > b->room ? -1 : 1;
    return a->rack - b->rack;
}

/* Whether `k` GPUs fit inside one island of node n. */
static int fits_island(const struct cluster_node *n, int k)
{
    for (int i = 0; i < n->ngpu / n->island; i++)
        if (__builtin_popcount(island_free(n, i)) >= k)
            return 1;
    return 0;
}

int gang_choose(const struct cluster *c, const struct job_spec *j, struct cluster_alloc *out,
                uint32_t *nout)
{
    int ret = -1;
    int *cap = NULL;
    struct rack_room *rooms = NULL;
    uint8_t *in_rack = NULL, *taken = NULL;
    *nout = 0;
    if (!j->gang || j->gpus <= 0 || c->nnodes == 0)
        goto done;
    cap = xcalloc(c->nnodes, sizeof(*cap));
    rooms = xcalloc((size_t)c->nracks + 1, sizeof(*rooms));
    in_rack = xcalloc((size_t)c->nracks + 1, 1);
    taken = xcalloc(c->nnodes, 1);
    int64_t total = 0;
    for (int r = 0; r < c->nracks; r++)
        rooms[r].rack = r;
    for (uint32_t i = 0; i < c->nnodes; i++) {
        cap[i] = gang_node_capacity(&c->nodes[i], j);
        rooms[c->nodes[i].rack].room += cap[i];
        total += cap[i];
    }
    if (total < j->gpus)
        goto done;

    /* 1. racks */
    int single = -1;
    for (int r = 0; r < c->nracks; r++)
        if (rooms[r].room >= j->gpus && (single < 0 || rooms[r].room < rooms[single].room))
            single = r;
    if (single >= 0) {
        in_rack[single] = 1;
    } else {
        qsort(rooms, (size_t)c->nracks, sizeof(*rooms), cmp_room_desc);
        int64_t got = 0;
        for (int r = 0; r < c->nracks && got < j->gpus; r++) {
            in_rack[rooms[r].rack] = 1;
            got += rooms[r].room;
        }
    }

    int64_t cpu, mem;
    job_gang_share(j, &cpu, &mem);
    int left = j->gpus;
    /* 2. whole free nodes, largest first */
    for (;;) {
        int best = -1;
        for (uint32_t i = 0; i < c->nnodes; i++) {
            const struct cluster_node *n = &c->nodes[i];
            if (taken[i] || !in_rack[n->rack] || cap[i] == 0 || cap[i] != n->ngpu || n->ngpu > left)
                continue;
            if (best < 0 || n->ngpu > c->nodes[best].ngpu)
                best = (int)i;
        }
        if (best < 0)
            break;
        const struct cluster_node *n = &c->nodes[best];
        out[*nout] = (struct cluster_alloc){(uint32_t)best, gang_pick_gpus(n, n->ngpu),
                                            CLUSTER_GPU_MILLI, cpu * n->ngpu, mem * n->ngpu};
        (*nout)++;
        taken[best] = 1;
        left -= n->ngpu;
    }
    /* 3. the rest: tightest node, inside one island if possible */
    while (left > 0) {
        int best = -1, best_isl = 0;
        for (uint32_t i = 0; i < c->nnodes; i++) {
            const struct cluster_node *n = &c->nodes[i];
            if (taken[i] || !in_rack[n->rack] || cap[i] < left)
                continue;
            int isl = fits_island(n, left);
            if (best < 0 || isl > best_isl || (isl == best_isl && cap[i] < cap[best])) {
                best = (int)i;
                best_isl = isl;
            }
        }
        int k = left;
        if (best < 0) { /* spread: most room first */
            for (uint32_t i = 0; i < c->nnodes; i++)
                if (!taken[i] && in_rack[c->nodes[i].rack] && cap[i] > 0 &&
                    (best < 0 || cap[i] > cap[best]))
                    best = (int)i;
            CAPX_ASSERT(best >= 0);
            k = cap[best];
        }
        const struct cluster_node *n = &c->nodes[best];
        uint32_t mask = gang_pick_gpus(n, k);
        CAPX_ASSERT(__builtin_popcount(mask) == k);
        out[*nout] =
            (struct cluster_alloc){(uint32_t)best, mask, CLUSTER_GPU_MILLI, cpu * k, mem * k};
        (*nout)++;
        taken[best] = 1;
        left -= k;
    }
    ret = 0;
done:
    free(taken);
    free(in_rack);
    free(rooms);
    free(cap);
    return ret;
}
