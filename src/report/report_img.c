/* The triage report's pictures of one row: the original decoded again and
 * windowed as the model saw it (fx_prep_run's geometry and window), shrunk
 * once to the larger of the view and thumbnail sizes (fx_overlay_base),
 * the overlay drawn on that (fx_overlay_render_base), and the thumbnail
 * shrunk from the overlay; each a JPEG (libjpeg-turbo) in a base64 data
 * URI (OpenSSL's encoder). */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "fxscreen/loader.h"
#include "report/report_internal.h"

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void jerr_exit(j_common_ptr c)
{
    jerr *e = (jerr *)c->err;
    e->pub.format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* "data:<mime>;base64,..." of bytes, malloc'd; NULL when out of memory. */
char *rp_data_uri(const char *mime, const uint8_t *b, size_t n)
{
    size_t head = strlen("data:;base64,") + strlen(mime);
    if (n > (((size_t)1 << 40)))
        return NULL;
    char *s = malloc(head + 4 * ((n + 2) / 3) + 1);
    if (!s)
        return NULL;
    sprintf(s, "data:%s;base64,", mime);
    EVP_EncodeBlock((unsigned char *)s + head, b, (int)n);
    return s;
}

/* A JPEG data URI of w x h pixels of ch (1 or 3) channels. */
static char *jpeg_uri(const uint8_t *px, int w, int h, int ch, int quality, fx_error *err)
{
    struct jpeg_compress_struct c;
    jerr e;
    unsigned char *buf = NULL;
    unsigned long n = 0;
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jerr_exit;
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        free(buf);
        fx_error_set(err, FX_ERR_NOMEM, "report: JPEG encoder: %s", e.msg);
        return NULL;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = ch == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * (size_t)ch);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    char *uri = rp_data_uri("image/jpeg", buf, n);
    free(buf);
    if (!uri)
        fx_error_set(err, FX_ERR_NOMEM, "report: out of memory for a picture");
    return uri;
}

/* Box-filter shrink of an RGB picture to *tw x *th (the longer side side). */
static uint8_t *shrink_rgb(const uint8_t *rgb, int w, int h, int side, int *tw, int *th)
{
    double s = (double)side / (w > h ? w : h);
    if (s > 1)
        s = 1;
    int W = (int)(w * s + 0.5), H = (int)(h * s + 0.5);
    W = W < 1 ? 1 : W, H = H < 1 ? 1 : H;
    uint8_t *out = malloc((size_t)W * (size_t)H * 3);
    if (!out)
        return NULL;
    for (int y = 0; y < H; y++) {
        int y0 = (int)((long)y * h / H), y1 = (int)((long)(y + 1) * h / H);
        y1 = y1 > y0 ? y1 : y0 + 1;
        for (int x = 0; x < W; x++) {
            int x0 = (int)((long)x * w / W), x1 = (int)((long)(x + 1) * w / W);
            x1 = x1 > x0 ? x1 : x0 + 1;
            unsigned long acc[3] = {0, 0, 0},
                          cnt = (unsigned long)(y1 - y0) * (unsigned long)(x1 - x0);
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    for (int k = 0; k < 3; k++)
                        acc[k] += rgb[((size_t)yy * (size_t)w + (size_t)xx) * 3 + (size_t)k];
            for (int k = 0; k < 3; k++)
                out[((size_t)y * (size_t)W + (size_t)x) * 3 + (size_t)k] =
                    (uint8_t)((acc[k] + cnt / 2) / cnt);
        }
    }
    *tw = W, *th = H;
    return out;
}

fx_status rp_render(const rp_ctx *c, const char *path, const uint8_t *bytes, size_t n,
                    const uint8_t *heat, const float *bbox, int want_view, fx_prep_scratch *scratch,
                    rp_pics *out, fx_error *err)
{
    memset(out, 0, sizeof *out);
    fx_decode_limits lim = {c->prep.max_megapixels};
    fx_image img;
    fx_status st =
        bytes ? fx_decode_memory(bytes, n, &lim, &img, err) : fx_decode_file(path, &lim, &img, err);
    if (st != FX_OK) {
        if (bytes)
            fx_error_prefix(err, "%s", path);
        return st;
    }
    size_t nin = (size_t)c->prep.channels * (size_t)c->prep.out_h * (size_t)c->prep.out_w;
    float *x = malloc(nin * sizeof *x);
    int side = want_view && c->view > c->thumb ? c->view : c->thumb;
    uint8_t *base = malloc((size_t)side * (size_t)side), *rgb = NULL, *small = NULL;
    fx_prep_geom g;
    int ow = 0, oh = 0, tw = 0, th = 0;
    if (!x || !base)
        st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    if (st == FX_OK)
        st = fx_prep_run(&img, &c->prep, scratch, x, NULL, &g, NULL, err);
    if (st == FX_OK)
        st = fx_overlay_base(&img, &g, c->prep.invert, side, base, &ow, &oh, err);
    if (st == FX_OK && !(rgb = malloc((size_t)ow * (size_t)oh * 3)))
        st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    if (st == FX_OK)
        st = fx_overlay_render_base(base, ow, oh, &g, heat, c->heat_h, c->heat_w, bbox, &c->ov, rgb,
                                    err);
    if (st == FX_OK && !(small = shrink_rgb(rgb, ow, oh, c->thumb, &tw, &th)))
        st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    if (st == FX_OK && !(out->thumb = jpeg_uri(small, tw, th, 3, c->quality, err)))
        st = FX_ERR_NOMEM;
    if (st == FX_OK && want_view) {
        out->w = ow, out->h = oh;
        if (!(out->overlay = jpeg_uri(rgb, ow, oh, 3, c->quality, err)) ||
            !(out->original = jpeg_uri(base, ow, oh, 1, c->quality, err)))
            st = FX_ERR_NOMEM;
    }
    if (st != FX_OK)
        rp_pics_free(out);
    free(x), free(base), free(rgb), free(small);
    fx_image_free(&img);
    return st;
}

void rp_pics_free(rp_pics *p)
{
    free(p->thumb), free(p->overlay), free(p->original);
    p->thumb = p->overlay = p->original = NULL;
}
