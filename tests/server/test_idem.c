/* Saved idempotent answers expire after 24 hours of wall clock; in-flight keys never do. */
#include <stdlib.h>

#include "server/app.h"
#include "tests/test.h"

static void put(struct app *a, const char *key, int status, int64_t created)
{
    struct idem *d = xcalloc(1, sizeof *d);
    d->status = status;
    d->body = status ? xstrdup("{}") : NULL;
    d->created = created;
    hmap_put(&a->idem, key, d);
}

int main(void)
{
    struct app a;
    struct app_config cfg = {0};
    app_init(&a, NULL, &cfg);
    int64_t now = 1800000000;
    for (int i = 0; i < 500; i++) {
        char k[32];
        snprintf(k, sizeof k, "acct_x\nold-%d", i);
        put(&a, k, 201, now - 24 * 3600 - 1 - i);
        snprintf(k, sizeof k, "acct_x\nnew-%d", i);
        put(&a, k, 201, now - 24 * 3600 + i);
    }
    put(&a, "acct_x\nflight", 0, now - 7 * 24 * 3600);
    CHECK_EQ_I64(app_idem_purge(&a, now), 500);
    CHECK_EQ_I64(a.idem.len, 501);
    CHECK(hmap_get(&a.idem, "acct_x\nold-7") == NULL);
    CHECK(hmap_get(&a.idem, "acct_x\nnew-7") != NULL);
    CHECK(hmap_get(&a.idem, "acct_x\nflight") != NULL);
    CHECK_EQ_I64(app_idem_purge(&a, now), 0);
    app_free(&a);
    return TEST_DONE();
}
