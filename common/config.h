/*
 * config.h — configuration from one table.
 *
 * Each program declares a table of {name, type, &target, default, min, max, help}.
 * Values come, lowest precedence first, from the defaults, a config file (`name = value`
 * lines, `#` comments; path from --config or CAPX_CONFIG), the environment (CAPX_NAME in
 * upper case) and flags (--name=value or --name value, `_` and `-` alike). `--help` is
 * generated from the same table, so the four can never disagree.
 */
#ifndef CAPX_COMMON_CONFIG_H
#define CAPX_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/capx.h"

enum cfg_type {
    CFG_STR,  /* target is char ** (owned, freed by cfg_free) */
    CFG_INT,  /* target is int64_t *, checked against [min, max] */
    CFG_BOOL, /* target is int *: true/false/1/0/yes/no/on/off */
};

struct cfg_entry {
    const char *name; /* snake_case; env CAPX_NAME, flag --name */
    enum cfg_type type;
    void *target;
    const char *def;  /* default, as text ("" for none) */
    int64_t min, max; /* for CFG_INT */
    const char *help;
};

/*
 * Loads every entry. Positional arguments (not starting with --) are left in order in
 * argv[0..*nrest) (argv[0], the program name, is skipped). Returns 0, 1 when --help was
 * given (help printed to out), or -1 with err set.
 */
MUSTCHECK int cfg_load(const struct cfg_entry *tab, size_t n, int argc, char **argv, int *nrest,
                       FILE *out, const char *usage, char *err, size_t errlen);
void cfg_help(const struct cfg_entry *tab, size_t n, FILE *out, const char *usage);
void cfg_free(const struct cfg_entry *tab, size_t n);

/*
 * The PostgreSQL connection string when none is configured: the private cluster that
 * deploy/pg.sh runs under the state directory var (socket in var/pg) on port pgport.
 * Returns a malloc'd string.
 */
char *cfg_default_conninfo(const char *var, int64_t pgport);
/* The state directory: var if set, else ./var, made absolute. malloc'd. */
char *cfg_state_dir(const char *var);
#endif
