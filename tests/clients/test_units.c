/*
 * test_units.c — the dollar, duration and count parsers of capx and capx-admin
 * (clients/units.c): exact conversions, every refusal, the int64 edges, and a round trip
 * of the formatter against the parser over a sweep of values.
 */
#include <stdint.h>

#include "clients/units.h"
#include "tests/test.h"

static int64_t usd(const char *s, enum units_usd_kind k)
{
    char err[256] = "";
    int64_t v = -12345;
    if (units_parse_usd(s, k, &v, err, sizeof err) < 0) {
        CHECK(err[0] != '\0');
        CHECK(v == -12345); /* untouched on error */
        return -1;
    }
    return v;
}

static int64_t price(const char *s)
{
    return usd(s, UNITS_PRICE);
}

static int64_t amount(const char *s)
{
    return usd(s, UNITS_AMOUNT);
}

static int64_t dur(const char *s)
{
    char err[256] = "";
    int64_t v = -1;
    if (units_parse_duration(s, &v, err, sizeof err) < 0) {
        CHECK(err[0] != '\0');
        return -1;
    }
    return v;
}

static const char *fmt(int64_t m, char buf[UNITS_USD_STRLEN])
{
    units_format_usd(m, buf);
    return buf;
}

static void test_usd_accepted(void)
{
    CHECK_EQ_I64(price("0.000001"), 1);
    CHECK_EQ_I64(price("2.35"), 2350000);
    CHECK_EQ_I64(price("2.350000"), 2350000);
    CHECK_EQ_I64(price("2.3"), 2300000);
    CHECK_EQ_I64(price("2"), 2000000);
    CHECK_EQ_I64(price("02.35"), 2350000);
    CHECK_EQ_I64(price("0.1"), 100000);
    CHECK_EQ_I64(price("0.999999"), 999999);
    CHECK_EQ_I64(price("1000"), 1000000000);
    CHECK_EQ_I64(price("$2.35"), 2350000);
    CHECK_EQ_I64(price("2.35/gpu-hr"), 2350000);
    CHECK_EQ_I64(price("2.35/gpu-hour"), 2350000);
    CHECK_EQ_I64(price("$2.35/gpu-hr"), 2350000);
    CHECK_EQ_I64(amount("5000.00"), 5000000000LL);
    CHECK_EQ_I64(amount("5000"), 5000000000LL);
    CHECK_EQ_I64(amount("0.000001"), 1);
    /* The int64 edge: exactly INT64_MAX micro-USD, and one more refused. */
    CHECK_EQ_I64(amount("9223372036854.775807"), INT64_MAX);
    CHECK_EQ_I64(amount("0009223372036854.775807"), INT64_MAX);
    CHECK_EQ_I64(amount("9223372036854"), 9223372036854000000LL);
}

static void test_usd_refused(void)
{
    static const char *const bad[] = {
        "",
        "2.3500001",
        "0.0000001",
        "1.1234567",
        "-2.35",
        "+2.35",
        "-0",
        "1e3",
        "1E3",
        "2.35e0",
        ".5",
        "5.",
        ".",
        "$",
        " 2.35",
        "2.35 ",
        "2 .35",
        "2. 35",
        "2,35",
        "1,000",
        "2.3.5",
        "0",
        "0.0",
        "0.000000",
        "$0",
        "abc",
        "2.35$",
        "0x10",
        "inf",
        "nan",
        "2..35",
        "--2",
        "2.35/",
        "2.35/hr",
        "9223372036854.775808",
        "9223372036855",
        "99999999999999999999",
        "99999999999999999999999999999999.5",
        "2.35\n",
        "\t2.35",
        "$$2",
        "2.35/gpu-hr/gpu-hr",
        "/gpu-hr",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = price(bad[i]);
        if (v != -1)
            fprintf(stderr, "accepted \"%s\" as %lld\n", bad[i], (long long)v);
        CHECK(v == -1);
    }
    /* An amount never takes the per-GPU-hour suffix. */
    CHECK(amount("2.35/gpu-hr") == -1);
    CHECK(amount("-5000.00") == -1);
    CHECK(amount("5000.000001") == 5000000001LL);
    CHECK(amount("5000.0000001") == -1);
    CHECK(price(NULL) == -1);
}

static void test_usd_format(void)
{
    char b[UNITS_USD_STRLEN];
    CHECK_STR(fmt(2350000, b), "2.35");
    CHECK_STR(fmt(1, b), "0.000001");
    CHECK_STR(fmt(0, b), "0.00");
    CHECK_STR(fmt(5000000000LL, b), "5000.00");
    CHECK_STR(fmt(2100000, b), "2.10");
    CHECK_STR(fmt(2123400, b), "2.1234");
    CHECK_STR(fmt(-1500000, b), "-1.50");
    CHECK_STR(fmt(-1, b), "-0.000001");
    CHECK_STR(fmt(INT64_MAX, b), "9223372036854.775807");
    CHECK_STR(fmt(INT64_MIN, b), "-9223372036854.775808");
    /* Round trip: every formatted positive value parses back to itself. */
    int64_t v = 1;
    for (int i = 0; i < 2000; i++) {
        char err[128];
        int64_t back = 0;
        units_format_usd(v, b);
        CHECK(units_parse_usd(b, UNITS_AMOUNT, &back, err, sizeof err) == 0 && back == v);
        v = v < INT64_MAX / 4 ? v * 3 + (i % 7) : 1 + i;
    }
}

static void test_duration(void)
{
    CHECK_EQ_I64(dur("30d"), 720);
    CHECK_EQ_I64(dur("720h"), 720);
    CHECK_EQ_I64(dur("12h"), 12);
    CHECK_EQ_I64(dur("1h"), 1);
    CHECK_EQ_I64(dur("1d"), 24);
    CHECK_EQ_I64(dur("366d"), 8784);
    CHECK_EQ_I64(dur("0012h"), 12);
    CHECK_EQ_I64(dur("9223372036854775807h"), INT64_MAX);
    CHECK_EQ_I64(dur("384307168202282325d"), 384307168202282325LL * 24);
    static const char *const bad[] = {
        "0h",
        "0d",
        "00h",
        "h",
        "d",
        "",
        "12",
        "12m",
        "12s",
        "1.5h",
        "-1h",
        "+1h",
        " 12h",
        "12h ",
        "12 h",
        "12H",
        "12D",
        "1w",
        "12hh",
        "1e3h",
        "0x1h",
        "h12",
        "9223372036854775808h",
        "384307168202282326d",
        "99999999999999999999999d",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = dur(bad[i]);
        if (v != -1)
            fprintf(stderr, "accepted duration \"%s\" as %lld\n", bad[i], (long long)v);
        CHECK(v == -1);
    }
    CHECK(dur(NULL) == -1);
}

static void test_count(void)
{
    char err[128];
    int64_t v = 0;
    CHECK(units_parse_count("64", 100000, &v, err, sizeof err) == 0 && v == 64);
    CHECK(units_parse_count("100000", 100000, &v, err, sizeof err) == 0 && v == 100000);
    CHECK(units_parse_count("100001", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("0", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("-1", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("1.0", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count(" 1", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("", 100000, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("99999999999999999999999", INT64_MAX, &v, err, sizeof err) < 0);
    CHECK(units_parse_count("9223372036854775807", INT64_MAX, &v, err, sizeof err) == 0 &&
          v == INT64_MAX);
}

int main(void)
{
    test_usd_accepted();
    test_usd_refused();
    test_usd_format();
    test_duration();
    test_count();
    return TEST_DONE();
}
