/*
 * trace.c — strict CSV reader for the openb trace files; see trace.h.
 *
 * A line is split on commas into (pointer, length) fields without copying;
 * each required column is found by name in the header once, then every row
 * is checked field by field. Errors name the 1-based line and the column.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bench/sim/trace.h"

#define MAX_COLS 64

struct field {
    const char *s; /* start, not NUL-terminated */
    size_t n;      /* length */
};

struct reader {
    const char *p, *end; /* what is left of the text */
    int line;            /* 1-based number of the line last read */
};

PRINTF(3, 4) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Next line split into fields: 0, 1 at end of text, -1 on a malformed line. */
static int next_line(struct reader *r, struct field *f, int *nf, char *err, size_t errlen)
{
    if (r->p >= r->end)
        return 1;
    r->line++;
    const char *s = r->p, *e = memchr(s, '\n', (size_t)(r->end - s));
    r->p = e ? e + 1 : r->end;
    if (!e)
        e = r->end;
    if (e > s && e[-1] == '\r')
        e--;
    if (e == s)
        return fail(err, errlen, "line %d: empty line", r->line);
    int n = 0;
    const char *q = s;
    for (;;) {
        const char *c = q;
        while (c < e && *c != ',') {
            if (*c == '"')
                return fail(err, errlen, "line %d: quoted fields are not supported", r->line);
            if (*c == '\0' || *c == '\r')
                return fail(err, errlen, "line %d: control character in field %d", r->line, n + 1);
            c++;
        }
        if (n == MAX_COLS)
            return fail(err, errlen, "line %d: more than %d fields", r->line, MAX_COLS);
        f[n].s = q;
        f[n].n = (size_t)(c - q);
        n++;
        if (c == e)
            break;
        q = c + 1;
    }
    *nf = n;
    return 0;
}

static int field_is(const struct field *f, const char *name)
{
    return f->n == strlen(name) && memcmp(f->s, name, f->n) == 0;
}

/* Finds each name of `names` in the header; required ones must be there.
 * col[i] = field index or -1. */
static int map_header(const struct field *f, int nf, const char *const *names, int nnames,
                      int nrequired, int *col, int line, char *err, size_t errlen)
{
    for (int i = 0; i < nf; i++) {
        if (f[i].n == 0)
            return fail(err, errlen, "line %d: empty column name in header (column %d)", line,
                        i + 1);
        for (int k = 0; k < i; k++)
            if (f[k].n == f[i].n && memcmp(f[k].s, f[i].s, f[i].n) == 0)
                return fail(err, errlen, "line %d: column '%.*s' appears twice", line, (int)f[i].n,
                            f[i].s);
    }
    for (int k = 0; k < nnames; k++) {
        col[k] = -1;
        for (int i = 0; i < nf; i++)
            if (field_is(&f[i], names[k]))
                col[k] = i;
        if (col[k] < 0 && k < nrequired)
            return fail(err, errlen, "line %d: missing column '%s' in header", line, names[k]);
    }
    return 0;
}

/* A non-negative decimal integer in [0, max]. */
static int parse_int(const struct field *f, int64_t max, int64_t *out, const char *col, int line,
                     char *err, size_t errlen)
{
    if (f->n == 0)
        return fail(err, errlen, "line %d: column %s is empty", line, col);
    if (f->s[0] == '-')
        return fail(err, errlen, "line %d: column %s is negative: '%.*s'", line, col, (int)f->n,
                    f->s);
    int64_t v = 0;
    for (size_t i = 0; i < f->n; i++) {
        char ch = f->s[i];
        if (ch < '0' || ch > '9')
            return fail(err, errlen, "line %d: column %s is not an integer: '%.*s'", line, col,
                        (int)(f->n > 40 ? 40 : f->n), f->s);
        if (v > (max - (ch - '0')) / 10)
            return fail(err, errlen, "line %d: column %s is too large (max %lld): '%.*s'", line,
                        col, (long long)max, (int)(f->n > 40 ? 40 : f->n), f->s);
        v = v * 10 + (ch - '0');
    }
    *out = v;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The name of each of n items of size stride (a char * at name_off): at least one, no two the
 * same (checked on a sorted copy). items names the list in the message, item one of them. */
static int check_names(const void *items, size_t n, size_t stride, size_t name_off,
                       const char *list, const char *item, char *err, size_t errlen)
{
    if (n == 0)
        return fail(err, errlen, "no %s after the header", list);
    int ret = 0;
    char **s = xmalloc(n * sizeof(*s));
    for (size_t i = 0; i < n; i++)
        memcpy(&s[i], (const char *)items + i * stride + name_off, sizeof(char *));
    qsort(s, n, sizeof(*s), cmp_str);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(s[i - 1], s[i]) == 0) {
            ret = fail(err, errlen, "duplicate %s '%s'", item, s[i]);
            break;
        }
    }
    free(s);
    return ret;
}

int trace_parse_nodes(const char *text, size_t len, struct cluster *c, struct trace_node **nodes,
                      size_t *nout, char *err, size_t errlen)
{
    static const char *const names[] = {"sn", "cpu_milli", "memory_mib", "gpu", "model"};
    struct reader r = {text, text + len, 0};
    struct field f[MAX_COLS];
    int nf, hdr_nf, col[5];
    struct trace_node *v = NULL;
    size_t n = 0, cap = 0;
    *nodes = NULL;
    *nout = 0;
    int rc = next_line(&r, f, &hdr_nf, err, errlen);
    if (rc == 1)
        return fail(err, errlen, "empty file: no header line");
    if (rc < 0 || map_header(f, hdr_nf, names, 5, 5, col, r.line, err, errlen) < 0)
        return -1;
    while ((rc = next_line(&r, f, &nf, err, errlen)) == 0) {
        if (nf != hdr_nf) {
            rc = fail(err, errlen, "line %d: %d fields, the header has %d", r.line, nf, hdr_nf);
            goto err;
        }
        if (n >= TRACE_MAX_ROWS) {
            rc = fail(err, errlen, "line %d: more than %d rows", r.line, TRACE_MAX_ROWS);
            goto err;
        }
        struct trace_node t = {0};
        int64_t ngpu;
        const struct field *sn = &f[col[0]], *model = &f[col[4]];
        if (sn->n == 0) {
            rc = fail(err, errlen, "line %d: column sn is empty", r.line);
            goto err;
        }
        if (parse_int(&f[col[1]], TRACE_MAX_CPU, &t.cpu, "cpu_milli", r.line, err, errlen) < 0 ||
            parse_int(&f[col[2]], TRACE_MAX_MEM, &t.mem, "memory_mib", r.line, err, errlen) < 0 ||
            parse_int(&f[col[3]], CLUSTER_MAX_GPUS, &ngpu, "gpu", r.line, err, errlen) < 0) {
            rc = -1;
            goto err;
        }
        t.ngpu = (int)ngpu;
        t.model = -1;
        if (t.ngpu > 0) {
            if (model->n == 0) {
                rc = fail(err, errlen, "line %d: a node with GPUs needs a model", r.line);
                goto err;
            }
            t.model = cluster_model(c, model->s, model->n);
            if (t.model < 0) {
                rc = fail(err, errlen, "line %d: bad GPU model '%.*s' (or more than %d models)",
                          r.line, (int)(model->n > 40 ? 40 : model->n), model->s,
                          CLUSTER_MAX_MODELS);
                goto err;
            }
        } else if (model->n != 0) {
            rc = fail(err, errlen, "line %d: a node without GPUs has a model", r.line);
            goto err;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            v = xrealloc(v, cap * sizeof(*v));
        }
        t.name = xstrndup(sn->s, sn->n);
        v[n++] = t;
    }
    if (rc < 0 || check_names(v, n, sizeof(*v), offsetof(struct trace_node, name), "nodes",
                              "node sn", err, errlen) < 0)
        goto err;
    *nodes = v;
    *nout = n;
    return 0;
err:
    trace_nodes_free(v, n);
    return -1;
}

/* gpu_spec: `|`-separated model names, each known to c; empty means any. */
static int parse_spec(const struct field *f, const struct cluster *c, uint32_t *mask, int line,
                      char *err, size_t errlen)
{
    *mask = 0;
    const char *s = f->s, *e = f->s + f->n;
    while (s < e) {
        const char *bar = memchr(s, '|', (size_t)(e - s));
        const char *t = bar ? bar : e;
        if (t == s)
            return fail(err, errlen, "line %d: empty model name in gpu_spec '%.*s'", line,
                        (int)f->n, f->s);
        int id = cluster_model_find(c, s, (size_t)(t - s));
        if (id < 0)
            return fail(err, errlen, "line %d: unknown GPU model '%.*s' in gpu_spec", line,
                        (int)(t - s > 40 ? 40 : t - s), s);
        *mask |= 1u << id;
        s = bar ? bar + 1 : e;
        if (bar && s == e)
            return fail(err, errlen, "line %d: gpu_spec ends with '|'", line);
    }
    return 0;
}

int trace_parse_pods(const char *text, size_t len, const struct cluster *c, struct trace_pod **pods,
                     size_t *nout, char *err, size_t errlen)
{
    static const char *const names[] = {"name",    "cpu_milli", "memory_mib",
                                        "num_gpu", "gpu_milli", "gpu_spec"};
    struct reader r = {text, text + len, 0};
    struct field f[MAX_COLS];
    int nf, hdr_nf, col[6];
    struct trace_pod *v = NULL;
    size_t n = 0, cap = 0;
    *pods = NULL;
    *nout = 0;
    int rc = next_line(&r, f, &hdr_nf, err, errlen);
    if (rc == 1)
        return fail(err, errlen, "empty file: no header line");
    if (rc < 0 || map_header(f, hdr_nf, names, 6, 5, col, r.line, err, errlen) < 0)
        return -1;
    while ((rc = next_line(&r, f, &nf, err, errlen)) == 0) {
        if (nf != hdr_nf) {
            rc = fail(err, errlen, "line %d: %d fields, the header has %d", r.line, nf, hdr_nf);
            goto err;
        }
        if (n >= TRACE_MAX_ROWS) {
            rc = fail(err, errlen, "line %d: more than %d rows", r.line, TRACE_MAX_ROWS);
            goto err;
        }
        struct trace_pod t = {0};
        int64_t gpus, milli;
        const struct field *name = &f[col[0]];
        if (name->n == 0) {
            rc = fail(err, errlen, "line %d: column name is empty", r.line);
            goto err;
        }
        if (parse_int(&f[col[1]], TRACE_MAX_CPU, &t.spec.cpu_milli, "cpu_milli", r.line, err,
                      errlen) < 0 ||
            parse_int(&f[col[2]], TRACE_MAX_MEM, &t.spec.mem_mib, "memory_mib", r.line, err,
                      errlen) < 0 ||
            parse_int(&f[col[3]], CLUSTER_MAX_GPUS, &gpus, "num_gpu", r.line, err, errlen) < 0 ||
            parse_int(&f[col[4]], CLUSTER_GPU_MILLI, &milli, "gpu_milli", r.line, err, errlen) <
                0) {
            rc = -1;
            goto err;
        }
        if (gpus == 0 && milli != 0) {
            rc =
                fail(err, errlen, "line %d: gpu_milli %lld without GPUs", r.line, (long long)milli);
            goto err;
        }
        if (gpus > 0 && milli == 0) {
            rc = fail(err, errlen, "line %d: num_gpu %lld with gpu_milli 0", r.line,
                      (long long)gpus);
            goto err;
        }
        if (gpus > 1 && milli != CLUSTER_GPU_MILLI) {
            rc = fail(err, errlen, "line %d: a share of a GPU (gpu_milli %lld) needs num_gpu 1",
                      r.line, (long long)milli);
            goto err;
        }
        if (col[5] >= 0 && parse_spec(&f[col[5]], c, &t.spec.models, r.line, err, errlen) < 0) {
            rc = -1;
            goto err;
        }
        t.spec.id = n;
        t.spec.gpus = (int32_t)gpus;
        t.spec.gpu_milli = (int32_t)milli;
        t.spec.prio = JOB_SPOT;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            v = xrealloc(v, cap * sizeof(*v));
        }
        t.name = xstrndup(name->s, name->n);
        v[n++] = t;
    }
    if (rc < 0 || check_names(v, n, sizeof(*v), offsetof(struct trace_pod, name), "pods",
                              "pod name", err, errlen) < 0)
        goto err;
    *pods = v;
    *nout = n;
    return 0;
err:
    trace_pods_free(v, n);
    return -1;
}

int trace_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int ret = -1;
    FILE *fp = NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    *text = NULL;
    *len = 0;
    fp = fopen(path, "rb");
    if (!fp) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        fail(err, errlen, "%s: read error", path);
        goto done;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    ret = 0;
done:
    free(buf);
    if (fp)
        fclose(fp);
    return ret;
}

void trace_nodes_free(struct trace_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(nodes[i].name);
    free(nodes);
}

void trace_pods_free(struct trace_pod *pods, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pods[i].name);
    free(pods);
}
