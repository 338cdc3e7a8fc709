/*
 * cluster.h — the hardware model of one pool: nodes with a GPU model, 1–16 GPUs
 * each shared in thousandths (milli), CPU in milli-cores and memory in MiB,
 * grouped in racks (an interconnect domain), with health per node and per GPU.
 *
 * How it works: a cluster is a flat array of nodes; a node's index is its place
 * in the fixed tie-break order every policy uses ("earliest node wins"). The
 * cluster only keeps counters: which job holds what is the placer's business
 * (place.h). cluster_take/cluster_give are the only ways capacity moves and they
 * assert that nothing is ever oversubscribed or returned twice. Every change to
 * a node bumps its version so policies can cache per-node scores.
 *
 * Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_CLUSTER_H
#define CAPX_SCHEDULER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"

#define CLUSTER_GPU_MILLI  1000 /* one whole GPU in milli */
#define CLUSTER_MAX_GPUS   16   /* GPUs per node, at most */
#define CLUSTER_MAX_MODELS 32   /* distinct GPU models per cluster (a job's bitmask) */
#define CLUSTER_MODEL_LEN  32   /* bytes of a model name, NUL included */
#define CLUSTER_MAX_NODES  (1u << 20)
#define CLUSTER_MAX_CPU    (INT64_C(1) << 40) /* sanity bound on per-node CPU milli */
#define CLUSTER_MAX_MEM    (INT64_C(1) << 40) /* sanity bound on per-node memory MiB */

/* Health of a node or a GPU. Draining: keeps what runs, takes nothing new. */
enum cluster_health {
    CLUSTER_UP = 0,
    CLUSTER_FAILED = 1,
    CLUSTER_DRAINING = 2,
};

/* What a caller states to add a node. */
struct cluster_node_spec {
    int model;         /* GPU model id from cluster_model(); -1 for a CPU-only node */
    int ngpu;          /* GPUs on the node, 0..16 (0 only for CPU-only nodes) */
    int island;        /* GPUs per NVLink island; 0 means the whole node is one island */
    int rack;          /* rack (interconnect domain) id, >= 0 */
    int64_t cpu_milli; /* CPU capacity in milli-cores */
    int64_t mem_mib;   /* memory capacity in MiB */
};

struct cluster_node {
    int16_t model;                        /* GPU model id, -1 for CPU-only */
    uint8_t ngpu;                         /* GPUs on the node */
    uint8_t island;                       /* GPUs per NVLink island (divides ngpu) */
    uint8_t health;                       /* enum cluster_health of the node */
    uint8_t gpu_health[CLUSTER_MAX_GPUS]; /* enum cluster_health of each GPU */
    int32_t rack;                         /* rack id */
    int32_t gpu_free[CLUSTER_MAX_GPUS];   /* milli not held by any job, per GPU */
    int64_t cpu_cap, cpu_free;            /* CPU milli: capacity, not held */
    int64_t mem_cap, mem_free;            /* memory MiB: capacity, not held */
    uint32_t version;                     /* bumped on every change of this node */
    uint32_t holders;                     /* allocations currently on this node */
};

/* What one job holds on one node: `milli` of each GPU in gpu_mask, plus CPU and
 * memory. A placed job is a list of these (one per node it touches). */
struct cluster_alloc {
    uint32_t node;     /* node index */
    uint32_t gpu_mask; /* bit g: GPU g of the node */
    int32_t milli;     /* milli taken from each GPU in gpu_mask */
    int64_t cpu;       /* CPU milli taken on the node */
    int64_t mem;       /* memory MiB taken on the node */
};

struct cluster {
    struct cluster_node *nodes;                         /* in tie-break order */
    uint32_t *versions;                                 /* nodes[i].version, packed for scans */
    uint32_t nnodes, cap;                               /* used, allocated */
    char models[CLUSTER_MAX_MODELS][CLUSTER_MODEL_LEN]; /* model names by id */
    int nmodels;                                        /* models interned */
    int nracks;                                         /* 1 + highest rack id */
    int64_t gpu_milli_total;                            /* Σ ngpu × 1000 over all nodes */
};

void cluster_init(struct cluster *c);
void cluster_free(struct cluster *c);

/* The id of GPU model `name`, interning it if new; -1 if the name is empty, too
 * long, has characters other than [A-Za-z0-9_.-], or the table is full. */
MUSTCHECK int cluster_model(struct cluster *c, const char *name, size_t len);
/* The id of an already-known model, or -1. */
int cluster_model_find(const struct cluster *c, const char *name, size_t len);

/* Appends a node; returns its index (>= 0) or -1 with the reason in err. */
MUSTCHECK int cluster_add_node(struct cluster *c, const struct cluster_node_spec *spec, char *err,
                               size_t errlen);

/* Node and GPU health changes. They only change the flag: evicting the jobs
 * that ran there is done by place_node_fail / place_gpu_fail. */
void cluster_set_node_health(struct cluster *c, uint32_t node, enum cluster_health h);
void cluster_set_gpu_health(struct cluster *c, uint32_t node, int gpu, enum cluster_health h);

/* Whether new work may land on the node / on one of its GPUs. */
static inline int cluster_node_usable(const struct cluster_node *n)
{
    return n->health == CLUSTER_UP;
}
static inline int cluster_gpu_usable(const struct cluster_node *n, int g)
{
    return n->health == CLUSTER_UP && n->gpu_health[g] == CLUSTER_UP;
}

/* Moves capacity: gpu_mask says which GPUs, each losing (or regaining) `milli`.
 * Asserts (also in release builds) that nothing goes negative or above capacity. */
void cluster_take(struct cluster *c, uint32_t node, uint32_t gpu_mask, int32_t milli, int64_t cpu,
                  int64_t mem);
void cluster_give(struct cluster *c, uint32_t node, uint32_t gpu_mask, int32_t milli, int64_t cpu,
                  int64_t mem);

static inline void cluster_take_alloc(struct cluster *c, const struct cluster_alloc *a)
{
    cluster_take(c, a->node, a->gpu_mask, a->milli, a->cpu, a->mem);
}
static inline void cluster_give_alloc(struct cluster *c, const struct cluster_alloc *a)
{
    cluster_give(c, a->node, a->gpu_mask, a->milli, a->cpu, a->mem);
}

/* Σ milli held by jobs over the whole cluster (capacity minus free, healthy or not). */
int64_t cluster_gpu_milli_used(const struct cluster *c);

#endif
