/*
 * table.h — rows of text printed as an aligned terminal table or as CSV (RFC 4180).
 * Cells are copied in; the table owns them.
 */
#ifndef CAPX_CLIENTS_TABLE_H
#define CAPX_CLIENTS_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table {
    size_t ncols;
    const char **headers; /* ncols header texts (not owned: string literals) */
    int *right;           /* ncols flags: right-align this column (numbers, money) */
    char **cells;         /* nrows * ncols owned strings, row by row */
    size_t nrows, cap;    /* rows stored, rows allocated */
};

struct table *table_new(size_t ncols);
/* Sets column col's header text and alignment. */
void table_column(struct table *t, size_t col, const char *header, int right);
/* Appends a row of ncols cells (NULL cells print as empty). */
void table_row(struct table *t, const char *const *cells);
/* Aligned columns separated by two spaces, headers first. */
void table_print_text(const struct table *t, FILE *out);
/* CSV with a header row; fields quoted when they hold a comma, quote or line break. */
void table_print_csv(const struct table *t, FILE *out);
/* One record per block of "HEADER  value" lines (for a single object). */
void table_print_record(const struct table *t, FILE *out);
void table_free(struct table *t);

#endif
