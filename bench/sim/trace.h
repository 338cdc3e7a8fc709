/*
 * trace.h — a strict reader for the Alibaba GPU cluster trace 2023 ("openb")
 * CSV files: node lists (sn, cpu_milli, memory_mib, gpu, model) and pod lists
 * (name, cpu_milli, memory_mib, num_gpu, gpu_milli, and optionally gpu_spec and
 * any other columns, which are ignored).
 *
 * How it works: the whole file is in memory; the header names the columns
 * (any order, each name once, the required ones present); every following line
 * must have exactly as many fields as the header, integers in range, and no
 * quotes. Anything else is rejected with the line number and the reason in
 * err — a benchmark on a half-read trace is worse than no benchmark. CRLF line
 * ends and a missing final newline are accepted. gpu_spec is a `|`-separated
 * list of GPU models, each of which must exist in the node list.
 *
 * Lives in bench/sim (not scheduler/) because it parses files; the scheduler
 * stays pure.
 */
#ifndef CAPX_BENCH_SIM_TRACE_H
#define CAPX_BENCH_SIM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"
#include "scheduler/cluster.h"
#include "scheduler/job.h"

#define TRACE_MAX_CPU  INT64_C(100000000)  /* 100,000 cores in milli */
#define TRACE_MAX_MEM  INT64_C(1073741824) /* 1 PiB in MiB */
#define TRACE_MAX_ROWS 10000000            /* rows per file */

/* One node as listed. */
struct trace_node {
    char *name;  /* sn */
    int model;   /* model id in the cluster's table, -1 for CPU-only */
    int ngpu;    /* gpu */
    int64_t cpu; /* cpu_milli */
    int64_t mem; /* memory_mib */
};

/* One pod as listed; spec.id is its row index (0-based), spec.models from gpu_spec. */
struct trace_pod {
    char *name;           /* name */
    struct job_spec spec; /* gpus, gpu_milli, cpu, mem, models; not a gang; spot */
};

/* Parses a node list; model names are interned into c (nodes are not added:
 * the caller adds them in whatever order it wants). 0 with *nodes and *n set, or -1. */
MUSTCHECK int trace_parse_nodes(const char *text, size_t len, struct cluster *c,
                                struct trace_node **nodes, size_t *n, char *err, size_t errlen);

/* Parses a pod list against the models known to c. 0 with *pods and *n set, or -1. */
MUSTCHECK int trace_parse_pods(const char *text, size_t len, const struct cluster *c,
                               struct trace_pod **pods, size_t *n, char *err, size_t errlen);

/* Reads a whole file into memory (NUL-terminated). 0, or -1 with the reason. */
MUSTCHECK int trace_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);

void trace_nodes_free(struct trace_node *nodes, size_t n);
void trace_pods_free(struct trace_pod *pods, size_t n);

#endif
