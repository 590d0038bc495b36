/* SHA-256 against the FIPS 180-4 / NIST example vectors, streaming in odd
 * chunk sizes (every split point of a 2-block message), and the file helper. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/sha256.h"

static void hex_of(const void *data, size_t n, char hex[FX_SHA256_HEX])
{
    uint8_t d[FX_SHA256_BYTES];
    fx_sha256_buf(data, n, d);
    fx_sha256_hex(d, hex);
}

static void test_nist_vectors(void)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char hex[FX_SHA256_HEX];
        hex_of(v[i].msg, strlen(v[i].msg), hex);
        CHECK_MSG(!strcmp(hex, v[i].hex), "vector %zu: %s", i, hex);
    }
}

static void test_million_a(void)
{
    /* One million 'a', fed 1000 bytes at a time. */
    char buf[1000];
    memset(buf, 'a', sizeof buf);
    fx_sha256 c;
    fx_sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        fx_sha256_update(&c, buf, sizeof buf);
    uint8_t d[FX_SHA256_BYTES];
    char hex[FX_SHA256_HEX];
    fx_sha256_final(&c, d);
    fx_sha256_hex(d, hex);
    CHECK_MSG(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
              "%s", hex);
}

static void test_streaming_splits(void)
{
    /* Lengths around the 55/56/64-byte padding boundaries, split at every point. */
    uint8_t msg[130];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 37 + 11);
    int bad = 0;
    for (size_t n = 0; n <= sizeof msg; n++) {
        uint8_t one[FX_SHA256_BYTES];
        fx_sha256_buf(msg, n, one);
        for (size_t cut = 0; cut <= n; cut++) {
            fx_sha256 c;
            uint8_t two[FX_SHA256_BYTES];
            fx_sha256_init(&c);
            fx_sha256_update(&c, msg, cut);
            fx_sha256_update(&c, msg + cut, 0);
            fx_sha256_update(&c, msg + cut, n - cut);
            fx_sha256_final(&c, two);
            bad += memcmp(one, two, sizeof one) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d split digests differ from the one-shot digest", bad);
}

static void test_file(void)
{
    char path[] = "/tmp/fx_sha256_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, "abc", 3) == 3);
    close(fd);
    char hex[FX_SHA256_HEX];
    fx_error err = {0};
    CHECK(fx_sha256_file(path, hex, &err) == FX_OK);
    CHECK_MSG(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
              "%s", hex);
    unlink(path);
    fx_error_clear(&err);
    CHECK(fx_sha256_file(path, hex, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
}

int main(void)
{
    RUN(test_nist_vectors);
    RUN(test_million_a);
    RUN(test_streaming_splits);
    RUN(test_file);
    return check_summary();
}
