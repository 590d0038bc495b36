/* Base64 decoding for serve's JSON bodies (src/serve/base64.h). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "serve/base64.h"

int sv_base64_decode(const char *s, uint8_t **out, size_t *n)
{
    const char *comma = strncmp(s, "data:", 5) ? NULL : strchr(s, ',');
    if (comma)
        s = comma + 1;
    size_t len = strlen(s);
    char *clean = malloc(len + 4);
    uint8_t *buf = malloc(len / 4 * 3 + 4);
    if (!clean || !buf) {
        free(clean);
        free(buf);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", s[i]))
            clean[k++] = s[i];
    while (k % 4) /* padding the sender left out */
        clean[k++] = '=';
    int bad = k == 0;
    size_t got = 0;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    int w = 0;
    if (!ctx || bad || EVP_DecodeUpdate(ctx, buf, &w, (const unsigned char *)clean, (int)k) < 0)
        bad = 1;
    got = (size_t)w;
    if (!bad && EVP_DecodeFinal(ctx, buf + got, &w) < 0)
        bad = 1;
    got += bad ? 0 : (size_t)w;
    EVP_ENCODE_CTX_free(ctx);
    free(clean);
    if (bad) {
        free(buf);
        return -1;
    }
    *out = buf, *n = got;
    return 0;
}
