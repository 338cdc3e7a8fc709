/*
 * test_soldmap.c — the sparse sold map and the id maps (idmap, seqmap) against
 * the obvious dense array and linear list, on random operations.
 */
#include "matching/idmap.h"
#include "matching/soldmap.h"
#include "tests/test.h"

#define H 4096

static uint64_t st = 88172645463325252ULL;
static uint64_t rnd(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return st;
}

static void soldmap_random(void)
{
    static int32_t dense[H];
    static int32_t out[H];
    sold_arena a;
    sold_arena_init(&a);
    soldmap m;
    soldmap_init(&m);
    memset(dense, 0, sizeof(dense));
    int64_t trimmed = 0;
    for (int it = 0; it < 20000; it++) {
        int op = (int)(rnd() % 10);
        int64_t from = trimmed + (int64_t)(rnd() % (H - trimmed));
        int64_t len = 1 + (int64_t)(rnd() % (rnd() % 4 ? 70 : 900));
        int64_t to = from + len > H ? H : from + len;
        if (op < 5) {
            int32_t q = 1 + (int32_t)(rnd() % 5);
            soldmap_add(&m, &a, from, to, q);
            for (int64_t h = from; h < to; h++)
                dense[h] += q;
        } else if (op < 8) {
            int32_t mx = 0;
            for (int64_t h = from; h < to; h++)
                mx = dense[h] > mx ? dense[h] : mx;
            CHECK_EQ_I64(soldmap_max(&m, &a, from, to), mx);
        } else if (op < 9) {
            soldmap_hourly(&m, &a, from, to, out);
            bool same = true;
            for (int64_t h = from; h < to; h++)
                same &= out[h - from] == dense[h];
            CHECK(same);
            CHECK_EQ_I64(soldmap_get(&m, &a, from), dense[from]);
        } else if (it % 50 == 0 && trimmed < H - 1000) {
            trimmed += 64 + (int64_t)(rnd() % 100);
            soldmap_trim(&m, &a, trimmed);
            for (int64_t h = (trimmed >> SOLD_BLOCK_SHIFT) << SOLD_BLOCK_SHIFT; h < H; h++)
                if (soldmap_get(&m, &a, h) != dense[h]) {
                    CHECK(!"trim lost an hour that matters");
                    break;
                }
        }
    }
    /* whole blocks covered fold back to one number: no dense chunk left */
    soldmap m2;
    soldmap_init(&m2);
    soldmap_add(&m2, &a, 10, 100, 3);
    soldmap_add(&m2, &a, 0, 10, 3);
    soldmap_add(&m2, &a, 100, 128, 3);
    CHECK(m2.n == 2 && m2.blocks[0].dense == 0 && m2.blocks[1].dense == 0);
    CHECK_EQ_I64(soldmap_max(&m2, &a, 0, 128), 3);
    soldmap_free(&m2, &a);
    soldmap_free(&m, &a);
    sold_arena_free(&a);
}

static void idmap_random(void)
{
    enum { N = 5000 };
    static uint64_t keys[N];
    static bool in[N];
    idmap m;
    idmap_init(&m, 4);
    for (int i = 0; i < N; i++)
        keys[i] = (rnd() % 100000) * 1024 + (uint64_t)i + 1; /* distinct, clustered hashes */
    for (int it = 0; it < 200000; it++) {
        int i = (int)(rnd() % N);
        if (in[i] && rnd() % 2) {
            idmap_del(&m, keys[i]);
            in[i] = false;
        } else if (!in[i]) {
            idmap_put(&m, keys[i], (uint32_t)i);
            in[i] = true;
        }
        int j = (int)(rnd() % N);
        uint32_t v = idmap_get(&m, keys[j]);
        if (in[j] ? v != (uint32_t)j : v != IDMAP_NONE) {
            CHECK(!"idmap lookup wrong");
            break;
        }
    }
    idmap_free(&m);
}

/*
 * seqmap: ids handed out in sequence with some living long (so that later ids find their front
 * bucket taken and go behind it, and leave it again), plus ids from a caller that does not
 * count (equal low bits); every operation of the interface against a flag array.
 */
static void seqmap_random(void)
{
    enum { N = 20000 };
    static uint64_t keys[N];
    static bool in[N];
    static uint32_t val[N];
    seqmap m;
    seqmap_init(&m, 4);
    for (int i = 0; i < N; i++)
        keys[i] = i < N / 2 ? (uint64_t)i + 1                                      /* in sequence */
                            : ((uint64_t)(rnd() % 50) << 32) + 4096 * (uint64_t)i; /* clustered */
    int live = 0, next = 0, bad = 0;
    for (int it = 0; it < 400000 && !bad; it++) {
        int op = (int)(rnd() % 8);
        int i = op < 3 ? (next < N / 2 ? next : (int)(rnd() % N)) : (int)(rnd() % N);
        if (op < 3) { /* upsert (the next id in sequence, mostly) */
            if (i == next)
                next++;
            bool existed;
            uint32_t *v = seqmap_upsert(&m, keys[i], &existed);
            bad |= existed != in[i] || (existed && *v != val[i]);
            if (!existed) {
                val[i] = (uint32_t)(rnd() % 1000000);
                *v = val[i];
                in[i] = true;
                live++;
            }
        } else if (op == 3 && !in[i]) { /* put */
            val[i] = (uint32_t)i;
            seqmap_put(&m, keys[i], val[i]);
            in[i] = true;
            live++;
        } else if (op == 4 && in[i]) { /* del */
            seqmap_del(&m, keys[i]);
            in[i] = false;
            live--;
        } else if (op >= 5 && (rnd() % 4 != 0 || live > 3000)) { /* take (absent ids too) */
            uint32_t v = seqmap_take(&m, keys[i]);
            bad |= in[i] ? v != val[i] : v != IDMAP_NONE;
            if (in[i])
                live--;
            in[i] = false;
        }
        int j = (int)(rnd() % N);
        uint32_t v = seqmap_get(&m, keys[j]);
        bad |= in[j] ? v != val[j] : v != IDMAP_NONE;
        bad |= m.fn + m.back.n != (uint32_t)live;
    }
    CHECK(!bad);
    CHECK(m.back.n > 0 || !"the ids never went behind the front: the test misses that path");
    seqmap_free(&m);
}

int main(void)
{
    soldmap_random();
    idmap_random();
    seqmap_random();
    return TEST_DONE();
}
