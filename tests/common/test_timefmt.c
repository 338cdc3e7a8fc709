/* Round trips and rejections of RFC 3339 instants, against libc's gmtime_r. */
#include <time.h>

#include "common/timefmt.h"
#include "tests/test.h"

int main(void)
{
    int64_t t;
    char buf[CAPX_TIME_STRLEN];
    CHECK(capx_time_parse("2027-01-04T00:00:00Z", &t) == 0);
    CHECK_EQ_I64(t, 1799020800);
    capx_time_format(t, buf);
    CHECK_STR(buf, "2027-01-04T00:00:00Z");
    CHECK(capx_time_parse("2028-02-29T23:59:59Z", &t) == 0);
    CHECK(capx_time_parse("2027-02-29T00:00:00Z", &t) < 0);
    CHECK(capx_time_parse("2027-01-04T00:00:00", &t) < 0);
    CHECK(capx_time_parse("2027-01-04T00:00:00.5Z", &t) < 0);
    CHECK(capx_time_parse("2027-01-04 00:00:00Z", &t) < 0);
    CHECK(capx_time_parse("2027-13-04T00:00:00Z", &t) < 0);
    CHECK(capx_time_parse("2027-01-04T24:00:00Z", &t) < 0);
    CHECK(capx_time_parse("+027-01-04T00:00:00Z", &t) < 0);
    CHECK(capx_time_parse("", &t) < 0);
    CHECK(capx_time_parse(NULL, &t) < 0);
    /* Every day for 200 years, both ways, against gmtime_r. */
    for (int64_t s = 0; s < (int64_t)200 * 366 * 86400; s += 86400 + 3599) {
        struct tm tm;
        time_t tt = (time_t)s;
        gmtime_r(&tt, &tm);
        char want[64];
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
        capx_time_format(s, buf);
        CHECK_STR(buf, want);
        int64_t back;
        CHECK(capx_time_parse(buf, &back) == 0 && back == s);
    }
    return TEST_DONE();
}
