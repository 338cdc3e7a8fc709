/*
 * cluster.c — the hardware model: nodes, models, racks, health and the two
 * functions that move capacity. See cluster.h for the contract.
 */
#include <stdlib.h>
#include <string.h>

#include "scheduler/cluster.h"

void cluster_init(struct cluster *c)
{
    memset(c, 0, sizeof(*c));
}

void cluster_free(struct cluster *c)
{
    free(c->nodes);
    free(c->versions);
    memset(c, 0, sizeof(*c));
}

static int model_name_ok(const char *name, size_t len)
{
    if (len == 0 || len >= CLUSTER_MODEL_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int cluster_model_find(const struct cluster *c, const char *name, size_t len)
{
    if (len == 0 || len >= CLUSTER_MODEL_LEN)
        return -1;
    for (int i = 0; i < c->nmodels; i++)
        if (strlen(c->models[i]) == len && memcmp(c->models[i], name, len) == 0)
            return i;
    return -1;
}

int cluster_model(struct cluster *c, const char *name, size_t len)
{
    if (!model_name_ok(name, len))
        return -1;
    int id = cluster_model_find(c, name, len);
    if (id >= 0)
        return id;
    if (c->nmodels >= CLUSTER_MAX_MODELS)
        return -1;
    memcpy(c->models[c->nmodels], name, len);
    c->models[c->nmodels][len] = '\0';
    return c->nmodels++;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) {
        size_t n = strlen(msg);
        if (n >= errlen)
            n = errlen - 1;
        memcpy(err, msg, n);
        err[n] = '\0';
    }
}

int cluster_add_node(struct cluster *c, const struct cluster_node_spec *s, char *err, size_t errlen)
{
    if (c->nnodes >= CLUSTER_MAX_NODES) {
        set_err(err, errlen, "too many nodes");
        return -1;
    }
    if (s->ngpu < 0 || s->ngpu > CLUSTER_MAX_GPUS) {
        set_err(err, errlen, "gpus per node must be 0..16");
        return -1;
    }
    if ((s->ngpu == 0) != (s->model < 0) || s->model >= c->nmodels) {
        set_err(err, errlen, "a node has a known GPU model exactly when it has GPUs");
        return -1;
    }
    int island = s->island ? s->island : s->ngpu;
    if (s->ngpu > 0 && (island <= 0 || island > s->ngpu || s->ngpu % island != 0)) {
        set_err(err, errlen, "NVLink island size must divide the GPU count");
        return -1;
    }
    if (s->rack < 0 || s->rack > 1000000) {
        set_err(err, errlen, "rack id must be 0..1000000");
        return -1;
    }
    if (s->cpu_milli < 0 || s->cpu_milli > CLUSTER_MAX_CPU || s->mem_mib < 0 ||
        s->mem_mib > CLUSTER_MAX_MEM) {
        set_err(err, errlen, "cpu or memory out of range");
        return -1;
    }
    if (c->nnodes == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->nodes = xrealloc(c->nodes, (size_t)c->cap * sizeof(*c->nodes));
        c->versions = xrealloc(c->versions, (size_t)c->cap * sizeof(*c->versions));
    }
    struct cluster_node *n = &c->nodes[c->nnodes];
    memset(n, 0, sizeof(*n));
    n->model = (int16_t)s->model;
    n->ngpu = (uint8_t)s->ngpu;
    n->island = (uint8_t)(s->ngpu ? island : 0);
    n->rack = s->rack;
    for (int g = 0; g < s->ngpu; g++)
        n->gpu_free[g] = CLUSTER_GPU_MILLI;
    n->cpu_cap = n->cpu_free = s->cpu_milli;
    n->mem_cap = n->mem_free = s->mem_mib;
    if (s->rack + 1 > c->nracks)
        c->nracks = s->rack + 1;
    c->gpu_milli_total += (int64_t)s->ngpu * CLUSTER_GPU_MILLI;
    c->versions[c->nnodes] = 0;
    return (int)c->nnodes++;
}

/* Every change of a node goes through here: policies' caches key on it. */
static void bump(struct cluster *c, uint32_t node)
{
    c->versions[node] = ++c->nodes[node].version;
}

void cluster_set_node_health(struct cluster *c, uint32_t node, enum cluster_health h)
{
    CAPX_ASSERT(node < c->nnodes);
    c->nodes[node].health = (uint8_t)h;
    bump(c, node);
}

void cluster_set_gpu_health(struct cluster *c, uint32_t node, int gpu, enum cluster_health h)
{
    CAPX_ASSERT(node < c->nnodes);
    CAPX_ASSERT(gpu >= 0 && gpu < c->nodes[node].ngpu);
    c->nodes[node].gpu_health[gpu] = (uint8_t)h;
    bump(c, node);
}

void cluster_take(struct cluster *c, uint32_t node, uint32_t gpu_mask, int32_t milli, int64_t cpu,
                  int64_t mem)
{
    CAPX_ASSERT(node < c->nnodes);
    struct cluster_node *n = &c->nodes[node];
    CAPX_ASSERT(milli >= 0 && milli <= CLUSTER_GPU_MILLI && cpu >= 0 && mem >= 0);
    CAPX_ASSERT((gpu_mask >> n->ngpu) == 0);
    for (int g = 0; g < n->ngpu; g++) {
        if (gpu_mask & (1u << g)) {
            CAPX_ASSERT(n->gpu_free[g] >= milli);
            n->gpu_free[g] -= milli;
        }
    }
    CAPX_ASSERT(n->cpu_free >= cpu && n->mem_free >= mem);
    n->cpu_free -= cpu;
    n->mem_free -= mem;
    n->holders++;
    bump(c, node);
}

void cluster_give(struct cluster *c, uint32_t node, uint32_t gpu_mask, int32_t milli, int64_t cpu,
                  int64_t mem)
{
    CAPX_ASSERT(node < c->nnodes);
    struct cluster_node *n = &c->nodes[node];
    CAPX_ASSERT(milli >= 0 && milli <= CLUSTER_GPU_MILLI && cpu >= 0 && mem >= 0);
    CAPX_ASSERT((gpu_mask >> n->ngpu) == 0);
    for (int g = 0; g < n->ngpu; g++) {
        if (gpu_mask & (1u << g)) {
            CAPX_ASSERT(n->gpu_free[g] + milli <= CLUSTER_GPU_MILLI);
            n->gpu_free[g] += milli;
        }
    }
    CAPX_ASSERT(n->cpu_free + cpu <= n->cpu_cap && n->mem_free + mem <= n->mem_cap);
    CAPX_ASSERT(n->holders > 0);
    n->cpu_free += cpu;
    n->mem_free += mem;
    n->holders--;
    bump(c, node);
}

int64_t cluster_gpu_milli_used(const struct cluster *c)
{
    int64_t used = 0;
    for (uint32_t i = 0; i < c->nnodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        for (int g = 0; g < n->ngpu; g++)
            used += CLUSTER_GPU_MILLI - n->gpu_free[g];
    }
    return used;
}
