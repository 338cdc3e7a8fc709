/*
 * fuzz_request — libFuzzer harness over what capxd does with a client's bytes before any
 * handler runs: HTTP/1.1 parsing with capx's checks (pipelined requests, split at a
 * data-chosen point as a network would split them), then the JSON body decoded to a typed
 * order request with the server's own field table (server/reqspec.c). Anything the sanitizers
 * report, or an assertion, is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "server/httpparse.h"
#include "server/reqjson.h"
#include "server/reqspec.h"

static void decode_body(const struct hp_request *r)
{
    struct api_error e;
    json_t *o = NULL;
    if (reqjson_parse(r->body ? r->body : "", r->body_len, &o, &e) < 0) {
        if (e.status != 400)
            __builtin_trap();
        return;
    }
    struct order_req q;
    uint64_t present;
    memset(&q, 0, sizeof q);
    if (reqjson_decode(o, order_fields, order_nfields, &q, &present, &e) == 0) {
        if (q.gpus < 1 || q.gpus > 100000 || (present & (1u << F_START) && q.start % 3600))
            __builtin_trap();
    } else if (e.status != 400) {
        __builtin_trap();
    }
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hp_limits lim = {2048, 4096, 64 << 10};
    struct hp_request r;
    if (size < 1)
        return 0;
    size_t split = data[0] % 64 + 1; /* network chunking chosen by the input */
    data++;
    size--;
    hp_init(&r, &lim);
    size_t off = 0;
    int requests = 0;
    while (off < size && requests < 16) {
        size_t want = size - off < split ? size - off : split;
        size_t n = hp_feed(&r, (const char *)data + off, want);
        off += n;
        if (r.state == HP_ERROR) {
            if (r.err_status < 400 || r.err_status > 599 || !r.err_code)
                __builtin_trap();
            break;
        }
        if (r.state == HP_COMPLETE) {
            (void)hp_header(&r, "authorization");
            (void)hp_header(&r, "idempotency-key");
            decode_body(&r);
            requests++;
            hp_reset(&r);
            continue;
        }
        if (n == 0)
            break;
    }
    hp_free(&r);
    return 0;
}
