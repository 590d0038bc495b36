/* Operator library: fast conv vs the reference on random odd sizes,
 * hand-checkable cases for every reference kernel, and the checked-in
 * PyTorch outputs in tests/data/ops_ref.h5 (see tests/py/gen_ops_ref.py). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fxscreen/ops.h"
#include "ops/ops_internal.h"
#include "ops_case.h"

#if defined(__SANITIZE_ADDRESS__)
#define FX_TEST_SMALL 1 /* ASan build: fewer / smaller random convs */
#else
#define FX_TEST_SMALL 0
#endif

/* xorshift64*: a deterministic stream per test, no global state. */
typedef struct rng {
    uint64_t s;
} rng;

static uint32_t rng_u32(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 2685821657736338717ULL) >> 32);
}

static int rng_int(rng *r, int lo, int hi) /* inclusive */
{
    return lo + (int)(rng_u32(r) % (uint32_t)(hi - lo + 1));
}

static float *rand_buf(rng *r, size_t n)
{
    float *b = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        b[i] = (float)rng_u32(r) / 2147483648.0f - 1.0f; /* [-1, 1) */
    return b;
}

/* ---- fast conv vs reference ---------------------------------------------- */

/* Runs both convolutions on random data; tolerance per element:
 * |fast - ref| <= 1e-4 + 1e-4 * |ref|.  The reference sums in double, the
 * fast path in float32 in sgemm's order; with inputs in [-1, 1) and at most
 * ~2000 terms the float32 error stays well under 1e-4 absolute. */
static int conv_compare(const fx_conv2d_params *p, rng *r)
{
    int oh, ow;
    fx_error err = {0};
    if (fx_conv2d_out_hw(p, &oh, &ow, &err) != FX_OK) {
        fprintf(stderr, "  bad params: %s\n", err.msg);
        return 1;
    }
    size_t nx = (size_t)p->n * p->c_in * p->h * p->w;
    size_t nw = (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    size_t ny = (size_t)p->n * p->c_out * oh * ow;
    float *x = rand_buf(r, nx), *w = rand_buf(r, nw), *b = rand_buf(r, (size_t)p->c_out);
    float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    int bad = 0;
    if (fx_op_conv2d_ref(p, x, w, b, y0) != FX_OK || fx_op_conv2d_fast(p, x, w, b, y1) != FX_OK)
        bad = 1;
    for (size_t i = 0; i < ny && !bad; i++)
        if (!(fabsf(y1[i] - y0[i]) <= 1e-4f + 1e-4f * fabsf(y0[i]))) {
            fprintf(stderr,
                    "  conv n%d c%d->%d %dx%d k%dx%d s%d,%d d%d,%d p%d,%d,%d,%d g%d: "
                    "y[%zu] fast %.7g ref %.7g\n",
                    p->n, p->c_in, p->c_out, p->h, p->w, p->kh, p->kw, p->stride_h, p->stride_w,
                    p->dil_h, p->dil_w, p->pad_t, p->pad_l, p->pad_b, p->pad_r, p->groups, i, y1[i],
                    y0[i]);
            bad = 1;
        }
    free(x), free(w), free(b), free(y0), free(y1);
    return bad;
}

static fx_conv2d_params conv_p(int n, int ci, int co, int h, int w, int k, int s, int d, int pad,
                               int g)
{
    fx_conv2d_params p = {.n = n,
                          .c_in = ci,
                          .h = h,
                          .w = w,
                          .c_out = co,
                          .kh = k,
                          .kw = k,
                          .stride_h = s,
                          .stride_w = s,
                          .dil_h = d,
                          .dil_w = d,
                          .pad_t = pad,
                          .pad_l = pad,
                          .pad_b = pad,
                          .pad_r = pad,
                          .groups = g};
    return p;
}

static void test_conv_fast_named_shapes(void)
{
    rng r = {0x9e3779b97f4a7c15ULL};
    fx_conv2d_params cases[] = {
        conv_p(1, 3, 5, 7, 9, 1, 1, 1, 0, 1),   /* 1x1 pointwise */
        conv_p(3, 8, 6, 5, 5, 1, 1, 1, 0, 2),   /* 1x1 pointwise, groups 2 */
        conv_p(3, 4, 7, 6, 5, 1, 2, 1, 0, 1),   /* 1x1 stride 2 (ResNet downsample) */
        conv_p(1, 3, 4, 9, 11, 3, 1, 1, 1, 1),  /* 3x3 same */
        conv_p(3, 5, 3, 8, 7, 5, 1, 1, 2, 1),   /* 5x5 */
        conv_p(1, 3, 8, 33, 31, 7, 2, 1, 3, 1), /* 7x7 stride 2 stem */
        conv_p(1, 6, 4, 13, 12, 3, 1, 2, 2, 1), /* dilation 2 */
        conv_p(3, 6, 10, 9, 9, 3, 2, 1, 1, 2),  /* groups 2 */
        conv_p(3, 7, 7, 10, 9, 3, 1, 1, 1, 7),  /* depthwise */
        conv_p(1, 5, 10, 11, 8, 5, 2, 1, 2, 5), /* depthwise x2 multiplier, stride 2 */
        conv_p(1, 37, 5, 1, 1, 1, 1, 1, 0, 1),  /* 1x1 spatial */
        conv_p(1, 3, 2, 1, 1, 3, 1, 1, 1, 1),   /* 3x3 on 1x1 (all but centre padded) */
        conv_p(1, 4, 4, 3, 3, 3, 1, 3, 3, 4),   /* depthwise dilation 3 */
    };
    fx_conv2d_params asym = conv_p(3, 4, 6, 9, 10, 3, 2, 1, 0, 1);
    asym.pad_t = 0, asym.pad_l = 1, asym.pad_b = 2, asym.pad_r = 0; /* asymmetric */
    fx_conv2d_params rect = conv_p(1, 5, 3, 12, 7, 1, 1, 1, 0, 1);
    rect.kh = 3, rect.kw = 5, rect.stride_h = 1, rect.stride_w = 3, rect.pad_l = 2, rect.pad_r = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(conv_compare(&cases[i], &r) == 0, "case %zu", i);
    CHECK(conv_compare(&asym, &r) == 0);
    CHECK(conv_compare(&rect, &r) == 0);
}

/* Random params drawn across every path; sizes shrink under ASan. */
static void test_conv_fast_random(void)
{
    rng r = {0x243f6a8885a308d3ULL};
    int trials = FX_TEST_SMALL ? 40 : 200, hmax = FX_TEST_SMALL ? 17 : 33;
    for (int t = 0; t < trials; t++) {
        static const int ks[] = {1, 3, 5, 7};
        fx_conv2d_params p;
        memset(&p, 0, sizeof p);
        p.n = rng_int(&r, 0, 1) ? 3 : 1;
        p.kh = ks[rng_int(&r, 0, 3)];
        p.kw = rng_int(&r, 0, 3) ? p.kh : ks[rng_int(&r, 0, 3)];
        p.stride_h = rng_int(&r, 1, 2), p.stride_w = rng_int(&r, 1, 2);
        p.dil_h = rng_int(&r, 1, 2), p.dil_w = rng_int(&r, 1, 2);
        p.pad_t = rng_int(&r, 0, 3), p.pad_b = rng_int(&r, 0, 3);
        p.pad_l = rng_int(&r, 0, 3), p.pad_r = rng_int(&r, 0, 3);
        int kind = rng_int(&r, 0, 2); /* 0 dense, 1 groups 2, 2 depthwise */
        int cg = rng_int(&r, 3, FX_TEST_SMALL ? 9 : 37);
        p.groups = kind == 0 ? 1 : kind == 1 ? 2 : cg;
        p.c_in = kind == 1 ? 2 * ((cg + 1) / 2) : cg;
        p.c_out = kind == 2 ? p.c_in * rng_int(&r, 1, 2) : p.groups * rng_int(&r, 1, 8);
        p.h = rng_int(&r, 1, hmax), p.w = rng_int(&r, 1, hmax);
        int oh, ow;
        if (fx_conv2d_out_hw(&p, &oh, &ow, NULL) != FX_OK) {
            t--; /* kernel larger than the padded input: draw again */
            continue;
        }
        CHECK_MSG(conv_compare(&p, &r) == 0, "trial %d", t);
    }
}

static void test_conv_fast_ws(void)
{
    fx_conv2d_params p = conv_p(1, 3, 4, 9, 9, 3, 1, 1, 1, 1);
    CHECK(fx_conv2d_fast_ws_floats(&p) >= 27 * 9);
    float x[243] = {0}, w[108] = {0}, y[324];
    CHECK(fx_op_conv2d_fast_ws(&p, x, w, NULL, y, NULL) == FX_ERR_USAGE); /* needs scratch */
    p.groups = 3;
    p.c_out = 3;
    /* depthwise 3x3: the fast kernel's padded plane, one per thread */
    CHECK(fx_conv2d_fast_ws_floats(&p) >= 11 * 11);
    CHECK(fx_op_conv2d_fast_ws(&p, x, w, NULL, y, NULL) == FX_ERR_USAGE);
    fx_conv2d_params p7 = p;
    p7.kh = p7.kw = 7, p7.pad_t = p7.pad_l = p7.pad_b = p7.pad_r = 3;
    CHECK(fx_conv2d_fast_ws_floats(&p7) == 0); /* 7x7 depthwise: the generic loop, no scratch */
    p.groups = 2;
    CHECK(fx_conv2d_fast_ws_floats(&p) == -1); /* 2 does not divide 3 */
}

/* ---- fast kernels with threads and epilogues vs the references ----------- */

static int near_all(const float *got, const float *want, size_t n, float atol, float rtol,
                    const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= atol + rtol * fabsf(want[i]))) {
            fprintf(stderr, "  %s: [%zu] fast %.9g ref %.9g\n", what, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* fx_op_conv2d_fast_mt with OpenBLAS at 1 thread (so the OpenMP task loop
 * really runs) and 1..3 threads, each epilogue, against conv_ref followed
 * by the reference Add and activations; tolerance as conv_compare. */
/* The unfused reference of a conv epilogue, in place on y (n floats, the
 * conv's bias already in): + res (when non-NULL), then *big_before_act =
 * max |y| (when non-NULL; Clip bounds the output, not the conv's error),
 * then the activation by the reference ops (Clip to [-0.25, 0.5], SiLU as
 * Sigmoid then Mul). */
static void ref_epilogue(float *y, const float *res, size_t n, double *big_before_act,
                         fx_act_kind act)
{
    fx_shape s = {1, {(int64_t)n}};
    fx_binary_params bp = {s, s};
    fx_act_params ap = {(int64_t)n, -0.25f, 0.5f};
    if (res)
        fx_op_add_ref(&bp, y, res, y);
    for (size_t i = 0; big_before_act && i < n; i++)
        *big_before_act =
            fabs((double)y[i]) > *big_before_act ? fabs((double)y[i]) : *big_before_act;
    if (act == FX_ACT_RELU)
        fx_op_relu_ref(&ap, y, y);
    else if (act == FX_ACT_CLIP)
        fx_op_clip_ref(&ap, y, y);
    else if (act == FX_ACT_SILU) {
        float *sg = malloc(sizeof(float) * n);
        fx_op_sigmoid_ref(&ap, y, sg);
        fx_op_mul_ref(&bp, y, sg, y);
        free(sg);
    }
}

static int conv_mt_compare(const fx_conv2d_params *p, rng *r, int threads, fx_act_kind act,
                           int with_res)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return 1;
    size_t nx = (size_t)p->n * p->c_in * p->h * p->w;
    size_t nw = (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    size_t ny = (size_t)p->n * p->c_out * oh * ow;
    float *x = rand_buf(r, nx), *w = rand_buf(r, nw), *b = rand_buf(r, (size_t)p->c_out);
    float *res = rand_buf(r, ny), *y0 = malloc(sizeof(float) * ny),
          *y1 = malloc(sizeof(float) * ny);
    int64_t nws = fx_conv2d_fast_ws_floats_mt(p, threads);
    float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
    fx_conv_epilogue ep = {.residual = with_res ? res : NULL, .act = act, .lo = -0.25f, .hi = 0.5f};
    int bad = fx_op_conv2d_ref(p, x, w, b, y0) != FX_OK ||
              fx_op_conv2d_fast_mt(p, &ep, x, w, b, y1, ws, threads) != FX_OK;
    ref_epilogue(y0, with_res ? res : NULL, ny, NULL, act);
    if (!bad && !near_all(y1, y0, ny, 1e-4f, 1e-4f, "conv_mt")) {
        fprintf(stderr, "  n%d c%d->%d %dx%d k%dx%d s%d g%d threads %d act %d res %d\n", p->n,
                p->c_in, p->c_out, p->h, p->w, p->kh, p->kw, p->stride_h, p->groups, threads,
                (int)act, with_res);
        bad = 1;
    }
    free(x), free(w), free(b), free(res), free(y0), free(y1), free(ws);
    return bad;
}

/* The pointwise prologue (a fused BatchNorm + Relu in front of a 1x1 conv):
 * x' = max(a[c] * x + s[c], 0) (or without the max), or a per-image gate
 * x' = g[n][c] * x (squeeze-excitation), or x read in channel pieces (a
 * fused Concat), computed here, then the reference conv and epilogue,
 * against the fast path with the prologue; batch 1 (column chunks per
 * thread), big planes (cache-sized chunks), 1x1 planes, 1-3 threads.
 * Other paths refuse a prologue. */
static void test_conv_prologue(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0x7e2f1c0a93d4b581ULL};
    fx_conv2d_params cases[] = {
        conv_p(1, 5, 7, 9, 11, 1, 1, 1, 0, 1),    conv_p(3, 17, 9, 1, 1, 1, 1, 1, 0, 1),
        conv_p(2, 12, 8, 40, 37, 1, 1, 1, 0, 1),  conv_p(4, 33, 16, 7, 7, 1, 1, 1, 0, 1),
        conv_p(1, 3, 300, 30, 30, 1, 1, 1, 0, 1), /* og 300: the narrowest chunks */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fx_conv2d_params *p = &cases[i];
        size_t hw = (size_t)p->h * p->w, nx = (size_t)p->n * p->c_in * hw;
        size_t ny = (size_t)p->n * p->c_out * hw;
        float *x = rand_buf(&r, nx), *w = rand_buf(&r, (size_t)p->c_out * p->c_in);
        float *b = rand_buf(&r, (size_t)p->c_out), *res = rand_buf(&r, ny);
        float *ab = rand_buf(&r, 2 * (size_t)p->c_in), *xp = malloc(sizeof(float) * nx);
        float *gate = rand_buf(&r, (size_t)p->n * p->c_in); /* per image: squeeze-excitation */
        float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
        for (int t = 1; t <= 3; t++)
            for (int mode = 0; mode < 4; mode++) { /* shift, + relu, gate, + relu from pieces */
                int relu = mode == 1 || mode == 3;
                for (size_t k = 0; k < nx; k++) {
                    size_t c = k / hw % (size_t)p->c_in, n = k / hw / (size_t)p->c_in;
                    float v = mode == 2 ? gate[n * (size_t)p->c_in + c] * x[k]
                                        : ab[c] * x[k] + ab[p->c_in + c];
                    xp[k] = relu && v < 0.0f ? 0.0f : v;
                }
                fx_act_kind act = t == 2 ? FX_ACT_SILU : FX_ACT_RELU;
                fx_conv_epilogue ep = {.residual = t == 3 ? res : NULL,
                                       .act = act,
                                       .pre_scale = mode == 2 ? gate : ab,
                                       .pre_shift = mode == 2 ? NULL : ab + p->c_in,
                                       .pre_relu = relu,
                                       .pre_per_image = mode == 2};
                /* mode 3: x cut into channel pieces of 1, c_in/2 - 1 and the rest */
                int pc[3] = {1, p->c_in / 2 - 1, p->c_in - p->c_in / 2}, np = 0, cc = 0;
                float *piece[3] = {NULL, NULL, NULL};
                const float *pieces[3];
                int pcs[3];
                for (int k = 0; mode == 3 && k < 3; cc += pc[k++]) {
                    if (pc[k] < 1)
                        continue;
                    piece[k] = malloc(sizeof(float) * (size_t)p->n * pc[k] * hw);
                    for (int n = 0; n < p->n; n++)
                        memcpy(piece[k] + (size_t)n * pc[k] * hw,
                               x + ((size_t)n * p->c_in + cc) * hw, sizeof(float) * pc[k] * hw);
                    pieces[np] = piece[k], pcs[np++] = pc[k];
                }
                ep.pre_src = mode == 3 ? pieces : NULL;
                ep.pre_src_c = mode == 3 ? pcs : NULL;
                ep.n_pre_src = np;
                int64_t nws = fx_conv2d_fast_ws_floats_mt(p, t);
                float *ws = malloc(sizeof(float) * (size_t)(nws > 0 ? nws : 1));
                CHECK(nws > 0 && fx_op_conv2d_ref(p, xp, w, b, y0) == FX_OK);
                CHECK(fx_op_conv2d_fast_mt(p, &ep, mode == 3 ? NULL : x, w, b, y1, ws, t) == FX_OK);
                ref_epilogue(y0, ep.residual, ny, NULL, act);
                CHECK_MSG(near_all(y1, y0, ny, 1e-4f, 1e-4f, "prologue"), "case %zu t %d mode %d",
                          i, t, mode);
                CHECK(fx_op_conv2d_fast_mt(p, &ep, x, w, b, y1, NULL, t) == FX_ERR_USAGE);
                if (np > 1) { /* pieces that do not add up to C_in */
                    ep.n_pre_src = np - 1;
                    CHECK(fx_op_conv2d_fast_mt(p, &ep, x, w, b, y1, ws, t) == FX_ERR_USAGE);
                }
                free(ws), free(piece[0]), free(piece[1]), free(piece[2]);
            }
        free(x), free(w), free(b), free(res), free(ab), free(gate), free(xp), free(y0), free(y1);
    }
    /* not pointwise: refused */
    fx_conv2d_params p3 = conv_p(1, 3, 4, 9, 9, 3, 1, 1, 1, 1);
    float one[3] = {1, 1, 1}, x[243] = {0}, w[108] = {0}, y[324], ws[4096];
    fx_conv_epilogue ep = {.pre_scale = one, .pre_shift = one};
    CHECK(fx_conv2d_fast_ws_floats_mt(&p3, 1) <= 4096);
    CHECK(fx_op_conv2d_fast_mt(&p3, &ep, x, w, NULL, y, ws, 1) == FX_ERR_USAGE);
    openblas_set_num_threads(blas);
}

static void test_conv_fast_mt_epilogue(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0x452821e638d01377ULL};
    fx_conv2d_params cases[] = {
        conv_p(1, 5, 7, 9, 11, 1, 1, 1, 0, 1),   /* 1x1, batch 1: column chunks */
        conv_p(3, 6, 8, 7, 5, 1, 1, 1, 0, 2),    /* 1x1 groups 2 */
        conv_p(5, 6, 9, 7, 7, 1, 1, 1, 0, 1),    /* 1x1 small planes: images side by side */
        conv_p(3, 5, 4, 14, 15, 1, 1, 1, 0, 1),  /* ... two per sgemm, a last group of one */
        conv_p(3, 17, 9, 1, 1, 1, 1, 1, 0, 1),   /* 1x1 on 1x1 planes: one sgemm */
        conv_p(1, 3, 5, 13, 11, 3, 1, 1, 1, 1),  /* 3x3 batch 1: finer bands */
        conv_p(3, 4, 6, 9, 7, 3, 2, 1, 1, 1),    /* 3x3 stride 2 */
        conv_p(2, 6, 4, 11, 9, 3, 1, 1, 1, 2),   /* groups 2 */
        conv_p(3, 7, 7, 13, 9, 3, 1, 1, 1, 7),   /* depthwise s1 */
        conv_p(1, 5, 10, 11, 13, 5, 2, 1, 2, 5), /* depthwise x2, 5x5 s2 */
        conv_p(1, 3, 8, 23, 21, 7, 2, 1, 3, 1),  /* 7x7 s2 stem */
    };
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 3; t++)
            for (int a = 0; a < 4; a++)
                CHECK_MSG(conv_mt_compare(&cases[i], &r, t, acts[a], (a + t) % 2) == 0,
                          "case %zu threads %d act %d", i, t, a);
    /* Misuse: scratch missing, or zero threads. */
    fx_conv2d_params p = conv_p(1, 3, 4, 9, 9, 3, 1, 1, 1, 1);
    float x[243] = {0}, w[108] = {0}, y[324];
    CHECK(fx_conv2d_fast_ws_floats_mt(&p, 2) == 2 * fx_conv2d_fast_ws_floats(&p));
    CHECK(fx_op_conv2d_fast_mt(&p, NULL, x, w, NULL, y, NULL, 2) == FX_ERR_USAGE);
    CHECK(fx_op_conv2d_fast_mt(&p, NULL, x, w, NULL, y, y, 0) == FX_ERR_USAGE);
    openblas_set_num_threads(blas);
}

/* fx_conv_gemm both ways (the AVX-512 tile kernel where this CPU has it,
 * and bias + sgemm + epilogue) against a double-precision product and the
 * reference epilogue: every tile shape (m % 6, partial last vectors, n
 * under one vector), padded row strides whose padding must stay
 * untouched (the masked stores), each activation, bias and residual on and
 * off. */
static void test_conv_gemm_kernel(void)
{
    rng r = {0x3f84d5b5b5470917ULL};
    static const int ms[] = {1, 5, 6, 7, 13, 24}, ns[] = {1, 15, 16, 17, 64, 79, 130};
    static const int ks[] = {1, 3, 37};
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    int trials = 0;
    for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++) {
                int m = ms[im], n = ns[in], k = ks[ik], t = trials++;
                size_t ldx = (size_t)n + (size_t)(t % 3) * 5, ldy = (size_t)n + (size_t)(t % 2) * 7;
                float *w = rand_buf(&r, (size_t)m * k), *x = rand_buf(&r, (size_t)k * ldx);
                float *b = rand_buf(&r, (size_t)m), *res = rand_buf(&r, (size_t)m * ldy);
                float *want = malloc(sizeof(float) * (size_t)m * n),
                      *rc = malloc(sizeof(float) * (size_t)m * n);
                float *y = malloc(sizeof(float) * (size_t)m * ldy);
                fx_act_kind act = acts[t % 4];
                int with_b = t % 5 != 0, with_res = t % 3 == 1;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = with_b ? b[i] : 0.0;
                        for (int q = 0; q < k; q++)
                            acc += (double)w[(size_t)i * k + q] * x[(size_t)q * ldx + j];
                        want[(size_t)i * n + j] = (float)acc;
                        rc[(size_t)i * n + j] = res[(size_t)i * ldy + j];
                    }
                ref_epilogue(want, with_res ? rc : NULL, (size_t)m * n, NULL, act);
                fx_conv_epilogue ep = {.act = act, .lo = -0.25f, .hi = 0.5f};
                for (int force = 0; force <= 1; force++) {
                    for (size_t i = 0; i < (size_t)m * ldy; i++)
                        y[i] = 1234.5f;
                    fx_conv_gemm_path(&ep, m, n, k, w, x, ldx, with_b ? b : NULL, y,
                                      with_res ? res : NULL, ldy, force);
                    int bad = 0;
                    for (int i = 0; i < m && !bad; i++)
                        for (size_t j = 0; j < ldy && !bad; j++) {
                            float g = y[(size_t)i * ldy + j];
                            float e = j < (size_t)n ? want[(size_t)i * n + j] : 1234.5f;
                            bad = !(fabsf(g - e) <= 2e-5f + 2e-5f * fabsf(e));
                        }
                    CHECK_MSG(!bad, "m %d n %d k %d ldx %zu ldy %zu act %d bias %d res %d force %d",
                              m, n, k, ldx, ldy, (int)act, with_b, with_res, force);
                }
                free(w), free(x), free(b), free(res), free(want), free(rc), free(y);
            }
    if (!fx_cpu_avx512())
        fprintf(stderr, "  (no AVX-512 here: both runs took the sgemm path)\n");
}

/* The given path (Winograd, depthwise) forced on p (1..3 threads, epilogue act, residual and
 * bias on or off) against conv_ref + the unfused reference ops.  Returns
 * max |fast - ref| / max |ref| or -1 if a call failed; max |ref| is taken
 * before the activation (Clip bounds the output, not the conv's error). */
static double path_rel_err(const fx_conv2d_params *p, rng *r, int threads, fx_act_kind act,
                           int with_res, int with_bias, fx_conv_path path)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return -1;
    size_t nx = (size_t)p->n * p->c_in * p->h * p->w;
    size_t nw = (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    size_t ny = (size_t)p->n * p->c_out * oh * ow;
    float *x = rand_buf(r, nx), *w = rand_buf(r, nw), *b = rand_buf(r, (size_t)p->c_out);
    float *res = rand_buf(r, ny), *y0 = malloc(sizeof(float) * ny),
          *y1 = malloc(sizeof(float) * ny);
    int64_t nws = fx_conv_fast_ws_floats_path(p, threads, path);
    float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
    fx_conv_epilogue ep = {.residual = with_res ? res : NULL, .act = act, .lo = -0.25f, .hi = 0.5f};
    const float *bb = with_bias ? b : NULL;
    double rel = -1;
    if (nws >= 0 && (nws == 0 || ws) && fx_op_conv2d_ref(p, x, w, bb, y0) == FX_OK &&
        fx_conv_fast_mt_path(p, &ep, x, w, bb, y1, ws, threads, path) == FX_OK) {
        double err = 0, big = 0;
        ref_epilogue(y0, with_res ? res : NULL, ny, &big, act);
        for (size_t i = 0; i < ny; i++) {
            double d = fabs((double)y1[i] - y0[i]);
            err = d > err || d != d ? d : err; /* a NaN fails the check */
        }
        rel = big > 0 ? err / big : err;
    }
    free(x), free(w), free(b), free(res), free(y0), free(y1), free(ws);
    return rel;
}

/* The depthwise path's fused GlobalAveragePool (fx_conv_epilogue.gap):
 * the means of the planes it wrote, against fx_op_global_avgpool_ref of
 * that output; both ways of the kernel (channel blocks, single planes),
 * the generic loop (dilation 2), the expand + depthwise pair; refused on
 * the other paths. */
static void test_conv_dw_gap(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0x8be3a1c58ec3a3a7ULL};
    fx_conv2d_params cases[] = {
        conv_p(3, 19, 19, 14, 14, 5, 1, 1, 2, 19), /* channel blocks */
        conv_p(2, 5, 5, 40, 37, 3, 2, 1, 1, 5),    /* single planes, stride 2 */
        conv_p(2, 4, 4, 9, 8, 3, 1, 2, 2, 4),      /* dilation 2: the generic loop */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fx_conv2d_params *p = &cases[i];
        int oh, ow;
        CHECK(fx_conv2d_out_hw(p, &oh, &ow, NULL) == FX_OK);
        size_t nx = (size_t)p->n * p->c_in * p->h * p->w, ny = (size_t)p->n * p->c_out * oh * ow;
        float *x = rand_buf(&r, nx), *w = rand_buf(&r, (size_t)p->c_out * p->kh * p->kw);
        float *y = malloc(sizeof(float) * ny), *g = malloc(sizeof(float) * p->n * p->c_out);
        float *want = malloc(sizeof(float) * p->n * p->c_out);
        int64_t nws = fx_conv_fast_ws_floats_path(p, 2, FX_CONV_DEPTHWISE);
        float *ws = malloc(sizeof(float) * (size_t)(nws > 0 ? nws : 1));
        fx_conv_epilogue ep = {.act = FX_ACT_SILU, .gap = g};
        fx_global_pool_params gp = {p->n, p->c_out, (int64_t)oh * ow};
        CHECK(fx_conv_fast_mt_path(p, &ep, x, w, NULL, y, ws, 2, FX_CONV_DEPTHWISE) == FX_OK);
        CHECK(fx_op_global_avgpool_ref(&gp, y, want) == FX_OK);
        CHECK_MSG(near_all(g, want, (size_t)(p->n * p->c_out), 1e-6f, 2e-7f, "gap"), "case %zu", i);
        free(x), free(w), free(y), free(g), free(want), free(ws);
    }
    /* the expand + depthwise pair */
    fx_conv2d_params pe = conv_p(2, 6, 21, 13, 11, 1, 1, 1, 0, 1);
    fx_conv2d_params pd = conv_p(2, 21, 21, 13, 11, 3, 2, 1, 1, 21);
    int oh, ow;
    CHECK(fx_conv2d_out_hw(&pd, &oh, &ow, NULL) == FX_OK);
    size_t ny = (size_t)2 * 21 * oh * ow;
    float *x = rand_buf(&r, 2 * 6 * 143), *we = rand_buf(&r, 21 * 6), *wd = rand_buf(&r, 21 * 9);
    float *y = malloc(sizeof(float) * ny), g[42], want[42];
    float *ws = malloc(sizeof(float) * (size_t)fx_conv_expand_dw_ws_floats(&pe, &pd, 2));
    fx_conv_expand xe = {&pe, we, NULL, FX_ACT_RELU, 0, 0, NULL};
    fx_conv_epilogue ep = {.act = FX_ACT_RELU, .gap = g};
    fx_global_pool_params gp = {2, 21, (int64_t)oh * ow};
    CHECK(fx_conv_expand_dw(&xe, &pd, &ep, x, wd, NULL, y, ws, 2) == FX_OK);
    CHECK(fx_op_global_avgpool_ref(&gp, y, want) == FX_OK);
    CHECK(near_all(g, want, 42, 1e-6f, 2e-7f, "expand gap"));
    /* refused where it does not run */
    fx_conv2d_params pw = conv_p(1, 4, 3, 5, 5, 1, 1, 1, 0, 1);
    float wp[12] = {0}, yp[75];
    CHECK(fx_conv_fast_mt_path(&pw, &ep, x, wp, NULL, yp, ws, 1, FX_CONV_POINTWISE) ==
          FX_ERR_USAGE);
    free(x), free(we), free(wd), free(y), free(ws);
    openblas_set_num_threads(blas);
}

/* fx_conv_expand_dw (a pointwise conv + act, then a depthwise conv + act,
 * fused) against conv_ref + the reference activations run one after the
 * other; max |err| / max |ref before the last act|.  -1 if a call failed. */
static double expand_dw_rel_err(const fx_conv2d_params *pe, const fx_conv2d_params *pd, rng *r,
                                int threads, fx_act_kind act_e, fx_act_kind act_d, int with_bias)
{
    int oh, ow;
    if (fx_conv2d_out_hw(pd, &oh, &ow, NULL) != FX_OK)
        return -1;
    size_t nx = (size_t)pe->n * pe->c_in * pe->h * pe->w, ne = nx / pe->c_in * pe->c_out;
    size_t ny = (size_t)pd->n * pd->c_out * oh * ow;
    float *x = rand_buf(r, nx), *we = rand_buf(r, (size_t)pe->c_out * pe->c_in);
    float *be = rand_buf(r, (size_t)pe->c_out), *bd = rand_buf(r, (size_t)pd->c_out);
    float *wd = rand_buf(r, (size_t)pd->c_out * pd->kh * pd->kw), *e = malloc(sizeof(float) * ne);
    float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    int64_t nws = fx_conv_expand_dw_ws_floats(pe, pd, threads);
    float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
    fx_conv_expand xe = {pe, we, with_bias ? be : NULL, act_e, -0.25f, 0.5f, NULL};
    fx_conv_epilogue ep = {.act = act_d, .lo = -0.25f, .hi = 0.5f};
    float *wt = NULL; /* on two threads, the weights transposed beforehand as a plan does */
    if (threads == 2 && fx_conv_expand_wants_wt(pe, pd)) {
        wt = malloc(sizeof(float) * (size_t)pe->c_out * pe->c_in);
        fx_conv_expand_transpose(pe, we, wt);
        xe.wt = wt;
    }
    double rel = -1;
    if (ws && fx_op_conv2d_ref(pe, x, we, xe.b, e) == FX_OK) {
        ref_epilogue(e, NULL, ne, NULL, act_e);
        if (fx_op_conv2d_ref(pd, e, wd, with_bias ? bd : NULL, y0) == FX_OK &&
            fx_conv_expand_dw(&xe, pd, &ep, x, wd, with_bias ? bd : NULL, y1, ws, threads) ==
                FX_OK) {
            double err = 0, big = 0;
            ref_epilogue(y0, NULL, ny, &big, act_d);
            for (size_t i = 0; i < ny; i++) {
                double d = fabs((double)y1[i] - y0[i]);
                err = d > err || d != d ? d : err;
            }
            rel = big > 0 ? err / big : err;
        }
    }
    free(x), free(we), free(be), free(bd), free(wd), free(e), free(y0), free(y1), free(ws);
    free(wt);
    return rel;
}

/* Random inverted-residual pairs: expansions of 1..40 channels (partial
 * blocks of 8), planes 1x1..19x17 (channel blocks and single planes for
 * the depthwise part) and a few wide ones (several expansion blocks per
 * image), 3x3 / 5x5, stride 1 / 2, uneven pads, 1..3 threads, every act. */
static void test_conv_expand_dw(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0x3f84d5b5b5470917ULL};
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    int trials = FX_TEST_SMALL ? 30 : 160;
    double worst = 0;
    for (int t = 0; t < trials; t++) {
        int wide = t % 10 == 0, n = rng_int(&r, 1, 3), ci = rng_int(&r, 1, 20);
        int ce = wide ? rng_int(&r, 40, 90) : rng_int(&r, 1, 40);
        int h = wide ? rng_int(&r, 60, 90) : rng_int(&r, 1, 19);
        int w = wide ? rng_int(&r, 60, 90) : rng_int(&r, 1, 17), k = t % 2 ? 5 : 3;
        fx_conv2d_params pe = conv_p(n, ci, ce, h, w, 1, 1, 1, 0, 1);
        fx_conv2d_params pd = conv_p(n, ce, ce, h, w, k, rng_int(&r, 1, 2), 1, 0, ce);
        pd.pad_t = rng_int(&r, 0, 2), pd.pad_b = rng_int(&r, 0, 2);
        pd.pad_l = rng_int(&r, 0, 2), pd.pad_r = rng_int(&r, 0, 2);
        int oh, ow;
        if (fx_conv2d_out_hw(&pd, &oh, &ow, NULL) != FX_OK) {
            t--; /* kernel larger than the padded input: draw again */
            continue;
        }
        CHECK(fx_conv_expand_dw_applies(&pe, &pd));
        int threads = rng_int(&r, 1, 3);
        double e =
            expand_dw_rel_err(&pe, &pd, &r, threads, acts[t % 4], acts[(t / 4) % 4], t % 5 != 0);
        worst = e > worst ? e : worst;
        CHECK_MSG(e >= 0 && e <= 1e-5, "trial %d: n%d %d->%d %dx%d k%d s%d threads %d: %g", t, n,
                  ci, ce, h, w, k, pd.stride_h, threads, e);
    }
    /* Refused: a grouped or strided first conv, a non-depthwise second
     * one, channels that do not chain; a residual on the depthwise conv. */
    fx_conv2d_params pe = conv_p(1, 4, 8, 9, 9, 1, 1, 1, 0, 1);
    fx_conv2d_params pd = conv_p(1, 8, 8, 9, 9, 3, 1, 1, 1, 8);
    fx_conv2d_params bad_e = conv_p(1, 4, 8, 9, 9, 1, 2, 1, 0, 1);
    fx_conv2d_params bad_d = conv_p(1, 8, 8, 9, 9, 3, 1, 1, 1, 1);
    fx_conv2d_params bad_c = conv_p(1, 6, 6, 9, 9, 3, 1, 1, 1, 6);
    CHECK(fx_conv_expand_dw_applies(&pe, &pd) && !fx_conv_expand_dw_applies(&bad_e, &pd));
    CHECK(!fx_conv_expand_dw_applies(&pe, &bad_d) && !fx_conv_expand_dw_applies(&pe, &bad_c));
    CHECK(fx_conv_expand_dw_ws_floats(&pe, &bad_d, 1) < 0);
    float x[324] = {0}, we[32] = {0}, wd[72] = {0}, y[648], ws[8192], res[648] = {0};
    fx_conv_expand xe = {&pe, we, NULL, FX_ACT_NONE, 0, 0, NULL};
    fx_conv_epilogue with_res = {.residual = res};
    CHECK(fx_conv_expand_dw_ws_floats(&pe, &pd, 1) <= 8192);
    CHECK(fx_conv_expand_dw(&xe, &pd, &with_res, x, wd, NULL, y, ws, 1) == FX_ERR_USAGE);
    CHECK(fx_conv_expand_dw(&xe, &pd, NULL, x, wd, NULL, y, ws, 1) == FX_OK);
    fprintf(stderr, "  expand + depthwise: worst max|err| / max|ref| = %.3g\n", worst);
    openblas_set_num_threads(blas);
}

/* fx_dw_block_fast both ways (16 channels in one AVX-512 pass where the
 * CPU has it, and the generic passes of 8) against conv_ref + the
 * reference epilogue, per image and channel block as the callers run it:
 * blocks of 16, a last partial one (1..15 channels), 3x3 and 5x5, stride
 * 1 and 2, uneven pads, planes 1x1 to 16x16, residual and bias on or off,
 * every activation; max |err| / max |ref| <= 1e-5 and the channels past
 * the block untouched. */
static void test_dw_block_ways(void)
{
    rng r = {0x6a09e667f3bcc908ULL};
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    int trials = FX_TEST_SMALL ? 24 : 80, ran = 0;
    for (int t = 0; t < trials; t++) {
        int c = rng_int(&r, 1, 40), k = t % 2 ? 5 : 3, h = rng_int(&r, 1, 16),
            w = rng_int(&r, 1, 16);
        fx_conv2d_params p = conv_p(rng_int(&r, 1, 2), c, c, h, w, k, rng_int(&r, 1, 2), 1, 0, c);
        p.pad_t = rng_int(&r, 0, 2), p.pad_b = rng_int(&r, 0, 2);
        p.pad_l = rng_int(&r, 0, 2), p.pad_r = rng_int(&r, 0, 2);
        int oh, ow;
        if (fx_conv2d_out_hw(&p, &oh, &ow, NULL) != FX_OK || !fx_dw_block_applies(&p)) {
            t--;
            continue;
        }
        size_t nx = (size_t)p.n * c * h * w, ny = (size_t)p.n * c * oh * ow;
        size_t plane = (size_t)oh * ow;
        float *x = rand_buf(&r, nx), *wt = rand_buf(&r, (size_t)c * k * k);
        float *b = rand_buf(&r, (size_t)c), *res = rand_buf(&r, ny);
        float *want = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
        float *sc = calloc(fx_dw_scratch_floats(&p), sizeof(float));
        int with_res = t % 3 == 0, with_b = t % 4 != 1;
        fx_act_kind act = acts[t % 4];
        CHECK(fx_op_conv2d_ref(&p, x, wt, with_b ? b : NULL, want) == FX_OK);
        double big = 0;
        ref_epilogue(want, with_res ? res : NULL, ny, &big, act);
        fx_conv_epilogue ep = {.act = act, .lo = -0.25f, .hi = 0.5f};
        for (int force = 0; force <= 1; force++) {
            for (size_t i = 0; i < ny; i++)
                y[i] = 777.0f;
            memset(sc, 0, sizeof(float) * fx_dw_scratch_floats(&p));
            /* every image's blocks but the last image's last block */
            for (int n = 0; n < p.n; n++)
                for (int c0 = 0; c0 < c; c0 += DW_LANES) {
                    if (n == p.n - 1 && c0 + DW_LANES >= c)
                        continue;
                    int nc = c - c0 < DW_LANES ? c - c0 : DW_LANES;
                    size_t xo = (size_t)n * c * h * w, yo = (size_t)n * c * plane;
                    fx_dw_block_fast_path(&p, &ep, x + xo, wt, with_b ? b : NULL, y + yo,
                                          with_res ? res + yo : NULL, c0, nc, oh, ow, sc, force);
                }
            int last0 = (c - 1) / DW_LANES * DW_LANES;
            size_t skip0 = ((size_t)(p.n - 1) * c + last0) * plane;
            double err = 0;
            for (size_t i = 0; i < ny; i++) {
                double d = i >= skip0 ? fabs(y[i] - 777.0) : fabs((double)y[i] - want[i]);
                err = d > err || d != d ? d : err;
            }
            CHECK_MSG(big > 0 && err / big <= 1e-5,
                      "trial %d force %d: n%d c%d %dx%d k%d s%d pads %d,%d,%d,%d act %d res %d: %g",
                      t, force, p.n, c, h, w, k, p.stride_h, p.pad_t, p.pad_l, p.pad_b, p.pad_r,
                      (int)act, with_res, err / big);
        }
        ran++;
        free(x), free(wt), free(b), free(res), free(want), free(y), free(sc);
    }
    CHECK(ran == trials);
    if (!fx_cpu_avx512())
        fprintf(stderr, "  (no AVX-512 here: both ways ran the 8-channel passes)\n");
}

/* Winograd F(2x2, 3x3) vs the reference: random odd planes (1x1..13x17),
 * asymmetric pads 0..2, batch 1..3, 16..64 channels (and a few below the
 * dispatch threshold, forced), every epilogue; max |err| / max |ref| <= 1e-5. */
static void test_conv_winograd(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0xbe5466cf34e90c6cULL};
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    int trials = FX_TEST_SMALL ? 12 : 60;
    double worst = 0;
    for (int t = 0; t < trials; t++) {
        fx_conv2d_params p = conv_p(rng_int(&r, 1, 3), rng_int(&r, 16, 64), rng_int(&r, 16, 64),
                                    rng_int(&r, 1, 13), rng_int(&r, 1, 17), 3, 1, 1, 0, 1);
        if (t % 8 == 7) /* below the dispatch threshold: the path itself still works */
            p.c_in = rng_int(&r, 1, 15), p.c_out = rng_int(&r, 1, 15);
        p.pad_t = rng_int(&r, 0, 2), p.pad_b = rng_int(&r, 0, 2);
        p.pad_l = rng_int(&r, 0, 2), p.pad_r = rng_int(&r, 0, 2);
        int oh, ow;
        if (fx_conv2d_out_hw(&p, &oh, &ow, NULL) != FX_OK) {
            t--; /* 3x3 larger than the padded input: draw again */
            continue;
        }
        int threads = rng_int(&r, 1, 3);
        double e =
            path_rel_err(&p, &r, threads, acts[t % 4], t % 3 == 0, t % 5 != 0, FX_CONV_WINOGRAD);
        worst = e > worst ? e : worst;
        CHECK_MSG(e >= 0 && e <= 1e-5,
                  "trial %d: n%d c%d->%d %dx%d pads %d,%d,%d,%d threads %d: %g", t, p.n, p.c_in,
                  p.c_out, p.h, p.w, p.pad_t, p.pad_l, p.pad_b, p.pad_r, threads, e);
    }
    /* Shapes the dispatch sends to Winograd (>= 24 tiles a thread; smaller
     * planes under ASan) */
    int big = FX_TEST_SMALL ? 7 : 14;
    fx_conv2d_params named[] = {
        conv_p(2, 64, 64, 2 * big, 2 * big, 3, 1, 1, 1, 1),
        conv_p(4, 128, 128, big, big, 3, 1, 1, 1, 1),
        conv_p(6, 160, 96, 7, 7, 3, 1, 1, 1, 1),
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        CHECK(fx_conv_fast_path(&named[i], 1) == FX_CONV_WINOGRAD);
        double e = path_rel_err(&named[i], &r, 2, FX_ACT_RELU, 1, 1, FX_CONV_WINOGRAD);
        worst = e > worst ? e : worst;
        CHECK_MSG(e >= 0 && e <= 1e-5, "named %zu: %g", i, e);
    }
    fprintf(stderr, "  winograd: worst max|err| / max|ref| = %.3g\n", worst);
    /* Not for Winograd: stride 2, dilation 2, groups 2, 5x5, few channels. */
    fx_conv2d_params no[] = {
        conv_p(1, 32, 32, 9, 9, 3, 2, 1, 1, 1), conv_p(1, 32, 32, 9, 9, 3, 1, 2, 2, 1),
        conv_p(1, 32, 32, 9, 9, 3, 1, 1, 1, 2), conv_p(1, 32, 32, 9, 9, 5, 1, 1, 2, 1)};
    float *x = calloc(32 * 81, sizeof(float)), *w = calloc(32 * 32 * 25, sizeof(float));
    float *y = calloc(32 * 81, sizeof(float)), *ws = calloc(1 << 20, sizeof(float));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        CHECK(fx_conv_fast_path(&no[i], 1) == FX_CONV_IM2COL);
        CHECK(fx_conv_fast_ws_floats_path(&no[i], 1, FX_CONV_WINOGRAD) == -1);
        CHECK(fx_conv_fast_mt_path(&no[i], NULL, x, w, NULL, y, ws, 1, FX_CONV_WINOGRAD) ==
              FX_ERR_USAGE);
    }
    fx_conv2d_params few = conv_p(1, 8, 32, 9, 9, 3, 1, 1, 1, 1);
    CHECK(fx_conv_fast_path(&few, 1) == FX_CONV_IM2COL); /* few channels */
    few = conv_p(1, 512, 512, 7, 7, 3, 1, 1, 1, 1);
    CHECK(fx_conv_fast_path(&few, 2) == FX_CONV_IM2COL); /* 16 tiles */
    few.n = 8;
    CHECK(fx_conv_fast_path(&few, 2) == FX_CONV_WINOGRAD);
    free(x), free(w), free(y), free(ws);
    openblas_set_num_threads(blas);
}

/* Odd n, above and below the parallel threshold. */
/* The depthwise path (3x3/5x5 stride 1/2 take depthwise.c's padded-plane
 * kernel) vs the reference: random planes 1x1..17x19, asymmetric pads
 * 0..2, batch 1..3, 1..40 channels, 1..3 threads, every epilogue (SiLU as
 * EfficientNet uses it), bias and residual on or off; max |err| / max |ref|
 * <= 1e-5.  A few shapes with dilation 2 or a 7x7 kernel check the generic
 * loop that the rest falls back to. */
static void test_conv_depthwise(void)
{
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rng r = {0x9216d5d98979fb1bULL};
    static const fx_act_kind acts[] = {FX_ACT_NONE, FX_ACT_RELU, FX_ACT_CLIP, FX_ACT_SILU};
    int trials = FX_TEST_SMALL ? 60 : 400, fast = 0, blocked = 0;
    double worst = 0;
    for (int t = 0; t < trials; t++) {
        int c = rng_int(&r, 1, 40), k = rng_int(&r, 0, 1) ? 5 : 3;
        fx_conv2d_params p = conv_p(rng_int(&r, 1, 3), c, c, rng_int(&r, 1, 17), rng_int(&r, 1, 19),
                                    k, rng_int(&r, 1, 2), 1, 0, c);
        p.pad_t = rng_int(&r, 0, 2), p.pad_b = rng_int(&r, 0, 2);
        p.pad_l = rng_int(&r, 0, 2), p.pad_r = rng_int(&r, 0, 2);
        if (t % 10 == 9) /* the generic loop */
            p.dil_h = p.dil_w = 2;
        int oh, ow;
        if (fx_conv2d_out_hw(&p, &oh, &ow, NULL) != FX_OK) {
            t--; /* kernel larger than the padded input: draw again */
            continue;
        }
        fast += fx_dw_fast_applies(&p);
        blocked += fx_dw_block_applies(&p);
        int threads = rng_int(&r, 1, 3);
        double e =
            path_rel_err(&p, &r, threads, acts[t % 4], t % 3 == 0, t % 5 != 0, FX_CONV_DEPTHWISE);
        worst = e > worst ? e : worst;
        CHECK_MSG(e >= 0 && e <= 1e-5,
                  "trial %d: n%d c%d %dx%d k%d s%d d%d pads %d,%d,%d,%d threads %d act %d: %g", t,
                  p.n, p.c_in, p.h, p.w, k, p.stride_h, p.dil_h, p.pad_t, p.pad_l, p.pad_b, p.pad_r,
                  threads, (int)acts[t % 4], e);
    }
    CHECK(fast >= trials * 8 / 10); /* the fast kernel really ran */
    /* both of its ways: channel blocks (small planes) and single planes */
    CHECK(blocked >= trials / 4 && fast - blocked >= trials / 20);
    /* EfficientNet-like planes, and shapes the fast kernel must refuse. */
    fx_conv2d_params named[] = {
        conv_p(2, 24, 24, 28, 28, 3, 1, 1, 1, 24),
        conv_p(2, 16, 16, 29, 27, 5, 2, 1, 2, 16),
        conv_p(1, 40, 40, 7, 7, 5, 1, 1, 2, 40),
        conv_p(3, 8, 8, 14, 14, 3, 2, 1, 1, 8),
        conv_p(1, 4, 4, 15, 13, 7, 1, 1, 3, 4),
        /* stride 1, at least 32 wide: the row kernels, not the flat loop */
        conv_p(2, 6, 6, 40, 45, 3, 1, 1, 1, 6),
        conv_p(1, 5, 5, 36, 37, 5, 1, 1, 2, 5),
        /* stride 2 on wide planes: the polyphase flat loop, not a block */
        conv_p(2, 3, 3, 71, 66, 3, 2, 1, 1, 3),
        conv_p(1, 4, 4, 60, 57, 5, 2, 1, 2, 4),
        /* channel blocks: 17 = two full blocks and one of 1; 14x14 s1, 7x7 s1 */
        conv_p(2, 17, 17, 14, 14, 5, 1, 1, 2, 17),
        conv_p(1, 20, 20, 7, 7, 3, 1, 1, 1, 20),
    };
    named[6].pad_r = 0, named[6].pad_b = 1; /* uneven pads */
    named[8].pad_r = 1, named[8].pad_t = 1; /* uneven pads at stride 2 */
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        double e = path_rel_err(&named[i], &r, 2, FX_ACT_SILU, 1, 1, FX_CONV_DEPTHWISE);
        worst = e > worst ? e : worst;
        CHECK_MSG(e >= 0 && e <= 1e-5, "named %zu: %g", i, e);
    }
    CHECK(fx_dw_fast_applies(&named[0]) && !fx_dw_fast_applies(&named[4]));
    CHECK(!fx_dw_block_applies(&named[7]) && !fx_dw_block_applies(&named[8]));
    CHECK(fx_dw_block_applies(&named[9]) && fx_dw_block_applies(&named[10]));
    fx_conv2d_params mult = conv_p(1, 5, 10, 11, 13, 3, 1, 1, 1, 5); /* multiplier 2 */
    fx_conv2d_params pad3 = conv_p(1, 5, 5, 11, 13, 3, 1, 1, 3, 5);
    CHECK(!fx_dw_fast_applies(&mult) && !fx_dw_fast_applies(&pad3));
    fprintf(stderr, "  depthwise: worst max|err| / max|ref| = %.3g\n", worst);
    openblas_set_num_threads(blas);
}

/* The SiLU epilogue (the AVX2 clone where the CPU has one), and the
 * AVX-512 GEMM kernel's own SiLU (fx_conv_gemm_path forced, w = 1, k = 1:
 * y = silu(x) exactly but for -0), against x / (1 + exp(-x)) in double,
 * over [-110, 110) and the special values; below -87.3 the exp is 0, silu
 * -0 (exact: below 1e-36). */
static void test_silu_epilogue(void)
{
    enum { N = 220003 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N), one = 1.0f;
    for (int i = 0; i < N; i++)
        x[i] = -110.0f + 220.0f * (float)i / (float)N;
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -1e-30f, x[4] = 87.5f, x[5] = -87.5f;
    x[6] = 200.0f, x[7] = -200.0f, x[8] = INFINITY, x[9] = NAN;
    fx_conv_epilogue ep = {.act = FX_ACT_SILU};
    for (int way = 0; way < 2; way++) {
        if (way == 0) {
            memcpy(y, x, sizeof(float) * N);
            fx_conv_epilogue_apply(&ep, NULL, 0, 1, N, y, NULL, N);
        } else {
            fx_conv_gemm_path(&ep, 1, N, 1, &one, x, N, NULL, y, NULL, N, 1);
        }
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double xd = x[i], want = xd / (1.0 + exp(-xd));
            if (isnan(want) || isinf(want)) {
                CHECK_MSG(isnan(want) ? isnan(y[i]) : y[i] == (float)want, "silu(%g)", xd);
                continue;
            }
            double err = fabs(y[i] - want) / fabs(want);
            worst = fabs(want) > 1e-30 && err > worst ? err : worst;
            CHECK_MSG(fabs(y[i] - want) <= 3e-7 * fabs(want) + 3e-36,
                      "%s silu(%.9g) = %.9g, want %.9g", way ? "gemm" : "epilogue", xd, y[i], want);
        }
        fprintf(stderr, "  silu %s: worst relative error %.3g (|silu| > 1e-30)\n",
                way ? "gemm kernel" : "epilogue", worst);
    }
    free(x), free(y);
}

static void test_act_fast(void)
{
    rng r = {0x13198a2e03707344ULL};
    static const int64_t ns[] = {1, 7, 1001, 70001};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int64_t n = ns[k];
        float *x = rand_buf(&r, (size_t)n), *y0 = malloc(sizeof(float) * (size_t)n);
        float *y1 = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] *= 12.0f; /* [-12, 12): sigmoid's tails and HardSwish's bends */
        if (n > 3)
            x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f;
        fx_act_params p = {n, -0.5f, 2.5f};
        fx_op_relu_ref(&p, x, y0), fx_op_relu_fast(&p, x, y1);
        CHECK(near_all(y1, y0, (size_t)n, 0, 0, "relu"));
        fx_op_clip_ref(&p, x, y0), fx_op_clip_fast(&p, x, y1);
        CHECK(near_all(y1, y0, (size_t)n, 0, 0, "clip"));
        fx_op_hard_swish_ref(&p, x, y0), fx_op_hard_swish_fast(&p, x, y1);
        CHECK(near_all(y1, y0, (size_t)n, 0, 0, "hard_swish"));
        fx_op_sigmoid_ref(&p, x, y0), fx_op_sigmoid_fast(&p, x, y1);
        CHECK(near_all(y1, y0, (size_t)n, 1e-30f, 1e-6f, "sigmoid"));
        free(x), free(y0), free(y1);
    }
    fx_act_params bad = {-1, 0, 0};
    float v = 0;
    CHECK(fx_op_relu_fast(&bad, &v, &v) == FX_ERR_USAGE);
}

static void test_binary_fast(void)
{
    rng r = {0xa4093822299f31d0ULL};
    struct {
        fx_shape a, b;
    } cases[] = {
        {{4, {3, 5, 7, 9}}, {4, {3, 5, 7, 9}}},     /* same shape */
        {{4, {3, 5, 7, 9}}, {4, {3, 5, 1, 1}}},     /* squeeze-excitation */
        {{4, {3, 5, 1, 1}}, {4, {3, 5, 7, 9}}},     /* the same, swapped */
        {{4, {2, 37, 29, 31}}, {4, {2, 37, 1, 1}}}, /* above the parallel threshold */
        {{4, {3, 5, 7, 9}}, {1, {9}}},              /* other broadcast: reference */
        {{2, {1, 1}}, {2, {1, 1}}},
    };
    static const char ops[] = {'A', 'S', 'M', 'D'};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fx_binary_params p = {cases[c].a, cases[c].b};
        fx_shape o;
        CHECK(fx_broadcast_shape(&p, &o, NULL) == FX_OK);
        size_t na = (size_t)fx_shape_numel(&p.a), nb = (size_t)fx_shape_numel(&p.b);
        size_t no = (size_t)fx_shape_numel(&o);
        float *a = rand_buf(&r, na), *b = rand_buf(&r, nb);
        float *y0 = malloc(sizeof(float) * no), *y1 = malloc(sizeof(float) * no);
        for (int k = 0; k < 4; k++) {
            fx_status s0 = ops[k] == 'A'   ? fx_op_add_ref(&p, a, b, y0)
                           : ops[k] == 'S' ? fx_op_sub_ref(&p, a, b, y0)
                           : ops[k] == 'M' ? fx_op_mul_ref(&p, a, b, y0)
                                           : fx_op_div_ref(&p, a, b, y0);
            CHECK(s0 == FX_OK && fx_op_binary_fast(ops[k], &p, a, b, y1) == FX_OK);
            CHECK_MSG(near_all(y1, y0, no, 0, 0, "binary"), "case %zu op %c", c, ops[k]);
        }
        free(a), free(b), free(y0), free(y1);
    }
}

static void test_bn_pool_fast(void)
{
    rng r = {0x082efa98ec4e6c89ULL};
    fx_batchnorm_params bp = {3, 7, 11 * 13, 1e-5f};
    size_t n = 3 * 7 * 11 * 13;
    float *x = rand_buf(&r, n), *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n);
    float *sc = rand_buf(&r, 7), *bi = rand_buf(&r, 7), *mu = rand_buf(&r, 7);
    float *var = rand_buf(&r, 7);
    for (int c = 0; c < 7; c++)
        var[c] = fabsf(var[c]) + 0.1f;
    fx_act_params ap = {(int64_t)n, -0.25f, 0.5f};
    fx_op_batchnorm_ref(&bp, x, sc, bi, mu, var, y0);
    CHECK(fx_op_batchnorm_fast(&bp, x, sc, bi, mu, var, FX_ACT_NONE, 0, 0, y1) == FX_OK);
    CHECK(near_all(y1, y0, n, 0, 0, "bn"));
    fx_op_relu_ref(&ap, y0, y0);
    CHECK(fx_op_batchnorm_fast(&bp, x, sc, bi, mu, var, FX_ACT_RELU, 0, 0, y1) == FX_OK);
    CHECK(near_all(y1, y0, n, 0, 0, "bn+relu"));
    fx_op_batchnorm_ref(&bp, x, sc, bi, mu, var, y0);
    fx_op_clip_ref(&ap, y0, y0);
    CHECK(fx_op_batchnorm_fast(&bp, x, sc, bi, mu, var, FX_ACT_CLIP, -0.25f, 0.5f, y1) == FX_OK);
    CHECK(near_all(y1, y0, n, 0, 0, "bn+clip"));
    CHECK(fx_op_batchnorm_fast(&bp, x, sc, bi, mu, var, FX_ACT_SILU, 0, 0, y1) == FX_ERR_USAGE);
    /* pools on (3, 7, 11, 13): 3x3 s2 pad 1 (ResNet), 2x2 s2 ceil, avg with/without pad,
     * 2x2 s2 (the avg fast path, bit-equal) */
    fx_pool2d_params pp[] = {
        {3, 7, 11, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0},
        {3, 7, 11, 13, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0},
        {3, 7, 11, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
        {3, 7, 11, 13, 3, 2, 2, 1, 1, 1, 1, 0, 1, 1, 1, 0},
        {3, 7, 11, 13, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0}, /* DenseNet's transition */
    };
    for (size_t i = 0; i < sizeof pp / sizeof pp[0]; i++) {
        int oh, ow;
        CHECK(fx_pool2d_out_hw(&pp[i], &oh, &ow, NULL) == FX_OK);
        size_t no = (size_t)3 * 7 * oh * ow;
        fx_op_maxpool2d_ref(&pp[i], x, y0);
        CHECK(fx_op_maxpool2d_fast(&pp[i], x, y1) == FX_OK);
        CHECK_MSG(near_all(y1, y0, no, 0, 0, "maxpool"), "pool %zu", i);
        fx_op_avgpool2d_ref(&pp[i], x, y0);
        CHECK(fx_op_avgpool2d_fast(&pp[i], x, y1) == FX_OK);
        CHECK_MSG(near_all(y1, y0, no, 0, 0, "avgpool"), "pool %zu", i);
    }
    fx_global_pool_params gp = {3, 7, 11 * 13};
    fx_op_global_avgpool_ref(&gp, x, y0);
    CHECK(fx_op_global_avgpool_fast(&gp, x, y1) == FX_OK);
    CHECK(near_all(y1, y0, 21, 1e-6f, 2e-7f, "global_avgpool")); /* summed in lanes */
    free(x), free(y0), free(y1), free(sc), free(bi), free(mu), free(var);
}

/* The separable MaxPool fast path against the per-window reference: random
 * shapes, strides, pads and ceil_mode, NaNs sprinkled in (a NaN in a window
 * must win, as in PyTorch), windows that hang over the end (ceil_mode), and
 * the reference fallbacks (dilation, rows wider than the stack buffer).
 * Equal means bit-equal, or both NaN. */
static int same_or_both_nan(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) {
            fprintf(stderr, "  maxpool: [%zu] fast %.9g ref %.9g\n", i, a[i], b[i]);
            return 0;
        }
    return 1;
}

static void test_maxpool_fast(void)
{
    rng r = {0x6d61787030ULL};
    for (int trial = 0; trial < 60; trial++) {
        fx_pool2d_params p = {0};
        p.n = rng_int(&r, 1, 3), p.c = rng_int(&r, 1, 5);
        p.h = rng_int(&r, 1, 19), p.w = rng_int(&r, 1, 23);
        p.kh = rng_int(&r, 1, 4), p.kw = rng_int(&r, 1, 4);
        p.stride_h = rng_int(&r, 1, 3), p.stride_w = rng_int(&r, 1, 3);
        p.dil_h = trial % 10 == 9 ? 2 : 1, p.dil_w = 1;
        p.pad_t = rng_int(&r, 0, p.kh - 1), p.pad_b = rng_int(&r, 0, p.kh - 1);
        p.pad_l = rng_int(&r, 0, p.kw - 1), p.pad_r = rng_int(&r, 0, p.kw - 1);
        p.ceil_mode = rng_int(&r, 0, 1);
        int oh, ow;
        if (fx_pool2d_out_hw(&p, &oh, &ow, NULL) != FX_OK)
            continue;
        size_t n = (size_t)p.n * p.c * p.h * p.w, no = (size_t)p.n * p.c * oh * ow;
        float *x = rand_buf(&r, n), *y0 = malloc(no * sizeof *y0), *y1 = malloc(no * sizeof *y1);
        for (int k = 0; trial % 3 == 0 && k < 3; k++)
            x[rng_u32(&r) % n] = NAN;
        fx_op_maxpool2d_ref(&p, x, y0);
        CHECK(fx_op_maxpool2d_fast(&p, x, y1) == FX_OK);
        CHECK_MSG(same_or_both_nan(y1, y0, no),
                  "trial %d: %dx%d k%dx%d s%d,%d pads %d%d%d%d ceil %d", trial, p.h, p.w, p.kh,
                  p.kw, p.stride_h, p.stride_w, p.pad_t, p.pad_l, p.pad_b, p.pad_r, p.ceil_mode);
        free(x), free(y0), free(y1);
    }
    /* A row wider than the separable path's buffer takes the reference. */
    fx_pool2d_params wide = {1, 2, 3, 9001, 2, 3, 2, 2, 1, 1, 0, 1, 0, 1, 1, 0};
    int oh, ow;
    CHECK(fx_pool2d_out_hw(&wide, &oh, &ow, NULL) == FX_OK);
    size_t n = (size_t)2 * 3 * 9001, no = (size_t)2 * oh * ow;
    float *x = rand_buf(&r, n), *y0 = malloc(no * sizeof *y0), *y1 = malloc(no * sizeof *y1);
    fx_op_maxpool2d_ref(&wide, x, y0);
    CHECK(fx_op_maxpool2d_fast(&wide, x, y1) == FX_OK);
    CHECK(same_or_both_nan(y1, y0, no));
    free(x), free(y0), free(y1);
}

/* ---- hand-checkable reference cases -------------------------------------- */

static void test_conv_ramp(void)
{
    /* 4x4 ramp 0..15, 3x3 box filter, pad 1: each output is the sum of the
     * in-image neighbours. */
    float x[16], w[9], y[16], b = 0.5f;
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    for (int i = 0; i < 9; i++)
        w[i] = 1.0f;
    fx_conv2d_params p = conv_p(1, 1, 1, 4, 4, 3, 1, 1, 1, 1);
    int oh, ow;
    CHECK(fx_conv2d_out_hw(&p, &oh, &ow, NULL) == FX_OK && oh == 4 && ow == 4);
    CHECK(fx_op_conv2d_ref(&p, x, w, &b, y) == FX_OK);
    CHECK_NEAR(y[0], 0 + 1 + 4 + 5 + 0.5, 1e-6);
    CHECK_NEAR(y[5], 9 * 5 + 0.5, 1e-6); /* mean 5 * 9 */
    CHECK_NEAR(y[15], 10 + 11 + 14 + 15 + 0.5, 1e-6);
    CHECK_NEAR(y[3], 2 + 3 + 6 + 7 + 0.5, 1e-6);
    /* stride 2, no pad, 2x2 output of the centre windows */
    p = conv_p(1, 1, 1, 5, 5, 3, 2, 1, 0, 1);
    float x5[25], y4[4];
    for (int i = 0; i < 25; i++)
        x5[i] = (float)i;
    CHECK(fx_op_conv2d_ref(&p, x5, w, NULL, y4) == FX_OK);
    CHECK_NEAR(y4[0], 9 * 6, 1e-6);
    CHECK_NEAR(y4[3], 9 * 18, 1e-6);
    fx_error err = {0};
    p.kh = 9;
    CHECK(fx_conv2d_out_hw(&p, &oh, &ow, &err) == FX_ERR_USAGE && err.msg[0]);
}

static void test_auto_pad(void)
{
    int b = -7, e = -7;
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_UPPER, 5, 3, 2, 1, &b, &e, NULL) == FX_OK);
    CHECK(b == 1 && e == 1); /* out 3, total (3-1)*2+3-5 = 2 */
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_UPPER, 6, 3, 2, 1, &b, &e, NULL) == FX_OK);
    CHECK(b == 0 && e == 1); /* total 1: the odd one at the end */
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_LOWER, 6, 3, 2, 1, &b, &e, NULL) == FX_OK);
    CHECK(b == 1 && e == 0);
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_UPPER, 7, 3, 1, 2, &b, &e, NULL) == FX_OK);
    CHECK(b == 2 && e == 2); /* dilated 3x3 spans 5 */
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_UPPER, 8, 1, 3, 1, &b, &e, NULL) == FX_OK);
    CHECK(b == 0 && e == 0); /* total would be negative */
    CHECK(fx_auto_pad_resolve(FX_PAD_VALID, 8, 3, 1, 1, &b, &e, NULL) == FX_OK && b == 0 && e == 0);
    b = 4, e = 5;
    CHECK(fx_auto_pad_resolve(FX_PAD_NOTSET, 8, 3, 1, 1, &b, &e, NULL) == FX_OK && b == 4 &&
          e == 5);
    CHECK(fx_auto_pad_resolve(FX_PAD_SAME_UPPER, 8, 3, 0, 1, &b, &e, NULL) == FX_ERR_USAGE);
}

static void test_batchnorm(void)
{
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
    float scale[2] = {2, 1}, bias[2] = {0, 1}, mean[2] = {1, 0}, var[2] = {4, 0};
    fx_batchnorm_params p = {.n = 2, .c = 2, .spatial = 2, .epsilon = 0.0f};
    p.epsilon = 1.0f / 4096; /* var 0 with eps 0 would divide by zero */
    CHECK(fx_op_batchnorm_ref(&p, x, scale, bias, mean, var, y) == FX_OK);
    CHECK_NEAR(y[0], 2 * (1 - 1) / sqrt(4 + 1.0 / 4096), 1e-6);
    CHECK_NEAR(y[1], 2 * (2 - 1) / sqrt(4 + 1.0 / 4096), 1e-6);
    CHECK_NEAR(y[2], 3 * 64 + 1, 1e-3); /* 1/sqrt(1/4096) = 64 */
    CHECK_NEAR(y[7], 8 * 64 + 1, 1e-3);
}

static void test_activations(void)
{
    float x[5] = {-4, -1, 0, 0.5f, 4}, y[5];
    fx_act_params p = {.n = 5, .alpha = 0.1f, .beta = 0.0f};
    CHECK(fx_op_relu_ref(&p, x, y) == FX_OK && y[0] == 0 && y[3] == 0.5f && y[4] == 4);
    CHECK(fx_op_leaky_relu_ref(&p, x, y) == FX_OK);
    CHECK_NEAR(y[0], -0.4, 1e-7);
    CHECK(y[4] == 4);
    p.alpha = 0.0f, p.beta = 6.0f; /* Clip(0, 6) = ReLU6 */
    CHECK(fx_op_clip_ref(&p, x, y) == FX_OK && y[0] == 0 && y[3] == 0.5f && y[4] == 4);
    p.alpha = -0.5f, p.beta = 0.25f;
    CHECK(fx_op_clip_ref(&p, x, y) == FX_OK && y[0] == -0.5f && y[2] == 0 && y[4] == 0.25f);
    CHECK(fx_op_sigmoid_ref(&p, x, y) == FX_OK);
    CHECK_NEAR(y[2], 0.5, 1e-7);
    CHECK_NEAR(y[4], 1 / (1 + exp(-4.0)), 1e-7);
    p.alpha = 1.0f / 6, p.beta = 0.5f;
    CHECK(fx_op_hard_sigmoid_ref(&p, x, y) == FX_OK);
    CHECK(y[0] == 0 && y[4] == 1);
    CHECK_NEAR(y[1], 1.0 / 3, 1e-7);
    CHECK(fx_op_hard_swish_ref(&p, x, y) == FX_OK);
    CHECK(y[0] == 0 && y[4] == 4);
    CHECK_NEAR(y[1], -1.0 / 3, 1e-7); /* -1 * 2 / 6 */
    CHECK_NEAR(y[3], 0.5 * 3.5 / 6, 1e-7);
    CHECK(fx_op_tanh_ref(&p, x, x) == FX_OK); /* in place */
    CHECK_NEAR(x[1], tanh(-1.0), 1e-7);
}

static void test_broadcast_binary(void)
{
    /* (2,1,3) + (4,1) -> (2,4,3): y[i][j][k] = 100i + k + 10j */
    fx_binary_params p = {.a = {3, {2, 1, 3}}, .b = {2, {4, 1}}};
    fx_shape o;
    CHECK(fx_broadcast_shape(&p, &o, NULL) == FX_OK);
    CHECK(o.rank == 3 && o.d[0] == 2 && o.d[1] == 4 && o.d[2] == 3);
    float a[6], b[4], y[24];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            a[i * 3 + k] = (float)(100 * i + k);
    for (int j = 0; j < 4; j++)
        b[j] = (float)(10 * j);
    CHECK(fx_op_add_ref(&p, a, b, y) == FX_OK);
    int ok = 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                ok &= y[(i * 4 + j) * 3 + k] == (float)(100 * i + 10 * j + k);
    CHECK(ok);
    CHECK(fx_op_sub_ref(&p, a, b, y) == FX_OK && y[1 * 12 + 3 * 3 + 2] == 100 - 30 + 2);
    CHECK(fx_op_mul_ref(&p, a, b, y) == FX_OK && y[1 * 12 + 2 * 3 + 1] == 101 * 20);
    CHECK(fx_op_div_ref(&p, a, b, y) == FX_OK && isinf(y[1 * 12 + 0 * 3 + 1]));
    /* scalar (rank 0) with a rank-6 tensor */
    fx_binary_params q = {.a = {6, {1, 2, 1, 1, 1, 2}}, .b = {0, {0}}};
    float a6[4] = {1, 2, 3, 4}, s = 0.5f, y6[4];
    CHECK(fx_op_mul_ref(&q, a6, &s, y6) == FX_OK && y6[3] == 2);
    fx_binary_params bad = {.a = {2, {2, 3}}, .b = {1, {2}}};
    fx_error err = {0};
    CHECK(fx_broadcast_shape(&bad, &o, &err) == FX_ERR_USAGE && err.msg[0]);
    CHECK(fx_op_add_ref(&bad, a, b, y) == FX_ERR_USAGE);
}

static void test_prelu(void)
{
    /* x (1, 2, 1, 2), per-channel slope (2, 1, 1) */
    fx_binary_params p = {.a = {4, {1, 2, 1, 2}}, .b = {3, {2, 1, 1}}};
    float x[4] = {-1, 2, -3, 4}, s[2] = {0.5f, 0.25f}, y[4];
    CHECK(fx_op_prelu_ref(&p, x, s, y) == FX_OK);
    CHECK(y[0] == -0.5f && y[1] == 2 && y[2] == -0.75f && y[3] == 4);
    fx_binary_params wide = {.a = {1, {2}}, .b = {1, {4}}}; /* slope bigger than x */
    CHECK(fx_op_prelu_ref(&wide, x, s, y) == FX_ERR_USAGE);
}

static void test_concat_split(void)
{
    /* (2,1,2) ++ (2,2,2) on axis 1 -> (2,3,2) */
    fx_shape shapes[2] = {{3, {2, 1, 2}}, {3, {2, 2, 2}}};
    float a[4] = {0, 1, 6, 7}, b[8] = {2, 3, 4, 5, 8, 9, 10, 11}, y[12];
    const float *xs[2] = {a, b};
    fx_concat_params p = {.n_inputs = 2, .shapes = shapes, .axis = -2};
    fx_shape o;
    CHECK(fx_concat_out_shape(&p, &o, NULL) == FX_OK && o.d[1] == 3);
    CHECK(fx_op_concat_ref(&p, xs, y) == FX_OK);
    int ok = 1;
    for (int i = 0; i < 12; i++)
        ok &= y[i] == (float)i;
    CHECK(ok);
    float s0[4], s1[8];
    float *ys[2] = {s0, s1};
    int64_t sizes[2] = {1, 2};
    fx_split_params sp = {.x = o, .axis = 1, .n_outputs = 2, .sizes = sizes};
    CHECK(fx_op_split_ref(&sp, y, ys) == FX_OK);
    CHECK(memcmp(s0, a, sizeof a) == 0 && memcmp(s1, b, sizeof b) == 0);
    sizes[1] = 3;
    CHECK(fx_op_split_ref(&sp, y, ys) == FX_ERR_USAGE);
}

static void test_transpose(void)
{
    fx_transpose_params p = {.x = {3, {2, 3, 4}}, .perm = {2, 0, 1}};
    float x[24], y[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    fx_shape o;
    CHECK(fx_transpose_out_shape(&p, &o, NULL) == FX_OK);
    CHECK(o.d[0] == 4 && o.d[1] == 2 && o.d[2] == 3);
    CHECK(fx_op_transpose_ref(&p, x, y) == FX_OK);
    /* y[k][i][j] = x[i][j][k] */
    CHECK(y[(3 * 2 + 1) * 3 + 2] == x[(1 * 3 + 2) * 4 + 3]);
    CHECK(y[(1 * 2 + 0) * 3 + 1] == x[(0 * 3 + 1) * 4 + 1]);
    p.perm[1] = 2;
    CHECK(fx_op_transpose_ref(&p, x, y) == FX_ERR_USAGE);
}

static void test_pad(void)
{
    float x[3] = {1, 2, 3}, y[7];
    fx_pad_params p = {.x = {1, {3}}, .pads = {2, 2}, .mode = FX_PADMODE_REFLECT};
    CHECK(fx_op_pad_ref(&p, x, y) == FX_OK);
    float refl[7] = {3, 2, 1, 2, 3, 2, 1}, edge[7] = {1, 1, 1, 2, 3, 3, 3};
    CHECK(memcmp(y, refl, sizeof y) == 0);
    p.mode = FX_PADMODE_EDGE;
    CHECK(fx_op_pad_ref(&p, x, y) == FX_OK && memcmp(y, edge, sizeof y) == 0);
    p.mode = FX_PADMODE_CONSTANT, p.value = -1;
    CHECK(fx_op_pad_ref(&p, x, y) == FX_OK && y[0] == -1 && y[2] == 1 && y[6] == -1);
    p.pads[0] = -1, p.pads[1] = 1; /* crop one at the start, add one at the end */
    CHECK(fx_op_pad_ref(&p, x, y) == FX_OK && y[0] == 2 && y[1] == 3 && y[2] == -1);
    p.pads[0] = 3, p.mode = FX_PADMODE_REFLECT;
    CHECK(fx_op_pad_ref(&p, x, y) == FX_ERR_USAGE); /* reflect pad must be < dim */
    /* 2-D: pad the first axis only */
    float x2[4] = {1, 2, 3, 4}, y2[8];
    fx_pad_params q = {.x = {2, {2, 2}}, .pads = {1, 0, 1, 0}, .mode = FX_PADMODE_EDGE};
    CHECK(fx_op_pad_ref(&q, x2, y2) == FX_OK);
    float e2[8] = {1, 2, 1, 2, 3, 4, 3, 4};
    CHECK(memcmp(y2, e2, sizeof y2) == 0);
}

static void test_maxpool_ceil(void)
{
    /* 5x5 ramp, 2x2 stride 2: floor gives 2x2, ceil 3x3 whose last
     * row/column windows hold only the input's last row/column. */
    float x[25], y[9];
    for (int i = 0; i < 25; i++)
        x[i] = (float)i;
    fx_pool2d_params p = {.n = 1,
                          .c = 1,
                          .h = 5,
                          .w = 5,
                          .kh = 2,
                          .kw = 2,
                          .stride_h = 2,
                          .stride_w = 2,
                          .dil_h = 1,
                          .dil_w = 1};
    int oh, ow;
    CHECK(fx_pool2d_out_hw(&p, &oh, &ow, NULL) == FX_OK && oh == 2 && ow == 2);
    p.ceil_mode = 1;
    CHECK(fx_pool2d_out_hw(&p, &oh, &ow, NULL) == FX_OK && oh == 3 && ow == 3);
    CHECK(fx_op_maxpool2d_ref(&p, x, y) == FX_OK);
    CHECK(y[0] == 6 && y[2] == 9 && y[6] == 21 && y[8] == 24);
    /* pad 1, ceil: ceil(5/2)+1 = 4 windows, but the 4th would start at
     * 6 >= 5 + 1 (past input and begin pad): dropped. */
    p.pad_t = p.pad_l = p.pad_b = p.pad_r = 1;
    CHECK(fx_pool2d_out_hw(&p, &oh, &ow, NULL) == FX_OK && oh == 3 && ow == 3);
    /* MaxPool 3x3 s2 p1 (ResNet stem) on 5x5: 3x3 */
    p.kh = p.kw = 3, p.ceil_mode = 0;
    CHECK(fx_pool2d_out_hw(&p, &oh, &ow, NULL) == FX_OK && oh == 3 && ow == 3);
    CHECK(fx_op_maxpool2d_ref(&p, x, y) == FX_OK && y[0] == 6 && y[4] == 18 && y[8] == 24);
    /* dilation 2, 2x2 kernel at stride 1 on 5x5: taps (i, i+2) */
    fx_pool2d_params d = {.n = 1,
                          .c = 1,
                          .h = 5,
                          .w = 5,
                          .kh = 2,
                          .kw = 2,
                          .stride_h = 1,
                          .stride_w = 1,
                          .dil_h = 2,
                          .dil_w = 2};
    CHECK(fx_pool2d_out_hw(&d, &oh, &ow, NULL) == FX_OK && oh == 3 && ow == 3);
    CHECK(fx_op_maxpool2d_ref(&d, x, y) == FX_OK && y[0] == 12 && y[8] == 24);
}

static void test_avgpool_pad(void)
{
    float x[9], y[9];
    for (int i = 0; i < 9; i++)
        x[i] = 1.0f;
    fx_pool2d_params p = {.n = 1,
                          .c = 1,
                          .h = 3,
                          .w = 3,
                          .kh = 3,
                          .kw = 3,
                          .stride_h = 1,
                          .stride_w = 1,
                          .dil_h = 1,
                          .dil_w = 1,
                          .pad_t = 1,
                          .pad_l = 1,
                          .pad_b = 1,
                          .pad_r = 1,
                          .count_include_pad = 1};
    CHECK(fx_op_avgpool2d_ref(&p, x, y) == FX_OK);
    CHECK_NEAR(y[0], 4.0 / 9, 1e-7);
    CHECK_NEAR(y[1], 6.0 / 9, 1e-7);
    CHECK_NEAR(y[4], 1.0, 1e-7);
    p.count_include_pad = 0;
    CHECK(fx_op_avgpool2d_ref(&p, x, y) == FX_OK && y[0] == 1 && y[1] == 1);
    /* ceil_mode overhang past the end padding is not counted: 4x4 ramp,
     * 3x3 stride 2 pad 0 ceil -> 2x2; the last window covers rows/cols 2..3
     * (2x2 inputs) and divides by 4 even with count_include_pad. */
    float r[16], yr[4];
    for (int i = 0; i < 16; i++)
        r[i] = (float)i;
    fx_pool2d_params c = {.n = 1,
                          .c = 1,
                          .h = 4,
                          .w = 4,
                          .kh = 3,
                          .kw = 3,
                          .stride_h = 2,
                          .stride_w = 2,
                          .dil_h = 1,
                          .dil_w = 1,
                          .ceil_mode = 1,
                          .count_include_pad = 1};
    int oh, ow;
    CHECK(fx_pool2d_out_hw(&c, &oh, &ow, NULL) == FX_OK && oh == 2 && ow == 2);
    CHECK(fx_op_avgpool2d_ref(&c, r, yr) == FX_OK);
    CHECK_NEAR(yr[3], (10 + 11 + 14 + 15) / 4.0, 1e-6);
    CHECK_NEAR(yr[0], 5.0, 1e-6);
    c.dil_h = 2;
    CHECK(fx_op_avgpool2d_ref(&c, r, yr) == FX_ERR_USAGE);
}

static void test_global_pools(void)
{
    float x[12] = {1, 2, 3, -1, -2, -3, 0, 0, 6, 5, 5, 5}, y[4];
    fx_global_pool_params p = {.n = 2, .c = 2, .spatial = 3};
    CHECK(fx_op_global_avgpool_ref(&p, x, y) == FX_OK);
    CHECK(y[0] == 2 && y[1] == -2 && y[2] == 2 && y[3] == 5);
    CHECK(fx_op_global_maxpool_ref(&p, x, y) == FX_OK);
    CHECK(y[0] == 3 && y[1] == -1 && y[2] == 6 && y[3] == 5);
    /* NaN propagates (torch's amax; the GPU kernel does the same), wherever it is */
    x[1] = NAN, x[3] = NAN;
    CHECK(fx_op_global_maxpool_ref(&p, x, y) == FX_OK);
    CHECK(isnan(y[0]) && isnan(y[1]) && y[2] == 6);
}

static void test_gemm(void)
{
    /* A (2,3), B stored (2,3) with transB (Linear), C row (1,2) */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 0, 1, 1}, c[2] = {10, 20}, y[4], yf[4];
    fx_gemm_params p = {
        .m = 2, .n = 2, .k = 3, .trans_b = 1, .alpha = 2, .beta = 0.5f, .c_rows = 1, .c_cols = 2};
    CHECK(fx_op_gemm_ref(&p, a, b, c, y) == FX_OK);
    CHECK(y[0] == 2 * 1 + 5 && y[1] == 2 * 5 + 10 && y[2] == 2 * 4 + 5 && y[3] == 2 * 11 + 10);
    CHECK(fx_op_gemm_fast(&p, a, b, c, yf) == FX_OK && memcmp(y, yf, sizeof y) == 0);
    /* transA: A stored (3,2) */
    float at[6] = {1, 4, 2, 5, 3, 6};
    p.trans_a = 1;
    CHECK(fx_op_gemm_ref(&p, at, b, NULL, y) == FX_OK && y[3] == 22);
    CHECK(fx_op_gemm_fast(&p, at, b, NULL, yf) == FX_OK && memcmp(y, yf, sizeof y) == 0);
    p.c_cols = 3;
    CHECK(fx_op_gemm_ref(&p, a, b, c, y) == FX_ERR_USAGE);
}

static void test_matmul(void)
{
    /* (3) @ (2,3,4) -> (2,4); b[t][k][j] = t*100 + k*10 + j, a = (1,1,1) */
    fx_matmul_params p = {.a = {1, {3}}, .b = {3, {2, 3, 4}}};
    fx_shape o;
    CHECK(fx_matmul_out_shape(&p, &o, NULL) == FX_OK && o.rank == 2 && o.d[0] == 2 && o.d[1] == 4);
    float a[3] = {1, 1, 1}, b[24], y[8];
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 4; j++)
                b[(t * 3 + k) * 4 + j] = (float)(t * 100 + k * 10 + j);
    CHECK(fx_op_matmul_ref(&p, a, b, y) == FX_OK);
    CHECK(y[0] == 30 && y[7] == 300 + 30 + 9);
    /* (2,1,2,3) @ (3,3,2) -> (2,3,2,2); check shape and one element */
    fx_matmul_params q = {.a = {4, {2, 1, 2, 3}}, .b = {3, {3, 3, 2}}};
    CHECK(fx_matmul_out_shape(&q, &o, NULL) == FX_OK && o.rank == 4 && o.d[0] == 2 && o.d[1] == 3 &&
          o.d[2] == 2 && o.d[3] == 2);
    float qa[12], qb[18], qy[24];
    for (int i = 0; i < 12; i++)
        qa[i] = (float)i;
    for (int i = 0; i < 18; i++)
        qb[i] = (float)(i % 5);
    CHECK(fx_op_matmul_ref(&q, qa, qb, qy) == FX_OK);
    /* y[1][2][1][0] = sum_k a[1][0][1][k] * b[2][k][0] */
    double want = 0;
    for (int k = 0; k < 3; k++)
        want += qa[6 + 3 + k] * qb[12 + k * 2];
    CHECK_NEAR(qy[((1 * 3 + 2) * 2 + 1) * 2 + 0], want, 1e-6);
    fx_matmul_params bad = {.a = {2, {2, 3}}, .b = {2, {2, 3}}};
    CHECK(fx_matmul_out_shape(&bad, &o, NULL) == FX_ERR_USAGE);
}

static void test_softmax(void)
{
    float x[6] = {1, 2, 3, 1000, 1000, 1000}, y[6];
    fx_softmax_params p = {.x = {2, {2, 3}}, .axis = -1};
    CHECK(fx_op_softmax_ref(&p, x, y) == FX_OK);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_NEAR(y[0], exp(1.0) / z, 1e-7);
    CHECK_NEAR(y[2], exp(3.0) / z, 1e-7);
    CHECK_NEAR(y[4], 1.0 / 3, 1e-7); /* no overflow with large inputs */
    p.axis = 0;
    CHECK(fx_op_softmax_ref(&p, x, y) == FX_OK && y[0] == 0.0f && y[3] == 1.0f);
}

static void test_reduce_mean(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    fx_reduce_params p = {.x = {2, {2, 3}}, .n_axes = 1, .axes = {1}, .keepdims = 1};
    fx_shape o;
    CHECK(fx_reduce_out_shape(&p, &o, NULL) == FX_OK && o.rank == 2 && o.d[1] == 1);
    CHECK(fx_op_reduce_mean_ref(&p, x, y) == FX_OK && y[0] == 2 && y[1] == 5);
    p.axes[0] = -2, p.keepdims = 0;
    CHECK(fx_reduce_out_shape(&p, &o, NULL) == FX_OK && o.rank == 1 && o.d[0] == 3);
    CHECK(fx_op_reduce_mean_ref(&p, x, y) == FX_OK && y[0] == 2.5f && y[2] == 4.5f);
    p.n_axes = 0; /* all */
    CHECK(fx_op_reduce_mean_ref(&p, x, y) == FX_OK && y[0] == 3.5f);
    p.n_axes = 2, p.axes[0] = 1, p.axes[1] = -1; /* repeated */
    CHECK(fx_op_reduce_mean_ref(&p, x, y) == FX_ERR_USAGE);
}

/* ---- PyTorch outputs checked in as tests/data/ops_ref.h5 ----------------- */

static void test_torch_reference_file(void)
{
    char path[4096];
    if (!fx_case_find_ref_file(path, sizeof path)) {
        fprintf(stderr, "  tests/data/ops_ref.h5 not found (set FX_OPS_REF)\n");
        check_failures_current++;
        return;
    }
    int n_cases = 0, n_bad = fx_case_check_file(path, &n_cases);
    CHECK_MSG(n_bad == 0, "%d of %d cases failed", n_bad, n_cases);
    CHECK(n_cases > 50);
}

int main(void)
{
    RUN(test_conv_fast_named_shapes);
    RUN(test_conv_fast_random);
    RUN(test_conv_fast_ws);
    RUN(test_conv_fast_mt_epilogue);
    RUN(test_conv_gemm_kernel);
    RUN(test_dw_block_ways);
    RUN(test_conv_winograd);
    RUN(test_conv_depthwise);
    RUN(test_act_fast);
    RUN(test_binary_fast);
    RUN(test_silu_epilogue);
    RUN(test_conv_expand_dw);
    RUN(test_conv_dw_gap);
    RUN(test_conv_prologue);
    RUN(test_bn_pool_fast);
    RUN(test_conv_ramp);
    RUN(test_auto_pad);
    RUN(test_batchnorm);
    RUN(test_activations);
    RUN(test_broadcast_binary);
    RUN(test_prelu);
    RUN(test_concat_split);
    RUN(test_transpose);
    RUN(test_pad);
    RUN(test_maxpool_ceil);
    RUN(test_maxpool_fast);
    RUN(test_avgpool_pad);
    RUN(test_global_pools);
    RUN(test_gemm);
    RUN(test_matmul);
    RUN(test_softmax);
    RUN(test_reduce_mean);
    RUN(test_torch_reference_file);
    return check_summary();
}
