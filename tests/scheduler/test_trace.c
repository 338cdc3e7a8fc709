/*
 * test_trace.c — scheduler.trace_reader: the strict CSV reader of capx-sim on
 * every malformed input we could think of (each must be rejected with the
 * right line number and reason), on the accepted variants (gpu_spec,
 * fractional gpu_milli, the five-column multigpu files, CRLF, no final
 * newline, CPU-only nodes), and on the real trace files when given their
 * folder as argv[1].
 */
#include <stdio.h>

#include "tests/test.h"

#include "bench/sim/trace.h"

static const char *NODES_OK = "sn,cpu_milli,memory_mib,gpu,model\n"
                              "n0,64000,262144,2,P100\n"
                              "n1,96000,393216,8,G2\n"
                              "n2,32000,131072,0,\n"
                              "n3,104000,524288,2,T4\n";

/* Expects a node list to be rejected with `want` somewhere in the message. */
static void node_bad(const char *text, const char *want)
{
    struct cluster c;
    struct trace_node *n = (struct trace_node *)1;
    size_t nn = 99;
    char err[256] = "";
    cluster_init(&c);
    CHECK(trace_parse_nodes(text, strlen(text), &c, &n, &nn, err, sizeof(err)) < 0);
    CHECK(n == NULL && nn == 0);
    if (!strstr(err, want)) {
        fprintf(stderr, "FAIL nodes: wanted \"%s\" in \"%s\"\n", want, err);
        test_failures++;
    }
    cluster_free(&c);
}

static void pod_bad(const char *text, const char *want)
{
    struct cluster c;
    struct trace_node *n;
    struct trace_pod *p = (struct trace_pod *)1;
    size_t nn, np = 99;
    char err[256] = "";
    cluster_init(&c);
    CHECK(trace_parse_nodes(NODES_OK, strlen(NODES_OK), &c, &n, &nn, err, sizeof(err)) == 0);
    CHECK(trace_parse_pods(text, strlen(text), &c, &p, &np, err, sizeof(err)) < 0);
    CHECK(p == NULL && np == 0);
    if (!strstr(err, want)) {
        fprintf(stderr, "FAIL pods: wanted \"%s\" in \"%s\"\n", want, err);
        test_failures++;
    }
    trace_nodes_free(n, nn);
    cluster_free(&c);
}

static void nodes_malformed(void)
{
    node_bad("", "empty file");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\n", "no nodes");
    node_bad("sn,cpu_milli,memory_mib,gpu\nn0,1,1,1\n", "missing column 'model'");
    node_bad("sn,cpu_milli,memory_mib,gpu,model,gpu\n", "appears twice");
    node_bad("sn,cpu_milli,,gpu,model\n", "empty column name");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1\n", "line 2: 4 fields");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1,T4,x\n", "line 2: 6 fields");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1,1,T4\nn1,-5,1,1,T4\n",
             "line 3: column cpu_milli is negative");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,99999999999999999999999,1,T4\n",
             "line 2: column memory_mib is too large");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,200000000,1,1,T4\n", "too large");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,12a,1,1,T4\n", "not an integer");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1.5,1,1,T4\n", "not an integer");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0, 15,1,1,T4\n", "not an integer");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,+15,1,1,T4\n", "not an integer");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,,1,1,T4\n", "column cpu_milli is empty");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,17,T4\n", "column gpu is too large");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,2,\n", "needs a model");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,0,T4\n", "without GPUs has a model");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1,T 4\n", "bad GPU model");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1,\"T4\"\n", "quoted");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1,T4\n\nn1,1,1,1,T4\n",
             "line 3: empty line");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\n,1,1,1,T4\n", "column sn is empty");
    node_bad("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,1,T4\nn0,1,1,1,T4\n", "duplicate node");
    static const char nul[] = "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1\0,1,T4\n";
    struct cluster c;
    struct trace_node *n;
    size_t nn;
    char err[256];
    cluster_init(&c);
    CHECK(trace_parse_nodes(nul, sizeof(nul) - 1, &c, &n, &nn, err, sizeof(err)) < 0);
    CHECK(strstr(err, "line 2") != NULL);
    cluster_free(&c);
    /* more models than a job's bitmask can name */
    char many[8192];
    size_t off = (size_t)snprintf(many, sizeof(many), "sn,cpu_milli,memory_mib,gpu,model\n");
    for (int i = 0; i < CLUSTER_MAX_MODELS + 1; i++)
        off += (size_t)snprintf(many + off, sizeof(many) - off, "n%d,1,1,1,M%d\n", i, i);
    node_bad(many, "more than 32 models");
}

static void nodes_ok(void)
{
    struct cluster c;
    struct trace_node *n;
    size_t nn;
    char err[256];
    cluster_init(&c);
    CHECK(trace_parse_nodes(NODES_OK, strlen(NODES_OK), &c, &n, &nn, err, sizeof(err)) == 0);
    CHECK_EQ_I64(nn, 4);
    CHECK_EQ_I64(c.nmodels, 3);
    CHECK_STR(n[1].name, "n1");
    CHECK_EQ_I64(n[1].ngpu, 8);
    CHECK_EQ_I64(n[1].cpu, 96000);
    CHECK_EQ_I64(n[1].mem, 393216);
    CHECK_STR(c.models[n[1].model], "G2");
    CHECK_EQ_I64(n[2].model, -1);
    trace_nodes_free(n, nn);
    cluster_free(&c);
    /* CRLF, columns in another order, no final newline */
    const char *crlf = "model,gpu,sn,memory_mib,cpu_milli\r\nA10,1,x,1024,8000\r\nA10,1,y,1,1";
    cluster_init(&c);
    CHECK(trace_parse_nodes(crlf, strlen(crlf), &c, &n, &nn, err, sizeof(err)) == 0);
    CHECK_EQ_I64(nn, 2);
    if (nn == 2) {
        CHECK_STR(n[1].name, "y");
        CHECK_EQ_I64(n[0].cpu, 8000);
    }
    trace_nodes_free(n, nn);
    cluster_free(&c);
}

static void pods_malformed(void)
{
    const char *h = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n";
    char buf[512];
#define POD(rows, want)                                                                            \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), "%s%s", h, rows);                                               \
        pod_bad(buf, want);                                                                        \
    } while (0)
    pod_bad("", "empty file");
    pod_bad(h, "no pods");
    pod_bad("name,cpu_milli,memory_mib,gpu_milli\np,1,1,1\n", "missing column 'num_gpu'");
    pod_bad("name,cpu_milli,num_gpu,gpu_milli\np,1,1,1\n", "missing column 'memory_mib'");
    POD("p0,1,1,1,1000,\np1,1,1,1,1000\n", "line 3: 5 fields");
    POD("p0,-1,1,1,1000,\n", "line 2: column cpu_milli is negative");
    POD("p0,1,-1,1,1000,\n", "memory_mib is negative");
    POD("p0,1,1,-1,1000,\n", "num_gpu is negative");
    POD("p0,1,1,1,-500,\n", "gpu_milli is negative");
    POD("p0,1,1,1,1001,\n", "gpu_milli is too large");
    POD("p0,1,1,99,1000,\n", "num_gpu is too large");
    POD("p0,18446744073709551617,1,1,1000,\n", "cpu_milli is too large");
    POD("p0,1,1,2,500,\n", "needs num_gpu 1");
    POD("p0,1,1,0,500,\n", "without GPUs");
    POD("p0,1,1,1,0,\n", "with gpu_milli 0");
    POD("p0,1,1,1,1000,H100\n", "unknown GPU model 'H100' in gpu_spec");
    POD("p0,1,1,1,1000,T4|H100\n", "unknown GPU model 'H100'");
    POD("p0,1,1,1,1000,T4||P100\n", "empty model name");
    POD("p0,1,1,1,1000,T4|\n", "ends with '|'");
    POD("p0,1,1,1,1000,|T4\n", "empty model name");
    POD("p0,1,1,1,1000,\np0,1,1,1,1000,\n", "duplicate pod name 'p0'");
    POD("p0,1,1,1,1000,\n,1,1,1,1000,\n", "line 3: column name is empty");
    POD("p0,1,1,1,abc,\n", "not an integer");
    POD("p0,1,1,1,1000,\n\n", "line 3: empty line");
#undef POD
}

static void pods_ok(void)
{
    struct cluster c;
    struct trace_node *n;
    struct trace_pod *p;
    size_t nn, np;
    char err[256];
    cluster_init(&c);
    CHECK(trace_parse_nodes(NODES_OK, strlen(NODES_OK), &c, &n, &nn, err, sizeof(err)) == 0);
    const char *full = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase\n"
                       "a,6000,12288,1,460,,LS,Running\n"
                       "b,12000,16384,1,1000,T4|P100,BE,Failed\n"
                       "c,88000,327680,8,1000,G2,LS,Running\n"
                       "d,4000,8192,0,0,,BE,Pending\n";
    CHECK(trace_parse_pods(full, strlen(full), &c, &p, &np, err, sizeof(err)) == 0);
    CHECK_EQ_I64(np, 4);
    if (np == 4) {
        CHECK_EQ_I64(p[0].spec.gpu_milli, 460);
        CHECK_EQ_I64(p[0].spec.models, 0);
        int t4 = cluster_model_find(&c, "T4", 2), p100 = cluster_model_find(&c, "P100", 4);
        CHECK_EQ_I64(p[1].spec.models, (1u << t4) | (1u << p100));
        CHECK_EQ_I64(p[2].spec.gpus, 8);
        CHECK_EQ_I64(p[2].spec.cpu_milli, 88000);
        CHECK_EQ_I64(p[3].spec.gpus, 0);
        CHECK_STR(p[3].name, "d");
        CHECK(job_validate(&p[2].spec, err, sizeof(err)) == 0);
    }
    trace_pods_free(p, np);
    const char *five = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\nx,1,2,4,1000\ny,3,4,1,50";
    CHECK(trace_parse_pods(five, strlen(five), &c, &p, &np, err, sizeof(err)) == 0);
    CHECK_EQ_I64(np, 2);
    if (np == 2)
        CHECK_EQ_I64(p[1].spec.gpu_milli, 50);
    trace_pods_free(p, np);
    trace_nodes_free(n, nn);
    cluster_free(&c);
}

/* The real files: all rows read, totals as published. */
static void real_files(const char *dir)
{
    char path[1024], err[256];
    char *text;
    size_t len, nn, np;
    struct cluster c;
    struct trace_node *n;
    struct trace_pod *p;
    cluster_init(&c);
    snprintf(path, sizeof(path), "%s/openb_node_list_gpu_node.csv", dir);
    CHECK(trace_read_file(path, &text, &len, err, sizeof(err)) == 0);
    CHECK(trace_parse_nodes(text, len, &c, &n, &nn, err, sizeof(err)) == 0);
    free(text);
    CHECK_EQ_I64(nn, 1213);
    int64_t gpus = 0;
    for (size_t i = 0; i < nn; i++)
        gpus += n[i].ngpu;
    CHECK_EQ_I64(gpus, 6212);
    static const struct {
        const char *file;
        size_t rows;
    } pods[] = {{"openb_pod_list_default.csv", 8152}, {"openb_pod_list_multigpu50.csv", 9061}};
    for (size_t k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, pods[k].file);
        CHECK(trace_read_file(path, &text, &len, err, sizeof(err)) == 0);
        int rc = trace_parse_pods(text, len, &c, &p, &np, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", path, err);
        CHECK(rc == 0);
        CHECK_EQ_I64(np, pods[k].rows);
        free(text);
        trace_pods_free(p, np);
    }
    trace_nodes_free(n, nn);
    cluster_free(&c);
    CHECK(trace_read_file("/nonexistent/capx.csv", &text, &len, err, sizeof(err)) < 0);
    CHECK(strstr(err, "/nonexistent/capx.csv") != NULL);
}

int main(int argc, char **argv)
{
    nodes_malformed();
    nodes_ok();
    pods_malformed();
    pods_ok();
    if (argc > 1)
        real_files(argv[1]);
    return TEST_DONE();
}
