/* float16 conversion against IEEE 754 binary16 constants, and ISO time. */
#include <string.h>

#include "check.h"
#include "fxscreen/h5util.h"

static void test_f16_constants(void)
{
    /* Bit patterns from the IEEE 754-2008 binary16 definition. */
    CHECK(fx_f32_to_f16(0.0f) == 0x0000);
    CHECK(fx_f32_to_f16(-0.0f) == 0x8000);
    CHECK(fx_f32_to_f16(1.0f) == 0x3c00);
    CHECK(fx_f32_to_f16(-2.0f) == 0xc000);
    CHECK(fx_f32_to_f16(0.5f) == 0x3800);
    CHECK(fx_f32_to_f16(65504.0f) == 0x7bff);      /* largest normal */
    CHECK(fx_f32_to_f16(65520.0f) == 0x7c00);      /* rounds to +inf */
    CHECK(fx_f32_to_f16(6.103515625e-05f) == 0x0400); /* smallest normal 2^-14 */
    CHECK(fx_f32_to_f16(5.9604645e-08f) == 0x0001);   /* smallest subnormal 2^-24 */
    CHECK(fx_f32_to_f16(2.9802322e-08f) == 0x0000);   /* 2^-25: ties to even -> 0 */
    CHECK(fx_f32_to_f16(0.1f) == 0x2e66);
    CHECK(fx_f32_to_f16(1.0f / 3.0f) == 0x3555);
    CHECK(fx_f32_to_f16(1.00048828125f) == 0x3c00);   /* 1 + 2^-11: tie -> even */
    CHECK(fx_f32_to_f16(1.00146484375f) == 0x3c02);   /* 1 + 3*2^-11: tie -> even (up) */
    CHECK(fx_f32_to_f16(__builtin_inff()) == 0x7c00);
    uint16_t nan = fx_f32_to_f16(__builtin_nanf(""));
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
}

static void test_iso8601(void)
{
    char b[32];
    fx_iso8601_now(b, sizeof b);
    CHECK(strlen(b) == 20 && b[4] == '-' && b[10] == 'T' && b[19] == 'Z');
}

int main(void)
{
    RUN(test_f16_constants);
    RUN(test_iso8601);
    return check_summary();
}
