/*
 * cli.c — see cli.h. Messages follow one shape so scripts can rely on them: everything
 * for people goes to stderr as "prog: ...", results alone go to stdout.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clients/cli.h"
#include "clients/table.h"
#include "clients/units.h"
#include "common/ids.h"

/* ---- flags ---- */

static const struct cli_flag *find_flag(const struct cli_flag *tab, size_t n, const char *name,
                                        size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = tab[i].name;
        if (strlen(f) != len)
            continue;
        size_t j = 0;
        while (j < len && (name[j] == f[j] || (name[j] == '_' && f[j] == '-')))
            j++;
        if (j == len)
            return &tab[i];
    }
    return NULL;
}

int cli_switch_on(const char *v)
{
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "on"));
}

static int switch_valid(const char *v)
{
    return cli_switch_on(v) || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
           !strcasecmp(v, "off");
}

int cli_take_flags(const struct cli_flag *tab, size_t n, int *argc, char **argv, char *err,
                   size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        *tab[i].value = NULL;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const struct cli_flag *f = NULL;
        const char *eq = NULL;
        if (!strncmp(a, "--", 2) && a[2]) {
            eq = strchr(a + 2, '=');
            f = find_flag(tab, n, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
        }
        if (!f) {
            argv[out++] = argv[i];
            continue;
        }
        if (f->is_switch) {
            if (eq && !switch_valid(eq + 1)) {
                snprintf(err, errlen, "--%s takes true or false, got \"%s\"", f->name, eq + 1);
                return -1;
            }
            *f->value = eq ? eq + 1 : "true";
        } else if (eq) {
            *f->value = eq + 1;
        } else if (i + 1 < *argc) {
            *f->value = argv[++i];
        } else {
            snprintf(err, errlen, "flag --%s needs a value", f->name);
            return -1;
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

char *cli_usage(const char *head, const struct cli_flag *tab, size_t n)
{
    size_t cap = strlen(head) + 64;
    for (size_t i = 0; i < n; i++)
        cap += strlen(tab[i].name) + strlen(tab[i].help) + 48;
    char *s = xmalloc(cap);
    size_t len = (size_t)snprintf(s, cap, "%s", head);
    if (n)
        len = cli_appendf(s, cap, len, "\n\nFlags of this command:");
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", tab[i].name, tab[i].is_switch ? "" : " VALUE");
        len = cli_appendf(s, cap, len, "\n  %-28s %s", left, tab[i].help);
    }
    return s;
}

/* ---- settings and messages ---- */

size_t cli_appendf(char *buf, size_t cap, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (len + 1 >= cap)
        return len;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    return len + (size_t)n >= cap ? cap - 1 : len + (size_t)n;
}

int cli_fail(const struct cli *c, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_init(struct cli *c, const char *prog, const char *url, const char *cacert,
             const char *api_key, const char *format, int64_t timeout_s)
{
    char err[512];
    memset(c, 0, sizeof *c);
    c->prog = prog;
    if (!format || !strcmp(format, "table") || !*format)
        c->format = CLI_TABLE;
    else if (!strcmp(format, "csv"))
        c->format = CLI_CSV;
    else if (!strcmp(format, "json"))
        c->format = CLI_JSON;
    else
        return cli_fail(c, CLI_USAGE, "--format must be table, csv or json, got \"%s\"", format);
    if (!url || !*url)
        return cli_fail(c, CLI_USAGE,
                        "no server URL: give --url, CAPX_URL or url in the config "
                        "file");
    if (https_parse_url(url, &c->conf.target, err, sizeof err) < 0)
        return cli_fail(c, CLI_USAGE, "%s", err);
    if (!api_key || !*api_key)
        return cli_fail(c, CLI_USAGE,
                        "no API key: give --api-key, CAPX_API_KEY or api_key in "
                        "the config file");
    for (const char *p = api_key; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cli_fail(c, CLI_USAGE, "the API key holds spaces or control characters");
    c->url = url;
    c->api_key = api_key;
    c->conf.cacert = cacert && *cacert ? cacert : NULL;
    c->conf.timeout_ms = (int)(timeout_s * 1000);
    return CLI_OK;
}

void cli_idempotency_key(char *buf, size_t size)
{
    capx_id_new("idem_", buf, size);
}

const char *cli_idem(const char *given, char *buf, size_t size)
{
    if (given && *given)
        return given;
    cli_idempotency_key(buf, size);
    return buf;
}

int cli_need(const struct cli *c, const char *v, const char *flag)
{
    if (v && *v)
        return 0;
    cli_fail(c, CLI_USAGE, "missing --%s (see --help)", flag);
    return -1;
}

int cli_post(struct cli *c, const char *path, json_t *body, const char *idem,
             const struct cli_col *cols, size_t n)
{
    char kb[64];
    json_t *out = NULL;
    int rc = cli_call(c, "POST", path, body, cli_idem(idem, kb, sizeof kb), &out);
    if (rc == CLI_OK)
        cli_print_one(c, out, cols, n);
    json_decref(out);
    return rc;
}

void cli_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < outlen; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* ---- calls ---- */

/* Prints the contract's error body, or what there is when it is not one. */
static void print_error(const struct cli *c, const struct https_response *r)
{
    json_error_t je;
    json_t *b = json_loadb(r->body, r->body_len, 0, &je);
    json_t *e = json_object_get(b, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (code) {
        if (field)
            fprintf(stderr, "%s: %s: %s (%s)\n", c->prog, code, msg ? msg : "", field);
        else
            fprintf(stderr, "%s: %s: %s\n", c->prog, code, msg ? msg : "");
    } else {
        fprintf(stderr, "%s: HTTP %d from the server: %.200s\n", c->prog, r->status,
                r->body_len ? r->body : "(no body)");
    }
    json_decref(b);
}

/* While a keyed request is in flight, an interrupt (Ctrl-C, a timeout's TERM, a closed terminal)
   still tells how to retry it safely: the request may have been done. */
static char interrupted_msg[512];
static size_t interrupted_len;

static void on_interrupt(int sig)
{
    if (write(STDERR_FILENO, interrupted_msg, interrupted_len) < 0) {
        /* nothing more can be done in a signal handler */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard_interrupts(const struct cli *c, const char *idem, struct sigaction old[3])
{
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    int n = snprintf(interrupted_msg, sizeof interrupted_msg,
                     "\n%s: interrupted: the request may or may not have been done; run the same "
                     "command with --idempotency-key %s to retry it safely\n",
                     c->prog, idem);
    interrupted_len = n > 0 && (size_t)n < sizeof interrupted_msg ? (size_t)n : 0;
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &old[i]);
}

static void unguard_interrupts(const struct sigaction old[3])
{
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &old[i], NULL);
}

int cli_call(struct cli *c, const char *method, const char *path, json_t *body, const char *idem,
             json_t **out)
{
    char err[1024];
    struct https_response r;
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    struct https_request rq = {
        .method = method,
        .path = path,
        .api_key = c->api_key,
        .body = text,
        .idempotency_key = idem,
    };
    *out = NULL;
    struct sigaction old[3];
    if (idem)
        guard_interrupts(c, idem, old);
    int rc = https_do(&c->conf, &rq, &r, err, sizeof err);
    if (idem)
        unguard_interrupts(old);
    free(text);
    if (rc < 0) {
        cli_fail(c, CLI_UNREACHABLE, "cannot reach %s: %s", c->url, err);
        rc = CLI_UNREACHABLE;
        goto unknown;
    }
    if (r.status >= 200 && r.status < 300) {
        if (r.replayed)
            fprintf(stderr,
                    "%s: the server had done this request already (same idempotency key); "
                    "this is its saved answer\n",
                    c->prog);
        rc = CLI_OK;
        if (r.body_len) {
            json_error_t je;
            *out = json_loadb(r.body, r.body_len, 0, &je);
            if (!*out) {
                cli_fail(c, CLI_SERVER, "the server's answer is not JSON: %s", je.text);
                rc = CLI_SERVER;
            }
        }
        https_response_free(&r);
        return rc;
    }
    print_error(c, &r);
    rc = r.status >= 500 ? CLI_SERVER : r.status >= 400 ? CLI_REFUSED : CLI_SERVER;
    https_response_free(&r);
    if (rc == CLI_REFUSED)
        return rc;
unknown:
    if (idem)
        fprintf(stderr,
                "%s: the request may or may not have been done; run the same command with "
                "--idempotency-key %s to retry it safely\n",
                c->prog, idem);
    return rc;
}

int cli_list(struct cli *c, const char *path, const char *query, const char *limit,
             const char *cursor, int all, json_t **out)
{
    char lim[64] = "", cur[256] = "", url[2048];
    json_t *data = json_array(), *next = json_null();
    int rc = CLI_OK;
    if (limit)
        cli_escape(limit, lim, sizeof lim);
    if (cursor)
        cli_escape(cursor, cur, sizeof cur);
    for (;;) {
        snprintf(url, sizeof url, "%s?limit=%s%s%s%s", path, lim[0] ? lim : "100",
                 cur[0] ? "&cursor=" : "", cur, query ? query : "");
        json_t *page = NULL;
        rc = cli_call(c, "GET", url, NULL, NULL, &page);
        if (rc != CLI_OK)
            break;
        json_t *d = json_object_get(page, "data");
        if (!json_is_array(d)) {
            json_decref(page);
            rc = cli_fail(c, CLI_SERVER, "the server's list answer has no data array");
            break;
        }
        json_array_extend(data, d);
        json_decref(next);
        next = json_incref(json_object_get(page, "next_cursor"));
        if (!next)
            next = json_null();
        json_decref(page);
        const char *nc = json_string_value(next);
        if (!all || !nc || !*nc)
            break;
        cli_escape(nc, cur, sizeof cur);
    }
    if (rc != CLI_OK) {
        json_decref(data);
        json_decref(next);
        return rc;
    }
    *out = json_object();
    json_object_set_new(*out, "data", data);
    json_object_set_new(*out, "next_cursor", next);
    return CLI_OK;
}

/* ---- output ---- */

static json_t *dig(json_t *obj, const char *key)
{
    char part[128];
    while (obj && *key) {
        size_t n = strcspn(key, ".");
        snprintf(part, sizeof part, "%.*s", (int)n, key);
        obj = json_object_get(obj, part);
        key += n;
        if (*key == '.')
            key++;
    }
    return obj;
}

char *cli_cell(json_t *obj, const struct cli_col *col)
{
    json_t *v = dig(obj, col->key);
    char b[UNITS_USD_STRLEN];
    if (!v || json_is_null(v))
        return xstrdup("-");
    if (col->kind == CK_USD && json_is_integer(v)) {
        units_format_usd(json_integer_value(v), b);
        return xstrdup(b);
    }
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v)) {
        char n[32];
        snprintf(n, sizeof n, "%lld", (long long)json_integer_value(v));
        return xstrdup(n);
    }
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "yes" : "no");
    if (json_is_array(v) && (col->kind == CK_LIST || col->kind == CK_PLACE)) {
        size_t cap = 16, len = 0, i;
        char *s = xmalloc(cap);
        json_t *e;
        s[0] = '\0';
        json_array_foreach(v, i, e)
        {
            char item[160];
            if (col->kind == CK_PLACE)
                snprintf(item, sizeof item, "%lld:%lld",
                         (long long)json_integer_value(json_object_get(e, "node")),
                         (long long)json_integer_value(json_object_get(e, "gpus")));
            else
                snprintf(item, sizeof item, "%s", json_is_string(e) ? json_string_value(e) : "?");
            size_t k = strlen(item) + 2;
            if (len + k + 1 > cap) {
                cap = (len + k + 1) * 2;
                s = xrealloc(s, cap);
            }
            len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", item);
        }
        if (!len) {
            free(s);
            return xstrdup("-");
        }
        return s;
    }
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return d ? d : xstrdup("?");
}

void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
}

static int numeric(const struct cli_col *col)
{
    return col->kind == CK_USD || col->kind == CK_NUM;
}

/* Rows of items (a JSON array of objects); detail columns only when details is set. */
static struct table *make_table(const struct cli *c, json_t *items, const struct cli_col *cols,
                                size_t n, int details)
{
    size_t k = 0, idx[64];
    CAPX_ASSERT(n <= ARRAY_LEN(idx));
    for (size_t i = 0; i < n; i++)
        if (details || !cols[i].detail)
            idx[k++] = i;
    struct table *t = table_new(k);
    for (size_t j = 0; j < k; j++)
        table_column(t, j, c->format == CLI_CSV ? cols[idx[j]].key : cols[idx[j]].header,
                     numeric(&cols[idx[j]]));
    size_t i;
    json_t *o;
    char *cells[64];
    json_array_foreach(items, i, o)
    {
        for (size_t j = 0; j < k; j++)
            cells[j] = cli_cell(o, &cols[idx[j]]);
        table_row(t, (const char *const *)cells);
        for (size_t j = 0; j < k; j++)
            free(cells[j]);
    }
    return t;
}

void cli_print_one(const struct cli *c, json_t *obj, const struct cli_col *cols, size_t n)
{
    if (c->format == CLI_JSON) {
        cli_print_json(obj);
        return;
    }
    json_t *one = json_pack("[O]", obj);
    struct table *t = make_table(c, one, cols, n, 1);
    if (c->format == CLI_CSV)
        table_print_csv(t, stdout);
    else
        table_print_record(t, stdout);
    table_free(t);
    json_decref(one);
}

void cli_print_list(const struct cli *c, json_t *list, const struct cli_col *cols, size_t n)
{
    if (c->format == CLI_JSON) {
        cli_print_json(list);
        return;
    }
    json_t *items = json_object_get(list, "data");
    struct table *t = make_table(c, items, cols, n, c->format == CLI_CSV);
    if (c->format == CLI_CSV)
        table_print_csv(t, stdout);
    else
        table_print_text(t, stdout);
    table_free(t);
    const char *nc = json_string_value(json_object_get(list, "next_cursor"));
    if (c->format != CLI_JSON && nc && *nc) /* (JSON carries next_cursor itself) */
        fprintf(stderr, "%s: more results: add --cursor %s (or --all)\n", c->prog, nc);
}

const char *cli_config_arg(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1];
    }
    if (!path && getenv("CAPX_CONFIG") && *getenv("CAPX_CONFIG"))
        path = getenv("CAPX_CONFIG");
    return path;
}

/* Whether a config file sets api_key (a line "api_key = …" or "api_key=…"). */
static int sets_api_key(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = line + strspn(line, " \t");
        found = !strncmp(p, "api_key", 7) && (p[7] == '=' || p[7] == ' ' || p[7] == '\t');
    }
    fclose(f);
    return found;
}

int cli_config_private(const char *prog, const char *path, int only_with_key)
{
    struct stat st;
    if (stat(path, &st) < 0 || !(st.st_mode & 077))
        return 0; /* (a missing file is named by the loader) */
    if (only_with_key && !sets_api_key(path))
        return 0;
    fprintf(stderr,
            "%s: config file %s has mode %04o: it holds an API key, so only its owner may read "
            "it (chmod 600 %s)\n",
            prog, path, (unsigned)(st.st_mode & 07777), path);
    return -1;
}
