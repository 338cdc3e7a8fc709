/*
 * cli.h — what capx and capx-admin share above the HTTPS client: per-command flags, one call
 * to the API with the contract's errors turned into messages and exit codes, and output as
 * an aligned table, CSV or the server's JSON.
 *
 * Exit codes (both programs): CLI_OK 0; CLI_REFUSED 1 the server refused (4xx) or, for
 * capx-admin, the operation failed; CLI_USAGE 2 bad flags or arguments, or an unsafe config
 * file; CLI_UNREACHABLE 3 no connection or TLS failure; CLI_SERVER 4 the server failed (5xx)
 * or answered something that is not the contract.
 */
#ifndef CAPX_CLIENTS_CLI_H
#define CAPX_CLIENTS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "clients/https.h"
#include "common/capx.h"

enum cli_exit {
    CLI_OK = 0,
    CLI_REFUSED = 1,
    CLI_USAGE = 2,
    CLI_UNREACHABLE = 3,
    CLI_SERVER = 4,
};

#define CLI_EXIT_HELP                                                                              \
    "Exit codes: 0 ok; 1 the server refused the request (4xx); 2 usage error (or a config\n"       \
    "file others can read); 3 cannot reach the server or TLS failed; 4 server error (5xx)."

enum cli_format { CLI_TABLE, CLI_CSV, CLI_JSON };

/* A command's own flag: --name VALUE, or a switch --name (value "true"). */
struct cli_flag {
    const char *name;   /* kebab-case, without the dashes */
    int is_switch;      /* 1: takes no value (--name=false still allowed) */
    const char **value; /* receives a pointer into argv (or "true"); NULL when absent */
    const char *help;
};

/* One connection's worth of settings, and how to print. */
struct cli {
    const char *prog;       /* "capx" or "capx-admin", prefix of every message */
    struct https_conf conf; /* where and how to connect */
    const char *url;        /* as configured, for messages */
    const char *api_key;    /* bearer key */
    enum cli_format format; /* output format */
};

/* What to show of an object: a column per field. */
enum cli_kind {
    CK_STR,   /* string (or any scalar) as it is */
    CK_NUM,   /* integer, right-aligned */
    CK_USD,   /* micro-USD integer shown in dollars */
    CK_LIST,  /* array of strings joined by commas */
    CK_PLACE, /* placement [{"node", "gpus"}] as node:gpus,... */
};

struct cli_col {
    const char *header; /* shown in tables */
    const char *key;    /* JSON field; "a.b" reaches into an object; also the CSV header */
    enum cli_kind kind;
    int detail; /* 1: only in the one-object view and CSV, not in list tables */
};

/*
 * Removes the flags of tab (and their values) from argv[1..*argc), keeping everything else
 * in order. 0 ok, -1 with err (a flag without its value, or a switch with a bad value).
 */
MUSTCHECK int cli_take_flags(const struct cli_flag *tab, size_t n, int *argc, char **argv,
                             char *err, size_t errlen);
/* 1 when the switch's value means true (NULL means false). */
int cli_switch_on(const char *v);
/* Appends "Flags:\n  --name VALUE  help" lines for tab to a malloc'd copy of head. */
char *cli_usage(const char *head, const struct cli_flag *tab, size_t n);

/* Fills c from settings. CLI_OK, or CLI_USAGE after printing why. */
int cli_init(struct cli *c, const char *prog, const char *url, const char *cacert,
             const char *api_key, const char *format, int64_t timeout_s);
/* snprintf at buf + len; returns the new length, never past cap - 1 (output truncated). */
PRINTF(4, 5) size_t cli_appendf(char *buf, size_t cap, size_t len, const char *fmt, ...);
/* Prints "prog: msg" to stderr; returns code. */
PRINTF(3, 4) int cli_fail(const struct cli *c, int code, const char *fmt, ...);

/*
 * One API call. body (may be NULL) is consumed. idem (may be NULL) goes out as
 * Idempotency-Key. On 2xx: CLI_OK with *out the parsed answer (NULL for an empty body).
 * Otherwise the error is printed ("prog: code: message (field)") and the exit code returned;
 * when the outcome is unknown (no answer, 5xx) and idem was set, the key to retry with is
 * printed too.
 */
int cli_call(struct cli *c, const char *method, const char *path, json_t *body, const char *idem,
             json_t **out);
/*
 * GET a list, following next_cursor when all is set (else one page from cursor). limit and
 * cursor may be NULL. query is "" or "&a=b..." (already encoded). *out is {"data": [...],
 * "next_cursor": ...}.
 */
int cli_list(struct cli *c, const char *path, const char *query, const char *limit,
             const char *cursor, int all, json_t **out);

/* A fresh random Idempotency-Key into buf (at least 40 bytes). */
void cli_idempotency_key(char *buf, size_t size);
/* The key to send: given (an --idempotency-key) when set, else a fresh one made in buf. */
const char *cli_idem(const char *given, char *buf, size_t size);
/* The config file named by --config or $CAPX_CONFIG, or NULL. */
const char *cli_config_arg(int argc, char **argv);
/* A config file that holds an API key must be its owner's alone (mode 0600): 0 ok (or no such
   file), -1 after printing why (the caller exits CLI_USAGE). only_with_key: refuse only when
   the file sets api_key (capx-admin reads capxd's settings too, which may be public). */
int cli_config_private(const char *prog, const char *path, int only_with_key);
/* 0 when a required flag's value v is set; else CLI_USAGE is printed ("missing --flag") and -1. */
int cli_need(const struct cli *c, const char *v, const char *flag);
/* POST path with body (consumed) and cli_idem(idem); prints the answer with cols. */
int cli_post(struct cli *c, const char *path, json_t *body, const char *idem,
             const struct cli_col *cols, size_t n);
/* Percent-encodes s for a path segment or query value into out. */
void cli_escape(const char *s, char *out, size_t outlen);

/*
 * Output in c->format: one object (a record in table format), or a list answer
 * {"data": [...], ...} (aligned rows). In JSON format the object or list is printed whole.
 */
void cli_print_one(const struct cli *c, json_t *obj, const struct cli_col *cols, size_t n);
void cli_print_list(const struct cli *c, json_t *list, const struct cli_col *cols, size_t n);
void cli_print_json(json_t *v);
/* The text of field key of obj as a table shows it ("-" for null or missing). malloc'd. */
char *cli_cell(json_t *obj, const struct cli_col *col);

#endif
