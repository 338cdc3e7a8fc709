/*
 * The request parser and the JSON decoder, byte by byte: every request is also fed one
 * byte at a time (as a slow or hostile client would send it) and must parse the same.
 */
#include <stddef.h>

#include "server/httpparse.h"
#include "server/reqjson.h"
#include "tests/test.h"

static const struct hp_limits lim = {8192, 16384, 1 << 20};

/* Parses s whole, or byte by byte; returns the final state. */
static enum hp_state parse(struct hp_request *r, const char *s, size_t len, int bytewise)
{
    hp_init(r, &lim);
    size_t off = 0;
    while (off < len && r->state != HP_COMPLETE && r->state != HP_ERROR) {
        size_t n = hp_feed(r, s + off, bytewise ? 1 : len - off);
        if (n == 0)
            break;
        off += n;
    }
    return r->state;
}

static void expect(const char *name, const char *s, size_t len, int status)
{
    for (int bw = 0; bw < 2; bw++) {
        struct hp_request r;
        enum hp_state st = parse(&r, s, len, bw);
        if (status == 0) {
            CHECK(st == HP_COMPLETE);
        } else {
            CHECK(st == HP_ERROR);
            if (r.err_status != status)
                fprintf(stderr, "case %s: status %d, want %d (%s)\n", name, r.err_status, status,
                        r.err_message ? r.err_message : "");
            CHECK_EQ_I64(r.err_status, status);
        }
        hp_free(&r);
    }
}

#define EXPECT(name, lit, status) expect(name, lit, sizeof(lit) - 1, status)

/* A request that parses whole, with this path and query. */
static void expect_target(const char *s, const char *path, const char *query)
{
    struct hp_request r;
    CHECK(parse(&r, s, strlen(s), 0) == HP_COMPLETE);
    CHECK_STR(r.path, path);
    CHECK_STR(r.query, query);
    hp_free(&r);
}

int main(void)
{
    struct hp_request r;
    static const char ok[] = "POST /v1/orders?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: "
                             "application/json\r\nContent-Length: 2\r\nX-Y:  z \r\n\r\n{}";
    CHECK(parse(&r, ok, sizeof ok - 1, 1) == HP_COMPLETE);
    CHECK(r.method == HP_POST);
    CHECK_STR(r.path, "/v1/orders");
    CHECK_STR(r.query, "x=1");
    CHECK_STR(hp_header(&r, "content-type"), "application/json");
    CHECK_EQ_I64(r.body_len, 2);
    CHECK(r.keep_alive);
    hp_free(&r);

    /* Pipelined: the parse stops after the first request. */
    static const char two[] =
        "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    hp_init(&r, &lim);
    size_t n = hp_feed(&r, two, sizeof two - 1);
    CHECK(r.state == HP_COMPLETE);
    CHECK_STR(r.path, "/a");
    hp_reset(&r);
    CHECK(hp_feed(&r, two + n, sizeof two - 1 - n) == sizeof two - 1 - n);
    CHECK_STR(r.path, "/b");
    hp_free(&r);

    EXPECT("chunked",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
           0);
    EXPECT("two CL",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400);
    EXPECT("CL+TE",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           400);
    EXPECT("TE+CL",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
           400);
    EXPECT("TE twice",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n",
           400);
    EXPECT("TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           400);
    EXPECT("no host", "GET / HTTP/1.1\r\n\r\n", 400);
    EXPECT("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    EXPECT("http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", 0);
    EXPECT("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400);
    EXPECT("NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\0: ab\r\n\r\n", 400);
    EXPECT("two Authorization",
           "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n", 400);
    EXPECT("two Idempotency-Key",
           "GET / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: a\r\nIdempotency-Key: a\r\n\r\n", 400);
    EXPECT("CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    EXPECT("space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 2\r\n\r\n{}",
           400);
    EXPECT("space in a name", "GET / HTTP/1.1\r\nHost: a\r\nBad Header: v\r\n\r\n", 400);
    expect_target("GET https://127.0.0.1:8443/v1/clock?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                  "/v1/clock", "x=1");
    expect_target("GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", "/", "");
    EXPECT("a fragment", "GET /healthz#x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT("Host with a space and a path", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400);
    EXPECT("Host with a port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n", 0);
    EXPECT("trailing space on Content-Length",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2 \r\n\r\n{}", 0);
    EXPECT("trailing space on Transfer-Encoding",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n2\r\n{}\r\n0\r\n\r\n",
           0);
    /* A value's trailing whitespace is not part of it; a chunked body's trailer fields are
       dropped, never merged into the header. */
    static const char trailer[] = "POST / HTTP/1.1\r\nHost: a\r\nX-K: k \r\nTransfer-Encoding: "
                                  "chunked\r\n\r\n2\r\n{}\r\n0\r\nIdempotency-Key: t\r\nX-K: "
                                  "other\r\n\r\n";
    CHECK(parse(&r, trailer, sizeof trailer - 1, 0) == HP_COMPLETE);
    CHECK_STR(hp_header(&r, "x-k"), "k");
    CHECK(hp_header(&r, "idempotency-key") == NULL);
    CHECK_EQ_I64(r.body_len, 2);
    hp_free(&r);
    EXPECT("negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400);
    EXPECT("huge CL",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
    EXPECT("CL over limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413);
    EXPECT("bad method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT("relative target", "GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400);
    EXPECT("expect other",
           "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417);
    EXPECT("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    EXPECT("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0);

    /* Header bounds. */
    char big[20000];
    int m = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(big + m, 'a', 17000);
    memcpy(big + m + 17000, "\r\n\r\n", 4);
    expect("big header", big, (size_t)m + 17004, 431);
    char many[8192];
    m = snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 70; i++)
        m += snprintf(many + m, sizeof many - (size_t)m, "X%d: y\r\n", i);
    m += snprintf(many + m, sizeof many - (size_t)m, "\r\n");
    expect("many headers", many, (size_t)m, 431);
    char url[9000] = "GET /";
    memset(url + 5, 'a', 8500);
    memcpy(url + 8505, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
    expect("long url", url, 8528, 414);

    /* Chunked body over the limit. */
    struct hp_limits small = {8192, 16384, 10};
    hp_init(&r, &small);
    static const char ch[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    hp_feed(&r, ch, sizeof ch - 1);
    CHECK(r.state == HP_ERROR && r.err_status == 413);
    hp_free(&r);

    /* JSON. */
    struct api_error e;
    json_t *o;
    CHECK(reqjson_parse("{\"a\":1}", 7, &o, &e) == 0);
    json_decref(o);
    CHECK(reqjson_parse("{\"a\":1,\"a\":2}", 13, &o, &e) < 0 && e.status == 400 &&
          !strcmp(e.code, "invalid_json"));
    CHECK(reqjson_parse("[]", 2, &o, &e) < 0 && !strcmp(e.code, "invalid_json"));
    CHECK(reqjson_parse("", 0, &o, &e) < 0);
    /* \u0000 is valid JSON: parsed, then refused by the field that holds it (below). */
    CHECK(reqjson_parse("{\"a\":\"\\u0000\"}", 14, &o, &e) == 0);
    json_decref(o);
    CHECK(reqjson_parse("{} {}", 5, &o, &e) < 0);
    char deep[200];
    int d = 0;
    for (int i = 0; i < 33; i++)
        deep[d++] = '[';
    for (int i = 0; i < 33; i++)
        deep[d++] = ']';
    CHECK_EQ_I64(reqjson_depth(deep, (size_t)d), 33);
    CHECK_EQ_I64(reqjson_depth("{\"[[[[\":1}", 10), 1);
    CHECK_EQ_I64(reqjson_depth("{\"\\\"[[\":1}", 10), 1);

    struct dst {
        int64_t n;
        const char *s;
        int b;
        int64_t t;
    } dd;
    static const struct jfield f[] = {
        {"n", JF_INT, 1, 1, 100, offsetof(struct dst, n), 0},
        {"s", JF_STR, 0, 1, 8, offsetof(struct dst, s), JC_TOKEN},
        {"b", JF_BOOL, 0, 0, 0, offsetof(struct dst, b), 0},
        {"t", JF_HOUR, 0, 0, 0, offsetof(struct dst, t), 0},
    };
    uint64_t present;
    const char *good = "{\"n\":5,\"s\":\"H100-x\",\"b\":true,\"t\":\"2027-01-04T01:00:00Z\"}";
    CHECK(reqjson_parse(good, strlen(good), &o, &e) == 0);
    CHECK(reqjson_decode(o, f, 4, &dd, &present, &e) == 0);
    CHECK(dd.n == 5 && !strcmp(dd.s, "H100-x") && dd.b == 1 && dd.t % 3600 == 0 && present == 15);
    json_decref(o);
    const char *bad[] = {
        "{\"n\":0}",
        "{\"n\":101}",
        "{\"n\":\"5\"}",
        "{\"n\":5.0}",
        "{}",
        "{\"n\":5,\"x\":1}",
        "{\"n\":5,\"s\":\"\"}",
        "{\"n\":5,\"s\":\"a b\"}",
        "{\"n\":5,\"s\":\"123456789\"}",
        "{\"n\":5,\"b\":1}",
        "{\"n\":5,\"t\":\"2027-01-04T01:30:00Z\"}",
        "{\"n\":5,\"t\":\"2027-01-04\"}",
        "{\"n\":true}",
        "{\"n\":null}",
        "{\"n\":5,\"s\":\"H1\\u0000x\"}",
        "{\"n\":5,\"t\":\"2027-01-04T01:00:00Z\\u0000junk\"}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        CHECK(reqjson_parse(bad[i], strlen(bad[i]), &o, &e) == 0);
        int rc = reqjson_decode(o, f, 4, &dd, &present, &e);
        CHECK(rc < 0 && e.status == 400 && !strcmp(e.code, "invalid_request") && e.field[0]);
        json_decref(o);
    }
    return TEST_DONE();
}
