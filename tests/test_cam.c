/* Tests of src/cam: every VJP against central differences (double sums of
 * the float forward references, inputs kept away from kinks and ties), the
 * backward pass of a small graph against differences of the whole plan,
 * the GAP+Gemm shortcut against the backward pass, the unsupported-op
 * error, and the CAM methods / normalise / upsample / locate helpers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fxscreen/cam.h"
#include "model/plan_internal.h"
#include "model/vjp.h"

#define FD_H   1e-2
#define FD_TOL 1e-3

static unsigned rng_state;

static float frand(void) /* uniform [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static float *rnd(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * 0.5f * (frand() + 1.0f);
    return p;
}

/* Moves every value at least `gap` away from each kink. */
static void avoid(float *x, int64_t n, const float *kinks, int nk, float gap)
{
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < nk; k++)
            if (fabsf(x[i] - kinks[k]) < gap)
                x[i] = kinks[k] + (x[i] >= kinks[k] ? gap : -gap);
}

/* A forward function of one input (the others fixed in ctx). */
typedef void (*fwd_fn)(const void *ctx, const float *x, float *y);

/* sum(dy * f(x)) in double. */
static double loss(fwd_fn f, const void *ctx, const float *x, float *y, const float *dy, int64_t ny)
{
    f(ctx, x, y);
    double s = 0.0;
    for (int64_t i = 0; i < ny; i++)
        s += (double)dy[i] * y[i];
    return s;
}

/* Central differences of sum(dy * f(x)) against the analytic dx, every
 * element: |fd - dx| <= FD_TOL * max(1, max|dx|).  Returns max error. */
static double fd_check(fwd_fn f, const void *ctx, float *x, int64_t nx, int64_t ny, const float *dy,
                       const float *dx)
{
    float *y = malloc((size_t)ny * sizeof *y);
    double scale = 1.0, worst = 0.0;
    for (int64_t i = 0; i < nx; i++)
        scale = fabs(dx[i]) > scale ? fabs(dx[i]) : scale;
    for (int64_t i = 0; i < nx; i++) {
        float x0 = x[i];
        x[i] = (float)(x0 + FD_H);
        double hp = (double)x[i] - x0, lp = loss(f, ctx, x, y, dy, ny);
        x[i] = (float)(x0 - FD_H);
        double hm = x0 - (double)x[i], lm = loss(f, ctx, x, y, dy, ny);
        x[i] = x0;
        double fd = (lp - lm) / (hp + hm), e = fabs(fd - dx[i]) / scale;
        worst = e > worst ? e : worst;
    }
    free(y);
    return worst;
}

#define FD_EXPECT(f, ctx, x, nx, ny, dy, dx)                                                       \
    do {                                                                                           \
        double e_ = fd_check((f), (ctx), (x), (nx), (ny), (dy), (dx));                             \
        CHECK_MSG(e_ <= FD_TOL, "%s: max scaled error %.3g", #f, e_);                              \
    } while (0)

/* ---- Conv ---------------------------------------------------------------------- */

typedef struct conv_ctx {
    fx_conv2d_params p;
    const float *w;
} conv_ctx;

static void conv_fwd(const void *c, const float *x, float *y)
{
    const conv_ctx *k = c;
    fx_op_conv2d_ref(&k->p, x, k->w, NULL, y);
}

static void check_conv(fx_conv2d_params p)
{
    int oh, ow;
    CHECK(fx_conv2d_out_hw(&p, &oh, &ow, NULL) == FX_OK);
    int64_t nx = (int64_t)p.n * p.c_in * p.h * p.w, ny = (int64_t)p.n * p.c_out * oh * ow;
    float *x = rnd(nx, -1, 1),
          *w = rnd((int64_t)p.c_out * (p.c_in / p.groups) * p.kh * p.kw, -1, 1);
    float *dy = rnd(ny, -1, 1), *dx = calloc((size_t)nx, sizeof *dx);
    CHECK(fx_vjp_conv2d(&p, w, dy, dx) == FX_OK);
    conv_ctx c = {p, w};
    FD_EXPECT(conv_fwd, &c, x, nx, ny, dy, dx);
    free(x), free(w), free(dy), free(dx);
}

static void test_vjp_conv(void)
{
    check_conv((fx_conv2d_params){.n = 2,
                                  .c_in = 4,
                                  .h = 7,
                                  .w = 6,
                                  .c_out = 6,
                                  .kh = 3,
                                  .kw = 2,
                                  .stride_h = 2,
                                  .stride_w = 1,
                                  .dil_h = 1,
                                  .dil_w = 2,
                                  .pad_t = 1,
                                  .pad_l = 0,
                                  .pad_b = 2,
                                  .pad_r = 1,
                                  .groups = 2});
    check_conv((fx_conv2d_params){.n = 1,
                                  .c_in = 3,
                                  .h = 5,
                                  .w = 5,
                                  .c_out = 3,
                                  .kh = 3,
                                  .kw = 3,
                                  .stride_h = 1,
                                  .stride_w = 2,
                                  .dil_h = 1,
                                  .dil_w = 1,
                                  .pad_t = 1,
                                  .pad_l = 1,
                                  .pad_b = 1,
                                  .pad_r = 1,
                                  .groups = 3});
}

/* ---- Gemm / MatMul ---------------------------------------------------------------- */

typedef struct gemm_ctx {
    fx_gemm_params p;
    const float *a, *b, *c;
    int which; /* 0: x is A, 1: B, 2: C */
} gemm_ctx;

static void gemm_fwd(const void *v, const float *x, float *y)
{
    const gemm_ctx *k = v;
    fx_op_gemm_ref(&k->p, k->which == 0 ? x : k->a, k->which == 1 ? x : k->b,
                   k->which == 2 ? x : k->c, y);
}

static void check_gemm(int ta, int tb)
{
    fx_gemm_params p = {.m = 3,
                        .n = 4,
                        .k = 5,
                        .trans_a = ta,
                        .trans_b = tb,
                        .alpha = 0.7f,
                        .beta = 1.3f,
                        .c_rows = 1,
                        .c_cols = 4};
    float *a = rnd(15, -1, 1), *b = rnd(20, -1, 1), *c = rnd(4, -1, 1), *dy = rnd(12, -1, 1);
    float *da = calloc(15, sizeof *da), *db = calloc(20, sizeof *db), *dc = calloc(4, sizeof *dc);
    CHECK(fx_vjp_gemm(&p, a, b, dy, da, db, dc) == FX_OK);
    gemm_ctx k = {p, a, b, c, 0};
    FD_EXPECT(gemm_fwd, &k, a, 15, 12, dy, da);
    k.which = 1;
    FD_EXPECT(gemm_fwd, &k, b, 20, 12, dy, db);
    k.which = 2;
    FD_EXPECT(gemm_fwd, &k, c, 4, 12, dy, dc);
    free(a), free(b), free(c), free(dy), free(da), free(db), free(dc);
}

typedef struct mm_ctx {
    fx_matmul_params p;
    const float *a, *b;
    int which;
} mm_ctx;

static void mm_fwd(const void *v, const float *x, float *y)
{
    const mm_ctx *k = v;
    fx_op_matmul_ref(&k->p, k->which ? k->a : x, k->which ? x : k->b, y);
}

static void test_vjp_gemm_matmul(void)
{
    check_gemm(0, 1);
    check_gemm(1, 0);
    fx_matmul_params p = {{4, {2, 1, 3, 4}}, {3, {3, 4, 5}}}; /* -> (2, 3, 3, 5) */
    float *a = rnd(24, -1, 1), *b = rnd(60, -1, 1), *dy = rnd(90, -1, 1);
    float *da = calloc(24, sizeof *da), *db = calloc(60, sizeof *db);
    CHECK(fx_vjp_matmul(&p, a, b, dy, da, db) == FX_OK);
    mm_ctx k = {p, a, b, 0};
    FD_EXPECT(mm_fwd, &k, a, 24, 90, dy, da);
    k.which = 1;
    FD_EXPECT(mm_fwd, &k, b, 60, 90, dy, db);
    free(a), free(b), free(dy), free(da), free(db);
}

/* ---- activations -------------------------------------------------------------------- */

typedef struct act_ctx {
    fx_act_params p;
    fx_unary_kind k;
} act_ctx;

static void act_fwd(const void *v, const float *x, float *y)
{
    const act_ctx *c = v;
    switch (c->k) {
    case FX_U_RELU: fx_op_relu_ref(&c->p, x, y); break;
    case FX_U_LEAKY: fx_op_leaky_relu_ref(&c->p, x, y); break;
    case FX_U_CLIP: fx_op_clip_ref(&c->p, x, y); break;
    case FX_U_SIGMOID: fx_op_sigmoid_ref(&c->p, x, y); break;
    case FX_U_HSIGMOID: fx_op_hard_sigmoid_ref(&c->p, x, y); break;
    case FX_U_HSWISH: fx_op_hard_swish_ref(&c->p, x, y); break;
    case FX_U_TANH: fx_op_tanh_ref(&c->p, x, y); break;
    case FX_U_ELU: fx_op_elu_ref(&c->p, x, y); break;
    case FX_U_SELU: fx_op_selu_ref(&c->p, x, y); break;
    case FX_U_GELU: fx_op_gelu_ref(&c->p, x, y); break;
    default: break;
    }
}

static void test_vjp_act(void)
{
    const int64_t n = 64;
    float kinks[] = {0.0f, 6.0f, -3.0f, 3.0f};
    static const fx_unary_kind kinds[] = {FX_U_RELU,     FX_U_LEAKY,  FX_U_CLIP, FX_U_SIGMOID,
                                          FX_U_HSIGMOID, FX_U_HSWISH, FX_U_TANH, FX_U_ELU,
                                          FX_U_SELU,     FX_U_GELU};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        fx_unary_kind k = kinds[i];
        act_ctx c = {{.n = n, .alpha = 0.1f, .beta = 0.9f}, k};
        if (k == FX_U_CLIP)
            c.p.alpha = 0.0f, c.p.beta = 6.0f;
        if (k == FX_U_HSIGMOID)
            c.p.alpha = 1.0f / 6.0f, c.p.beta = 0.5f;
        if (k == FX_U_ELU || k == FX_U_SELU)
            c.p.alpha = 1.6f, c.p.beta = 1.05f;
        float *x = rnd(n, -5, 8), *y = malloc(n * sizeof *y), *dy = rnd(n, -1, 1);
        float *dx = calloc(n, sizeof *dx);
        avoid(x, n, kinks, 4, 0.05f);
        act_fwd(&c, x, y);
        CHECK(fx_vjp_unary(c.k, &c.p, x, y, dy, dx) == FX_OK);
        double e = fd_check(act_fwd, &c, x, n, n, dy, dx);
        CHECK_MSG(e <= FD_TOL, "activation kind %d: max scaled error %.3g", (int)k, e);
        free(x), free(y), free(dy), free(dx);
    }
}

/* ---- PRelu and broadcasting binaries -------------------------------------------------- */

typedef struct bin_ctx {
    fx_binary_params p;
    const float *a, *b;
    char op;
    int which; /* 0: x is a, 1: x is b */
} bin_ctx;

static void bin_fwd(const void *v, const float *x, float *y)
{
    const bin_ctx *c = v;
    const float *a = c->which ? c->a : x, *b = c->which ? x : c->b;
    switch (c->op) {
    case 'A': fx_op_add_ref(&c->p, a, b, y); break;
    case 'S': fx_op_sub_ref(&c->p, a, b, y); break;
    case 'M': fx_op_mul_ref(&c->p, a, b, y); break;
    case 'D': fx_op_div_ref(&c->p, a, b, y); break;
    default: fx_op_prelu_ref(&c->p, a, b, y);
    }
}

static void check_binary(char op, fx_shape sa, fx_shape sb)
{
    bin_ctx c = {{sa, sb}, NULL, NULL, op, 0};
    fx_shape o;
    CHECK(fx_broadcast_shape(&c.p, &o, NULL) == FX_OK);
    int64_t na = fx_shape_numel(&sa), nb = fx_shape_numel(&sb), no = fx_shape_numel(&o);
    float *a = rnd(na, -1, 1), *b = rnd(nb, 0.5f, 2.0f), *dy = rnd(no, -1, 1);
    float *da = calloc((size_t)na, sizeof *da), *db = calloc((size_t)nb, sizeof *db);
    float kink = 0.0f;
    if (op == 'P')
        avoid(a, na, &kink, 1, 0.05f);
    c.a = a, c.b = b;
    fx_status st = op == 'P' ? fx_vjp_prelu(&c.p, a, b, dy, da, db)
                             : fx_vjp_binary(op, &c.p, a, b, dy, da, db);
    CHECK(st == FX_OK);
    double e0 = fd_check(bin_fwd, &c, a, na, no, dy, da);
    c.which = 1;
    double e1 = fd_check(bin_fwd, &c, b, nb, no, dy, db);
    CHECK_MSG(e0 <= FD_TOL && e1 <= FD_TOL, "op %c: errors %.3g (a) %.3g (b)", op, e0, e1);
    free(a), free(b), free(dy), free(da), free(db);
}

static void test_vjp_binary(void)
{
    fx_shape a4 = {4, {2, 3, 4, 5}}, b3 = {3, {3, 1, 5}};
    fx_shape se_x = {4, {2, 3, 4, 4}}, se_s = {4, {2, 3, 1, 1}};
    const char ops[] = "ASMD";
    for (int i = 0; i < 4; i++) {
        check_binary(ops[i], a4, b3);
        check_binary(ops[i], b3, a4);
        check_binary(ops[i], se_x, se_s); /* squeeze-excitation Mul: both activations */
    }
    check_binary('P', se_x, (fx_shape){3, {3, 1, 1}});
}

/* ---- BatchNorm, Concat, Split, Transpose, Pad ------------------------------------------- */

typedef struct bn_ctx {
    fx_batchnorm_params p;
    const float *s, *b, *m, *v;
} bn_ctx;

static void bn_fwd(const void *v, const float *x, float *y)
{
    const bn_ctx *c = v;
    fx_op_batchnorm_ref(&c->p, x, c->s, c->b, c->m, c->v, y);
}

static void test_vjp_batchnorm(void)
{
    bn_ctx c = {{2, 3, 10, 1e-5f}, NULL, NULL, NULL, NULL};
    float *s = rnd(3, 0.5f, 2), *b = rnd(3, -1, 1), *m = rnd(3, -1, 1), *v = rnd(3, 0.2f, 2);
    float *x = rnd(60, -1, 1), *dy = rnd(60, -1, 1), *dx = calloc(60, sizeof *dx);
    c.s = s, c.b = b, c.m = m, c.v = v;
    CHECK(fx_vjp_batchnorm(&c.p, s, v, dy, dx) == FX_OK);
    FD_EXPECT(bn_fwd, &c, x, 60, 60, dy, dx);
    free(s), free(b), free(m), free(v), free(x), free(dy), free(dx);
}

typedef struct cat_ctx {
    fx_concat_params p;
    float *xs[3];
    int which;
} cat_ctx;

static void cat_fwd(const void *v, const float *x, float *y)
{
    const cat_ctx *c = v;
    const float *xs[3] = {c->xs[0], c->xs[1], c->xs[2]};
    xs[c->which] = x;
    fx_op_concat_ref(&c->p, xs, y);
}

static void test_vjp_concat_split(void)
{
    fx_shape sh[3] = {{4, {2, 1, 3, 2}}, {4, {2, 4, 3, 2}}, {4, {2, 2, 3, 2}}};
    cat_ctx c = {{3, sh, 1}, {NULL}, 0};
    float *dxs[3], *dy = rnd(2 * 7 * 6, -1, 1);
    for (int i = 0; i < 3; i++) {
        c.xs[i] = rnd(fx_shape_numel(&sh[i]), -1, 1);
        dxs[i] = calloc((size_t)fx_shape_numel(&sh[i]), sizeof(float));
    }
    CHECK(fx_vjp_concat(&c.p, dy, dxs) == FX_OK);
    for (int i = 0; i < 3; i++) {
        c.which = i;
        FD_EXPECT(cat_fwd, &c, c.xs[i], fx_shape_numel(&sh[i]), 84, dy, dxs[i]);
    }
    /* Split is concat's adjoint: split then concat the gradients back. */
    int64_t sizes[3] = {1, 4, 2};
    fx_split_params sp = {{4, {2, 7, 3, 2}}, 1, 3, sizes};
    float *dx = calloc(84, sizeof *dx);
    const float *dys[3] = {dxs[0], NULL, dxs[2]};
    CHECK(fx_vjp_split(&sp, dys, dx) == FX_OK);
    float *ys[3] = {malloc(12 * 4), malloc(48 * 4), malloc(24 * 4)};
    fx_op_split_ref(&sp, dx, ys);
    CHECK(!memcmp(ys[0], dxs[0], 12 * 4) && !memcmp(ys[2], dxs[2], 24 * 4));
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 24; j++)
            CHECK(dx[n * 42 + 6 + j] == 0.0f); /* the NULL (zero) gradient */
    for (int i = 0; i < 3; i++)
        free(c.xs[i]), free(dxs[i]), free(ys[i]);
    free(dy), free(dx);
}

static void tr_fwd(const void *v, const float *x, float *y)
{
    fx_op_transpose_ref(v, x, y);
}

static void pad_fwd(const void *v, const float *x, float *y)
{
    fx_op_pad_ref(v, x, y);
}

static void test_vjp_transpose_pad(void)
{
    fx_transpose_params t = {{4, {2, 3, 4, 5}}, {0, 2, 3, 1}};
    float *x = rnd(120, -1, 1), *dy = rnd(120, -1, 1), *dx = calloc(120, sizeof *dx);
    CHECK(fx_vjp_transpose(&t, dy, dx) == FX_OK);
    FD_EXPECT(tr_fwd, &t, x, 120, 120, dy, dx);
    fx_pad_params p = {{4, {1, 2, 4, 5}}, {0, 0, 2, -1, 0, 1, -1, 3}, FX_PADMODE_CONSTANT, 0.5f};
    fx_shape o;
    CHECK(fx_pad_out_shape(&p, &o, NULL) == FX_OK);
    int64_t no = fx_shape_numel(&o);
    float *pdy = rnd(no, -1, 1), *pdx = calloc(40, sizeof *pdx);
    CHECK(fx_vjp_pad(&p, pdy, pdx) == FX_OK);
    FD_EXPECT(pad_fwd, &p, x, 40, no, pdy, pdx);
    for (int m = 0; m < 2; m++) { /* reflect, edge: some inputs read several times */
        p.mode = m ? FX_PADMODE_EDGE : FX_PADMODE_REFLECT;
        memset(pdx, 0, 40 * sizeof *pdx);
        CHECK(fx_vjp_pad(&p, pdy, pdx) == FX_OK);
        FD_EXPECT(pad_fwd, &p, x, 40, no, pdy, pdx);
    }
    free(x), free(dy), free(dx), free(pdy), free(pdx);
}

/* Slice forward written out for the test: 4-D, output (n, c, h, w) reads
 * input (s0 + n*t0, s1 + c*t1, s2 + h*t2, s3 + w*t3). */
typedef struct slice_ctx {
    fx_shape x, y;
    int64_t start[FX_OPS_MAX_RANK], step[FX_OPS_MAX_RANK];
} slice_ctx;

static void slice_fwd(const void *v, const float *x, float *y)
{
    const slice_ctx *c = v;
    const int64_t *d = c->x.d, *o = c->y.d, *s = c->start, *t = c->step;
    for (int64_t a = 0; a < o[0]; a++)
        for (int64_t b = 0; b < o[1]; b++)
            for (int64_t h = 0; h < o[2]; h++)
                for (int64_t w = 0; w < o[3]; w++)
                    *y++ =
                        x[(((s[0] + a * t[0]) * d[1] + s[1] + b * t[1]) * d[2] + s[2] + h * t[2]) *
                              d[3] +
                          s[3] + w * t[3]];
}

/* ShuffleNet's channel split (two halves), a strided and a reversed slice,
 * against differences; out-of-range reads are refused. */
static void test_vjp_slice(void)
{
    slice_ctx cases[] = {
        {{4, {2, 6, 3, 4}}, {4, {2, 3, 3, 4}}, {0, 3, 0, 0}, {1, 1, 1, 1}},
        {{4, {2, 6, 3, 4}}, {4, {2, 3, 3, 4}}, {0, 0, 0, 0}, {1, 1, 1, 1}},
        {{4, {2, 6, 5, 7}}, {4, {1, 2, 2, 3}}, {1, 1, 4, 0}, {1, 3, -2, 3}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        slice_ctx *c = &cases[k];
        int64_t nx = fx_shape_numel(&c->x), ny = fx_shape_numel(&c->y);
        float *x = rnd(nx, -1, 1), *dy = rnd(ny, -1, 1), *dx = calloc((size_t)nx, sizeof *dx);
        CHECK(fx_vjp_slice(&c->x, &c->y, c->start, c->step, dy, dx) == FX_OK);
        FD_EXPECT(slice_fwd, c, x, nx, ny, dy, dx);
        free(x), free(dy), free(dx);
    }
    slice_ctx bad = {{4, {1, 4, 2, 2}}, {4, {1, 3, 2, 2}}, {0, 2, 0, 0}, {1, 1, 1, 1}};
    float dy[12] = {0}, dx[16] = {0};
    CHECK(fx_vjp_slice(&bad.x, &bad.y, bad.start, bad.step, dy, dx) == FX_ERR_USAGE);
}

typedef struct gather_ctx {
    fx_shape d;
    int axis;
    const int64_t *ix;
    int64_t ni;
} gather_ctx;

static void gather_fwd(const void *v, const float *x, float *y) /* written out, axis 1 of 3-D */
{
    const gather_ctx *c = v;
    for (int64_t a = 0; a < c->d.d[0]; a++)
        for (int64_t i = 0; i < c->ni; i++) {
            int64_t k = c->ix[i] < 0 ? c->ix[i] + c->d.d[1] : c->ix[i];
            for (int64_t b = 0; b < c->d.d[2]; b++)
                *y++ = x[(a * c->d.d[1] + k) * c->d.d[2] + b];
        }
}

static void test_vjp_gather(void)
{
    int64_t ix[5] = {2, 0, 2, -1, 1};
    gather_ctx c = {{3, {2, 4, 3}}, 1, ix, 5};
    float *x = rnd(24, -1, 1), *dy = rnd(30, -1, 1), *dx = calloc(24, sizeof *dx);
    CHECK(fx_vjp_gather(&c.d, c.axis, ix, 5, dy, dx) == FX_OK);
    FD_EXPECT(gather_fwd, &c, x, 24, 30, dy, dx);
    int64_t bad[1] = {4};
    CHECK(fx_vjp_gather(&c.d, 1, bad, 1, dy, dx) == FX_ERR_USAGE);
    free(x), free(dy), free(dx);
}

/* ---- pools and reductions ---------------------------------------------------------------- */

static void maxpool_fwd(const void *v, const float *x, float *y)
{
    fx_op_maxpool2d_ref(v, x, y);
}

static void avgpool_fwd(const void *v, const float *x, float *y)
{
    fx_op_avgpool2d_ref(v, x, y);
}

static void check_pool(fx_pool2d_params p, int is_max)
{
    int oh, ow;
    CHECK(fx_pool2d_out_hw(&p, &oh, &ow, NULL) == FX_OK);
    int64_t nx = (int64_t)p.n * p.c * p.h * p.w, ny = (int64_t)p.n * p.c * oh * ow;
    float *x = malloc((size_t)nx * sizeof *x), *dy = rnd(ny, -1, 1);
    float *dx = calloc((size_t)nx, sizeof *dx);
    for (int64_t i = 0; i < nx; i++) /* distinct values 0.1 apart: no ties within FD_H */
        x[i] = 0.1f * (float)((i * 37) % nx) - 3.0f;
    CHECK((is_max ? fx_vjp_maxpool2d(&p, x, dy, dx) : fx_vjp_avgpool2d(&p, dy, dx)) == FX_OK);
    double e = fd_check(is_max ? maxpool_fwd : avgpool_fwd, &p, x, nx, ny, dy, dx);
    CHECK_MSG(e <= FD_TOL, "%s pool (ceil %d, include_pad %d): %.3g", is_max ? "max" : "avg",
              p.ceil_mode, p.count_include_pad, e);
    free(x), free(dy), free(dx);
}

static void test_vjp_pools(void)
{
    fx_pool2d_params p = {.n = 2,
                          .c = 2,
                          .h = 7,
                          .w = 6,
                          .kh = 3,
                          .kw = 2,
                          .stride_h = 2,
                          .stride_w = 2,
                          .dil_h = 1,
                          .dil_w = 1,
                          .pad_t = 1,
                          .pad_l = 1,
                          .pad_b = 1,
                          .pad_r = 0,
                          .ceil_mode = 1};
    check_pool(p, 1);
    for (int inc = 0; inc < 2; inc++) {
        p.count_include_pad = inc;
        check_pool(p, 0);
        p.ceil_mode = 0;
        check_pool(p, 0);
        p.ceil_mode = 1;
    }
    p.dil_h = 2, p.count_include_pad = 0;
    check_pool(p, 1);
    /* Ties go to the first maximum, as torch. */
    fx_pool2d_params q = {.n = 1,
                          .c = 1,
                          .h = 2,
                          .w = 2,
                          .kh = 2,
                          .kw = 2,
                          .stride_h = 1,
                          .stride_w = 1,
                          .dil_h = 1,
                          .dil_w = 1};
    float x[4] = {1, 3, 3, 0}, dy[1] = {1}, dx[4] = {0};
    CHECK(fx_vjp_maxpool2d(&q, x, dy, dx) == FX_OK);
    CHECK(dx[1] == 1.0f && dx[2] == 0.0f);
}

static void gap_fwd(const void *v, const float *x, float *y)
{
    fx_op_global_avgpool_ref(v, x, y);
}

static void gmp_fwd(const void *v, const float *x, float *y)
{
    fx_op_global_maxpool_ref(v, x, y);
}

static void rm_fwd(const void *v, const float *x, float *y)
{
    fx_op_reduce_mean_ref(v, x, y);
}

static void sm_fwd(const void *v, const float *x, float *y)
{
    fx_op_softmax_ref(v, x, y);
}

static void test_vjp_reductions(void)
{
    fx_global_pool_params g = {2, 3, 10};
    float *x = malloc(60 * sizeof *x), *dy = rnd(60, -1, 1), *dx = calloc(60, sizeof *dx);
    for (int i = 0; i < 60; i++)
        x[i] = 0.1f * (float)((i * 23) % 60);
    CHECK(fx_vjp_global_avgpool(&g, dy, dx) == FX_OK);
    FD_EXPECT(gap_fwd, &g, x, 60, 6, dy, dx);
    memset(dx, 0, 60 * sizeof *dx);
    CHECK(fx_vjp_global_maxpool(&g, x, dy, dx) == FX_OK);
    FD_EXPECT(gmp_fwd, &g, x, 60, 6, dy, dx);
    fx_reduce_params r = {{4, {2, 3, 2, 5}}, 2, {1, -1}, 0};
    memset(dx, 0, 60 * sizeof *dx);
    CHECK(fx_vjp_reduce_mean(&r, dy, dx) == FX_OK);
    FD_EXPECT(rm_fwd, &r, x, 60, 4, dy, dx);
    fx_softmax_params s = {{3, {2, 5, 6}}, 1};
    float *y = malloc(60 * sizeof *y);
    fx_op_softmax_ref(&s, x, y);
    memset(dx, 0, 60 * sizeof *dx);
    CHECK(fx_vjp_softmax(&s, y, dy, dx) == FX_OK);
    FD_EXPECT(sm_fwd, &s, x, 60, 60, dy, dx);
    free(x), free(dy), free(dx), free(y);
}

/* ---- the backward pass over a graph -----------------------------------------------------------
 */

static fx_error err;

static void add_const(fx_graph *g, const char *name, fx_shape s, float lo, float hi)
{
    float *v = rnd(fx_shape_numel(&s), lo, hi);
    CHECK(fx_graph_add_constant(g, name, FX_DT_FLOAT, &s, v, &err) == FX_OK);
    free(v);
}

static void node(fx_graph *g, const char *op, const char **in, int n_in, const char *out,
                 const fx_attr *a, int n_a)
{
    const char *outs[1] = {out};
    CHECK_MSG(fx_graph_add_node(g, out, op, in, n_in, outs, 1, a, n_a, &err) == FX_OK, "%s",
              err.msg);
}

/* x (2,3,6,6) -> Conv 3x3 -> Relu = a -> [tail] -> GAP -> Flatten -> Gemm (3 classes).
 * tail 1: Conv 1x1 -> Sigmoid -> Mul(a, .) (both activations) -> MaxPool 2x2
 * tail 0: nothing (the shortcut applies); tail 2: a Conv whose weight is a
 * itself (no VJP: only a Conv's data input may carry a gradient);
 * tail 4: Cast (float to float) -> Gather of channels 3, 0, 0, -2;
 * tail 3: ShuffleNet's channel split: Slice channels 0-1 and 2-3, Conv 1x1
 * on the second half, Concat(conv, first half); tail 5: Reshape (with its
 * constant shape) instead of Flatten. */
static fx_graph *build(int tail)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = {4, {-1, 3, 6, 6}};
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    add_const(g, "w1", (fx_shape){4, {4, 3, 3, 3}}, -0.5f, 0.5f);
    add_const(g, "w2", (fx_shape){4, {4, 4, 1, 1}}, -0.5f, 0.5f);
    add_const(g, "fw", (fx_shape){2, {3, 4}}, -1, 1);
    add_const(g, "fb", (fx_shape){1, {3}}, -1, 1);
    int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
    fx_attr ca = {.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4};
    fx_attr pa[2] = {{.name = "kernel_shape", .type = FX_ATTR_INTS, .ints = k2, .n = 2},
                     {.name = "strides", .type = FX_ATTR_INTS, .ints = k2, .n = 2}};
    fx_attr ga = {.name = "transB", .type = FX_ATTR_INT, .i = 1};
    fx_attr to = {.name = "to", .type = FX_ATTR_INT, .i = 1};
    node(g, "Conv", (const char *[]){"x", "w1"}, 2, "c1", &ca, 1);
    node(g, "Relu", (const char *[]){"c1"}, 1, "a", NULL, 0);
    const char *last = "a";
    if (tail == 1) {
        node(g, "Conv", (const char *[]){"a", "w2"}, 2, "c2", NULL, 0);
        node(g, "Sigmoid", (const char *[]){"c2"}, 1, "s", NULL, 0);
        node(g, "Mul", (const char *[]){"a", "s"}, 2, "m", NULL, 0);
        node(g, "MaxPool", (const char *[]){"m"}, 1, "mp", pa, 2);
        last = "mp";
    } else if (tail == 2) {
        fx_attr axis = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
        node(g, "Conv", (const char *[]){"a", "a"}, 2, "cw", NULL, 0); /* (2,2,1,1) */
        node(g, "Concat", (const char *[]){"cw", "cw"}, 2, "cwc", &axis, 1);
        last = "cwc";
    } else if (tail == 4) {
        fx_shape i4 = {1, {4}};
        int64_t iv[4] = {3, 0, 0, -2}; /* a repeat and a negative index */
        fx_attr axis = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
        CHECK(fx_graph_add_constant(g, "gi", FX_DT_INT64, &i4, iv, &err) == FX_OK);
        node(g, "Cast", (const char *[]){"a"}, 1, "cast", &to, 1);
        node(g, "Gather", (const char *[]){"cast", "gi"}, 2, "gat", &axis, 1);
        last = "gat";
    } else if (tail == 3) {
        fx_shape one = {1, {1}};
        int64_t v0 = 0, v2 = 2, v4 = 4, ax = 1;
        CHECK(fx_graph_add_constant(g, "i0", FX_DT_INT64, &one, &v0, &err) == FX_OK);
        CHECK(fx_graph_add_constant(g, "i2", FX_DT_INT64, &one, &v2, &err) == FX_OK);
        CHECK(fx_graph_add_constant(g, "i4", FX_DT_INT64, &one, &v4, &err) == FX_OK);
        CHECK(fx_graph_add_constant(g, "ax", FX_DT_INT64, &one, &ax, &err) == FX_OK);
        add_const(g, "w3", (fx_shape){4, {2, 2, 1, 1}}, -1, 1);
        fx_attr axis = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
        node(g, "Slice", (const char *[]){"a", "i0", "i2", "ax"}, 4, "lo", NULL, 0);
        node(g, "Slice", (const char *[]){"a", "i2", "i4", "ax"}, 4, "hi", NULL, 0);
        node(g, "Conv", (const char *[]){"hi", "w3"}, 2, "c3", NULL, 0);
        node(g, "Concat", (const char *[]){"c3", "lo"}, 2, "cat", &axis, 1);
        last = "cat";
    }
    node(g, "GlobalAveragePool", (const char *[]){last}, 1, "gap", NULL, 0);
    if (tail == 5) { /* a view with a constant input (never given a device copy) */
        fx_shape two = {1, {2}};
        int64_t sh[2] = {2, 4};
        CHECK(fx_graph_add_constant(g, "rs", FX_DT_INT64, &two, sh, &err) == FX_OK);
        node(g, "Reshape", (const char *[]){"gap", "rs"}, 2, "f", NULL, 0);
    } else
        node(g, "Flatten", (const char *[]){"gap"}, 1, "f", NULL, 0);
    node(g, "Gemm", (const char *[]){"f", "fw", "fb"}, 3, "y", &ga, 1);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 2, 6, 6, &err) == FX_OK, "%s", err.msg);
    return g;
}

typedef struct graph_ctx {
    fx_plan *p;
} graph_ctx;

static void graph_fwd(const void *v, const float *x, float *y)
{
    const graph_ctx *c = v;
    CHECK(fx_plan_run(c->p, x, NULL) == FX_OK);
    memcpy(y, fx_plan_tensor(c->p, "y", NULL), 6 * sizeof *y);
}

/* dL/dx of the whole graph (layer = the input) against differences of
 * plan runs: exercises the backward pass over Conv, Relu, Conv, Sigmoid,
 * Mul, MaxPool, GAP, Flatten, Gemm. */
static void test_graph_backward(void)
{
    fx_graph *g = build(1);
    fx_grad *gr = NULL;
    CHECK_MSG(fx_grad_create(g, "x", &gr, &err) == FX_OK, "%s", err.msg);
    if (!gr) {
        fx_graph_destroy(g);
        return;
    }
    CHECK(!fx_grad_has_shortcut(gr) && fx_grad_num_classes(gr) == 3);
    fx_plan_opts po = {.grad = gr};
    fx_plan *p = NULL;
    CHECK(fx_plan_create(g, &po, &p, &err) == FX_OK);
    float *x = rnd(216, -1, 1), dx[216], dy[6] = {0};
    CHECK(fx_plan_run(p, x, &err) == FX_OK);
    int t[2] = {-1, 2};
    CHECK(fx_grad_targets(gr, p, t, &err) == FX_OK && t[0] >= 0 && t[0] < 3 && t[1] == 2);
    CHECK_MSG(fx_grad_run(gr, p, t, 1, dx, &err) == FX_OK, "%s", err.msg);
    dy[0 * 3 + t[0]] = 1.0f, dy[1 * 3 + t[1]] = 1.0f;
    graph_ctx c = {p};
    double e = fd_check(graph_fwd, &c, x, 216, 6, dy, dx);
    CHECK_MSG(e <= 5e-3, "graph backward: max scaled error %.3g", e);
    int bad[2] = {0, 3};
    CHECK(fx_grad_targets(gr, p, bad, &err) == FX_ERR_USAGE);
    /* Planned by the CPU backend; the gradients share memory by liveness
     * (this chain holds at most three at a time). */
    size_t peak, naive;
    fx_plan_backward_bytes(p, &peak, &naive);
    CHECK(!strcmp(fx_plan_backward_where(p), "cpu"));
    CHECK_MSG(peak > 0 && peak < naive, "backward arena %zu of %zu bytes", peak, naive);
    /* A plan made without the gradient cannot run its backward. */
    fx_plan *q = NULL;
    fx_plan_opts pk = {.keep = fx_grad_keep(gr), .n_keep = fx_grad_num_keep(gr)};
    CHECK(fx_plan_create(g, &pk, &q, &err) == FX_OK && fx_plan_run(q, x, &err) == FX_OK);
    CHECK(!strcmp(fx_plan_backward_where(q), ""));
    CHECK(fx_grad_run(gr, q, t, 1, dx, &err) == FX_ERR_USAGE && strstr(err.msg, "opts.grad"));
    fx_plan_destroy(q);
    fx_plan_destroy(p);
    fx_grad_destroy(gr);
    fx_graph_destroy(g);
    free(x);
}

/* The same through ShuffleNet's channel split (Slice, Conv, Concat), and
 * through Cast + Gather (tail 4). */
static void graph_backward_tail(int tail)
{
    fx_graph *g = build(tail);
    fx_grad *gr = NULL;
    CHECK_MSG(fx_grad_create(g, "x", &gr, &err) == FX_OK, "%s", err.msg);
    if (!gr) {
        fx_graph_destroy(g);
        return;
    }
    fx_plan_opts po = {.grad = gr};
    fx_plan *p = NULL;
    CHECK(fx_plan_create(g, &po, &p, &err) == FX_OK);
    float *x = rnd(216, -1, 1), dx[216], dy[6] = {0};
    CHECK(fx_plan_run(p, x, &err) == FX_OK);
    int t[2] = {1, 0};
    CHECK_MSG(fx_grad_run(gr, p, t, 1, dx, &err) == FX_OK, "%s", err.msg);
    dy[0 * 3 + 1] = 1.0f, dy[1 * 3 + 0] = 1.0f;
    graph_ctx c = {p};
    double e = fd_check(graph_fwd, &c, x, 216, 6, dy, dx);
    CHECK_MSG(e <= 5e-3, "graph backward, tail %d: max scaled error %.3g", tail, e);
    fx_plan_destroy(p);
    fx_grad_destroy(gr);
    fx_graph_destroy(g);
    free(x);
}

static void test_graph_backward_slice_gather(void)
{
    graph_backward_tail(3);
    graph_backward_tail(4);
    graph_backward_tail(5);
}

static void test_shortcut_and_errors(void)
{
    fx_graph *g = build(0);
    fx_grad *gr = NULL;
    CHECK(fx_grad_create(g, "a", &gr, &err) == FX_OK);
    CHECK(gr && fx_grad_has_shortcut(gr));
    fx_plan_opts po = {.grad = gr};
    fx_plan *p = NULL;
    CHECK(fx_plan_create(g, &po, &p, &err) == FX_OK);
    float *x = rnd(216, -1, 1), d1[288], d2[288];
    CHECK(fx_plan_run(p, x, &err) == FX_OK);
    int t[2] = {1, 0};
    CHECK(fx_grad_run(gr, p, t, 1, d1, &err) == FX_OK);
    CHECK(fx_grad_run(gr, p, t, 0, d2, &err) == FX_OK);
    double worst = 0.0;
    for (int i = 0; i < 288; i++)
        worst = fabs(d1[i] - d2[i]) > worst ? fabs(d1[i] - d2[i]) : worst;
    CHECK_MSG(worst <= 1e-6, "shortcut vs backward: %.3g", worst);
    /* The buffers the first backward made are reused: a second run (other
     * targets, then the first again) gives the same answers, not sums. */
    float d3[288];
    int t2[2] = {0, 1};
    CHECK(fx_grad_run(gr, p, t2, 0, d3, &err) == FX_OK);
    CHECK(fx_grad_run(gr, p, t, 0, d3, &err) == FX_OK);
    CHECK(!memcmp(d2, d3, sizeof d2));
    /* End to end: the same maps either way. */
    fx_cam_result r1, r2;
    fx_cam_opts o = {.layer = NULL, .method = FX_CAM_GRADCAMPP};
    CHECK(fx_cam_run(g, x, &o, &r1, &err) == FX_OK);
    o.no_shortcut = 1;
    CHECK(fx_cam_run(g, x, &o, &r2, &err) == FX_OK);
    CHECK(r1.shortcut == 1 && r2.shortcut == 0 && !strcmp(r1.layer, "a"));
    for (int i = 0; i < 2 * 6 * 6; i++)
        CHECK_NEAR(r1.cam[i], r2.cam[i], 1e-5);
    fx_cam_result_free(&r1);
    fx_cam_result_free(&r2);
    fx_grad *none = NULL;
    CHECK(fx_grad_create(g, "nope", &none, &err) == FX_ERR_USAGE && !none &&
          strstr(err.msg, "nope"));
    fx_plan_destroy(p);
    fx_grad_destroy(gr);
    fx_graph_destroy(g);
    free(x);
    g = build(2);
    gr = NULL;
    fx_status st = fx_grad_create(g, "a", &gr, &err);
    CHECK_MSG(st == FX_ERR_UNSUPPORTED && strstr(err.msg, "Conv") && strstr(err.msg, "'cw'"),
              "%d %s", st, err.msg);
    CHECK(!gr);
    fx_graph_destroy(g);
}

/* ---- methods and helpers
 * ------------------------------------------------------------------------- */

static void test_methods(void)
{
    /* A = 2 channels on 2x2; dA chosen by hand. */
    float A[8] = {1, 2, 3, 4, 4, 0, 0, 1}, G[8] = {1, 1, 1, 1, -1, 0, 2, 0}, cam[4];
    CHECK(fx_cam_compute(FX_CAM_GRADCAM, A, G, 1, 2, 2, 2, cam) == FX_OK);
    /* weights 1 and 0.25 */
    CHECK_NEAR(cam[0], 1 + 0.25 * 4, 1e-6);
    CHECK_NEAR(cam[3], 4 + 0.25 * 1, 1e-6);
    CHECK(fx_cam_compute(FX_CAM_HIRESCAM, A, G, 1, 2, 2, 2, cam) == FX_OK);
    CHECK_NEAR(cam[0], 1 - 4, 1e-6);
    CHECK(fx_cam_compute(FX_CAM_LAYERCAM, A, G, 1, 2, 2, 2, cam) == FX_OK);
    CHECK_NEAR(cam[0], 1, 1e-6);
    CHECK(fx_cam_compute(FX_CAM_XGRADCAM, A, G, 1, 2, 2, 2, cam) == FX_OK);
    CHECK_NEAR(cam[1], 2 * 1.0 + 0 * (-4.0 / 5.0), 1e-5);
    CHECK(fx_cam_compute(FX_CAM_GRADCAM, A, NULL, 1, 2, 2, 2, cam) == FX_ERR_USAGE);
    /* EigenCAM of a rank-1 field: A[c, j] = u_c * s_j -> the map is s centred. */
    float E[3 * 6], s[6] = {0, 1, 4, 2, 3, 5}, u[3] = {1, 2, 0.5f};
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 6; j++)
            E[c * 6 + j] = u[c] * s[j];
    float em[6];
    CHECK(fx_cam_compute(FX_CAM_EIGENCAM, E, NULL, 1, 3, 2, 3, em) == FX_OK);
    for (int j = 0; j < 6; j++)
        CHECK_NEAR(em[j], (s[j] - 2.5) * sqrt(1 + 4 + 0.25), 1e-4);
    fx_cam_normalize(em, 1, 2, 3);
    CHECK_NEAR(em[5], 1.0, 1e-5);
    CHECK_NEAR(em[0], 0.0, 1e-6);
    fx_cam_method m;
    CHECK(fx_cam_method_parse("gradcam++", &m, NULL) == FX_OK && m == FX_CAM_GRADCAMPP);
    CHECK(fx_cam_method_parse("grad", &m, &err) == FX_ERR_USAGE && strstr(err.msg, "eigencam"));
    for (int i = 0; i < FX_CAM_NUM_METHODS; i++)
        CHECK(fx_cam_method_parse(fx_cam_method_name((fx_cam_method)i), &m, NULL) == FX_OK &&
              m == (fx_cam_method)i);
}

static void test_upsample_locate(void)
{
    /* torch: F.interpolate([[0,1],[2,3]], (4,4), bilinear, align_corners=False) row 0 =
     * [0, 0.25, 0.75, 1], row 1 = [0.5, 0.75, 1.25, 1.5]. */
    float src[4] = {0, 1, 2, 3}, dst[16];
    fx_cam_upsample(src, 1, 2, 2, dst, 4, 4);
    float want[8] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(dst[i], want[i], 1e-6);
    CHECK_NEAR(dst[15], 3.0, 1e-6);
    /* A map with its peak at (x 5, y 2) and a 0.5 region x 4..6, y 1..3. */
    float map[8 * 10] = {0};
    for (int y = 1; y <= 3; y++)
        for (int x = 4; x <= 6; x++)
            map[y * 10 + x] = 0.6f;
    map[2 * 10 + 5] = 1.0f;
    fx_cam_region r;
    CHECK(fx_cam_locate(map, 8, 10, NULL, 0.5, &r) == FX_OK);
    CHECK_NEAR(r.peak_x, 5, 1e-9);
    CHECK_NEAR(r.peak_y, 2, 1e-9);
    CHECK(r.x0 == 4 && r.x1 == 7 && r.y0 == 1 && r.y1 == 4);
    /* Original 40 x 20 shrunk by 4 (x) / 2 (y), pasted at (1, 2): model = orig*s + off. */
    fx_prep_geom geom = {.orig_w = 40,
                         .orig_h = 20,
                         .new_w = 10,
                         .new_h = 10,
                         .off_x = 1,
                         .off_y = 2,
                         .scale_x = 0.25,
                         .scale_y = 0.5};
    CHECK(fx_cam_locate(map, 8, 10, &geom, 0.5, &r) == FX_OK);
    CHECK_NEAR(r.peak_x, (5.5 - 1) / 0.25 - 0.5, 1e-9);
    CHECK_NEAR(r.peak_y, (2.5 - 2) / 0.5 - 0.5, 1e-9);
    CHECK_NEAR(r.x0, 12, 1e-9);
    CHECK_NEAR(r.x1, 24, 1e-9);
    CHECK_NEAR(r.y0, 0, 1e-9); /* (1 - 2) / 0.5 clipped */
    CHECK_NEAR(r.y1, 4, 1e-9);
    CHECK(fx_cam_locate(map, 8, 10, NULL, 0.0, &r) == FX_ERR_USAGE);
}

int main(void)
{
    rng_state = 12345u;
    RUN(test_vjp_conv);
    RUN(test_vjp_gemm_matmul);
    RUN(test_vjp_act);
    RUN(test_vjp_binary);
    RUN(test_vjp_batchnorm);
    RUN(test_vjp_concat_split);
    RUN(test_vjp_transpose_pad);
    RUN(test_vjp_slice);
    RUN(test_vjp_gather);
    RUN(test_vjp_pools);
    RUN(test_vjp_reductions);
    RUN(test_graph_backward);
    RUN(test_graph_backward_slice_gather);
    RUN(test_shortcut_and_errors);
    RUN(test_methods);
    RUN(test_upsample_locate);
    return check_summary();
}
