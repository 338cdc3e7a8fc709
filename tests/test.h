/*
 * test.h — the smallest useful unit-test kit for capx's C tests.
 * A test program runs its checks, prints one line per failure with file and
 * line, and exits non-zero if any failed; ctest runs each program.
 */
#ifndef CAPX_TESTS_TEST_H
#define CAPX_TESTS_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_I64(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        test_checks++;                                                                             \
        if (va_ != vb_) {                                                                          \
            test_failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b,   \
                    va_, vb_);                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        test_checks++;                                                                             \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            test_failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a,   \
                    #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                               \
        }                                                                                          \
    } while (0)

/* Exit status of the test program: prints a summary line. */
#define TEST_DONE()                                                                                \
    (fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, test_checks, test_failures),          \
     test_failures ? 1 : 0)

#endif
