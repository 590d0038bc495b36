/* Minimal test harness: each TEST prints "PASS name" or "FAIL name" lines that
 * tests/run.sh counts; the binary exits non-zero when any check failed.
 *
 *   static void test_foo(void) { CHECK(1 + 1 == 2); CHECK_NEAR(x, 1.0, 1e-6); }
 *   int main(void) { RUN(test_foo); return check_summary(); }
 */
#ifndef FX_TESTS_CHECK_H
#define FX_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures_total;
static int check_failures_current;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            check_failures_current++;                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            check_failures_current++;                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                               \
            fprintf(stderr, "  %s:%d: %s = %.9g, %s = %.9g, |diff| > %g\n", __FILE__, __LINE__,    \
                    #a, check_a_, #b, check_b_, (double)(tol));                                    \
            check_failures_current++;                                                              \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        check_failures_current = 0;                                                                \
        fn();                                                                                      \
        printf("%s %s\n", check_failures_current ? "FAIL" : "PASS", #fn);                          \
        fflush(stdout);                                                                            \
        check_failures_total += check_failures_current;                                            \
    } while (0)

static inline int check_summary(void)
{
    return check_failures_total ? 1 : 0;
}

#endif
