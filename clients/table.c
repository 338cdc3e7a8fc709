/*
 * table.c — see table.h. Widths count characters, not bytes (UTF-8 continuation bytes are
 * skipped), so a name with accents does not push its column out of line.
 */
#include <stdlib.h>
#include <string.h>

#include "clients/table.h"
#include "common/capx.h"

struct table *table_new(size_t ncols)
{
    struct table *t = xcalloc(1, sizeof *t);
    t->ncols = ncols;
    t->headers = xcalloc(ncols, sizeof *t->headers);
    t->right = xcalloc(ncols, sizeof *t->right);
    return t;
}

void table_column(struct table *t, size_t col, const char *header, int right)
{
    CAPX_ASSERT(col < t->ncols);
    t->headers[col] = header;
    t->right[col] = right;
}

void table_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = xstrdup(cells[c] ? cells[c] : "");
    t->nrows++;
}

static size_t width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(FILE *out, size_t n)
{
    while (n--)
        fputc(' ', out);
}

static const char *cell(const struct table *t, size_t row, size_t col)
{
    return t->cells[row * t->ncols + col];
}

void table_print_text(const struct table *t, FILE *out)
{
    size_t *w = xcalloc(t->ncols, sizeof *w);
    for (size_t c = 0; c < t->ncols; c++) {
        w[c] = width(t->headers[c]);
        for (size_t r = 0; r < t->nrows; r++)
            if (width(cell(t, r, c)) > w[c])
                w[c] = width(cell(t, r, c));
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->headers[c] : cell(t, r - 1, c);
            size_t gap = w[c] - width(s);
            int last = c + 1 == t->ncols;
            if (t->right[c])
                pad(out, gap);
            fputs(s ? s : "", out);
            if (!last && !t->right[c])
                pad(out, gap);
            if (!last)
                fputs("  ", out);
        }
        fputc('\n', out);
    }
    free(w);
}

static void csv_field(const char *s, FILE *out)
{
    if (!s || !strpbrk(s, ",\"\r\n")) {
        fputs(s ? s : "", out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void table_print_csv(const struct table *t, FILE *out)
{
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            if (c)
                fputc(',', out);
            csv_field(r == 0 ? t->headers[c] : cell(t, r - 1, c), out);
        }
        fputs("\r\n", out);
    }
}

void table_print_record(const struct table *t, FILE *out)
{
    size_t hw = 0;
    for (size_t c = 0; c < t->ncols; c++)
        if (width(t->headers[c]) > hw)
            hw = width(t->headers[c]);
    for (size_t r = 0; r < t->nrows; r++) {
        if (r)
            fputc('\n', out);
        for (size_t c = 0; c < t->ncols; c++) {
            fputs(t->headers[c], out);
            pad(out, hw - width(t->headers[c]) + 2);
            fputs(cell(t, r, c), out);
            fputc('\n', out);
        }
    }
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->headers);
    free(t->right);
    free(t);
}
