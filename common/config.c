/*
 * config.c — see config.h. Each source sets entries by name through one function,
 * set_value, which does all type and range checks, so a value is judged the same
 * whichever source it came from.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"

static const struct cfg_entry *find(const struct cfg_entry *tab, size_t n, const char *name,
                                    size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = tab[i].name;
        if (strlen(e) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            char a = name[j] == '-' ? '_' : name[j];
            if (a != e[j])
                break;
        }
        if (j == len)
            return &tab[i];
    }
    return NULL;
}

static int set_value(const struct cfg_entry *e, const char *v, const char *src, char *err,
                     size_t errlen)
{
    switch (e->type) {
    case CFG_STR: {
        char **t = e->target;
        free(*t);
        *t = xstrdup(v);
        return 0;
    }
    case CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end != '\0') {
            snprintf(err, errlen, "%s: %s must be an integer, got \"%s\"", src, e->name, v);
            return -1;
        }
        if (x < e->min || x > e->max) {
            snprintf(err, errlen, "%s: %s must be in [%lld, %lld], got %lld", src, e->name,
                     (long long)e->min, (long long)e->max, x);
            return -1;
        }
        *(int64_t *)e->target = x;
        return 0;
    }
    case CFG_BOOL: {
        int *t = e->target;
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            *t = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off"))
            *t = 0;
        else {
            snprintf(err, errlen, "%s: %s must be true or false, got \"%s\"", src, e->name, v);
            return -1;
        }
        return 0;
    }
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int load_file(const struct cfg_entry *tab, size_t n, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "config file %s:%d: expected name = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        const struct cfg_entry *e = find(tab, n, name, strlen(name));
        char src[512];
        snprintf(src, sizeof src, "config file %s:%d", path, lineno);
        if (!e) {
            snprintf(err, errlen, "%s: unknown setting \"%s\"", src, name);
            rc = -1;
            break;
        }
        if ((rc = set_value(e, val, src, err, errlen)) < 0)
            break;
    }
    fclose(f);
    return rc;
}

void cfg_help(const struct cfg_entry *tab, size_t n, FILE *out, const char *usage)
{
    fprintf(out, "%s\n\nSettings (flag, environment variable, config file name):\n", usage);
    for (size_t i = 0; i < n; i++) {
        char flag[128], env[128];
        size_t j;
        for (j = 0; tab[i].name[j] && j < sizeof flag - 1; j++)
            flag[j] = tab[i].name[j] == '_' ? '-' : tab[i].name[j];
        flag[j] = '\0';
        for (j = 0; tab[i].name[j] && j < sizeof env - 1; j++)
            env[j] = (char)toupper((unsigned char)tab[i].name[j]);
        env[j] = '\0';
        fprintf(out, "  --%-24s CAPX_%-22s %s", flag, env, tab[i].help);
        if (tab[i].def && tab[i].def[0])
            fprintf(out, " (default %s)", tab[i].def);
        if (tab[i].type == CFG_INT)
            fprintf(out, " [%lld..%lld]", (long long)tab[i].min, (long long)tab[i].max);
        fputc('\n', out);
    }
    fprintf(out, "  --%-24s CAPX_%-22s %s\n", "config", "CONFIG", "read settings from this file");
}

int cfg_load(const struct cfg_entry *tab, size_t n, int argc, char **argv, int *nrest, FILE *out,
             const char *usage, char *err, size_t errlen)
{
    const char *cfile = getenv("CAPX_CONFIG");
    *nrest = 0;
    /* Defaults. */
    for (size_t i = 0; i < n; i++) {
        if (tab[i].type == CFG_STR)
            *(char **)tab[i].target = NULL;
        if (set_value(&tab[i], tab[i].def ? tab[i].def : "", "default", err, errlen) < 0)
            return -1;
    }
    /* --help and --config first: the file sits below env and flags. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_help(tab, n, out, usage);
            return 1;
        }
        if (!strncmp(argv[i], "--config=", 9))
            cfile = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfile = argv[i + 1];
    }
    if (cfile && *cfile && load_file(tab, n, cfile, err, errlen) < 0)
        return -1;
    /* Environment. */
    for (size_t i = 0; i < n; i++) {
        char env[160] = "CAPX_";
        size_t j;
        for (j = 0; tab[i].name[j] && j + 6 < sizeof env; j++)
            env[5 + j] = (char)toupper((unsigned char)tab[i].name[j]);
        env[5 + j] = '\0';
        const char *v = getenv(env);
        char src[200];
        snprintf(src, sizeof src, "environment %s", env);
        if (v && set_value(&tab[i], v, src, err, errlen) < 0)
            return -1;
    }
    /* Flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            argv[(*nrest)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '='), *val;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 6 && !strncmp(name, "config", 6)) {
            if (!eq)
                i++;
            continue;
        }
        const struct cfg_entry *e = find(tab, n, name, len);
        if (!e) {
            snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)len, name);
            return -1;
        }
        if (eq)
            val = eq + 1;
        else if (e->type == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "flag --%s needs a value", e->name);
            return -1;
        }
        char src[200];
        snprintf(src, sizeof src, "flag --%.*s", (int)len, name);
        if (set_value(e, val, src, err, errlen) < 0)
            return -1;
    }
    return 0;
}

void cfg_free(const struct cfg_entry *tab, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tab[i].type == CFG_STR) {
            free(*(char **)tab[i].target);
            *(char **)tab[i].target = NULL;
        }
}

char *cfg_state_dir(const char *var)
{
    const char *v = (var && *var) ? var : "var";
    if (v[0] == '/')
        return xstrdup(v);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(v);
    size_t n = strlen(cwd) + strlen(v) + 2;
    char *out = xmalloc(n);
    snprintf(out, n, "%s/%s", cwd, v);
    return out;
}

char *cfg_default_conninfo(const char *var, int64_t pgport)
{
    char *dir = cfg_state_dir(var);
    size_t n = strlen(dir) + 128;
    char *out = xmalloc(n);
    snprintf(out, n, "host=%s/pg port=%lld dbname=capx user=capx connect_timeout=5", dir,
             (long long)pgport);
    free(dir);
    return out;
}
