/* The conv GEMM with its epilogue: see fx_conv_gemm in ops_internal.h.
 *
 * Two ways to compute y = act((W x + b) + res):
 *   sgemm   the bias written into y, OpenBLAS's sgemm with beta 1, then
 *           fx_conv_epilogue_apply on y (three passes over y, and
 *           OpenBLAS packs x into its own panels first);
 *   kernel  an AVX-512 register tile (6 rows of W x 64 columns of x, 24
 *           zmm accumulators) that reads x in place (each of its rows is
 *           contiguous, so a tile's k-th row is four vector loads), starts
 *           from the bias, and runs the residual and the activation on the
 *           accumulators before its one store: y is written once.
 * Measured (build/bench/conv --gemm: one thread of this Zen 4 EPYC,
 * cache-warm, the SiLU epilogue included, GFLOP/s sgemm way vs kernel, M x
 * K x N of EfficientNet-B0): expansions 144x24x3136 47 vs 57, 240x40x784
 * 66 vs 71, 672x112x196 84 vs 87; projections 24x144x3136 73 vs 92,
 * 40x240x784 83 vs 100, 192x1152x392 95 vs 102; the closest 1152x192x49
 * (one 7x7 image: 15 of 64 lanes idle) 74 vs 75 and 1280x320x392 92 vs 94.
 * No shape was slower, so the kernel runs wherever the CPU has AVX-512.
 * In the plan (bench/infer, EfficientNet-B0 batch 32, 2 threads) it made
 * the whole network 1.06x faster (A/B of the two builds, 4 rounds).
 * Streaming stores for large outputs (no read for ownership) were tried
 * and were slower: EfficientNet-B0's stem conv at batch 32, 2 threads,
 * 9.4 vs 8.9 ms (three alternating runs each).
 * The kernel sums in k order from the bias, the sgemm path adds the bias
 * first too ((b + acc) either way); the results differ from each other by
 * rounding only. */
#include <cblas.h>
#include <stddef.h>

#include "avx512_internal.h"

int fx_cpu_avx512(void)
{
#ifdef FX_HAVE_AVX512_KERNELS
    return __builtin_cpu_supports("avx512f") != 0;
#else
    return 0;
#endif
}

/* The bias written into y, then sgemm with beta 1: with beta 0 OpenBLAS
 * zeroes C in a pass of its own first (sgemm_beta, 5% of EfficientNet-B0's
 * time) and the epilogue then added the bias in another. */
static void gemm_sgemm(const fx_conv_epilogue *ep, int m, int n, int k, const float *w,
                       const float *x, size_t ldx, const float *b, float *y, const float *res,
                       size_t ldy)
{
    for (int o = 0; b && o < m; o++) {
        float *yr = y + (size_t)o * ldy, bv = b[o];
#pragma omp simd
        for (int j = 0; j < n; j++)
            yr[j] = bv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, w, k, x, (int)ldx,
                b ? 1.0f : 0.0f, y, (int)ldy);
    fx_conv_epilogue_apply(ep, NULL, 0, m, n, y, res, ldy);
}

#ifdef FX_HAVE_AVX512_KERNELS
#define PWK_MR     6
#define PWK_NV     4

/* A panel of the vector dimension with `left` columns (or channels) still
 * to go: *nv vectors (at most PWK_NV), the returned mask on the last. */
static inline __mmask16 pwk_panel(int left, int *nv)
{
    int cols = left < 16 * PWK_NV ? left : 16 * PWK_NV;
    *nv = (cols + 15) / 16;
    return (__mmask16)((1u << (cols - 16 * (*nv - 1))) - 1u);
}

/* One tile: rows m0 .. m0 + MR of y (w points at row m0, y and res too),
 * columns j0 .. j0 + 16 NV (x, y, res point at column j0), the last
 * vector masked by `last`.  MR and NV are constants at every call (the
 * switch in pwk_tile_any), so acc stays in registers. */
FX_AVX512_INLINE void pwk_tile(int MR, int NV, __mmask16 last, int k, const float *w,
                               const float *x, size_t ldx, const float *b, float *y,
                               const float *res, size_t ldy, const fx_conv_epilogue *ep)
{
    __m512 acc[PWK_MR][PWK_NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        __m512 bv = _mm512_set1_ps(b ? b[i] : 0.0f);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[i][v] = bv;
    }
    const float *wr[PWK_MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        wr[i] = w + (size_t)i * k;
    for (int kk = 0; kk < k; kk++) {
        const float *xr = x + (size_t)kk * ldx;
        __m512 xv[PWK_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV - 1; v++)
            xv[v] = _mm512_loadu_ps(xr + 16 * v);
        xv[NV - 1] = _mm512_maskz_loadu_ps(last, xr + 16 * (NV - 1));
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 wv = _mm512_set1_ps(wr[i][kk]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_fmadd_ps(wv, xv[v], acc[i][v]);
        }
    }
    fx_act_kind act = ep ? ep->act : FX_ACT_NONE;
    float lo = ep ? ep->lo : 0.0f, hi = ep ? ep->hi : 0.0f;
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        float *yr = y + (size_t)i * ldy;
        const float *rr = res ? res + (size_t)i * ldy : NULL;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __mmask16 mk = v == NV - 1 ? last : (__mmask16)0xffff;
            __m512 a = acc[i][v];
            if (rr)
                a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk, rr + 16 * v));
            _mm512_mask_storeu_ps(yr + 16 * v, mk, fx_avx512_act(a, act, lo, hi));
        }
    }
}

#define PWK_NV_CASES(MR)                                                                           \
    switch (nv) {                                                                                  \
    case 1: pwk_tile(MR, 1, last, k, w, x, ldx, b, y, res, ldy, ep); break;                        \
    case 2: pwk_tile(MR, 2, last, k, w, x, ldx, b, y, res, ldy, ep); break;                        \
    case 3: pwk_tile(MR, 3, last, k, w, x, ldx, b, y, res, ldy, ep); break;                        \
    default: pwk_tile(MR, 4, last, k, w, x, ldx, b, y, res, ldy, ep); break;                       \
    }

FX_AVX512_TARGET static void pwk_tile_any(int mr, int nv, __mmask16 last, int k, const float *w,
                                          const float *x, size_t ldx, const float *b, float *y,
                                          const float *res, size_t ldy, const fx_conv_epilogue *ep)
{
    switch (mr) {
    case 1: PWK_NV_CASES(1) break;
    case 2: PWK_NV_CASES(2) break;
    case 3: PWK_NV_CASES(3) break;
    case 4: PWK_NV_CASES(4) break;
    case 5: PWK_NV_CASES(5) break;
    default: PWK_NV_CASES(6) break;
    }
}

/* Column tiles outermost: a tile's k x 64 panel of x stays in L1/L2 while
 * every 6-row block of W passes over it (W's rows are read as broadcasts,
 * each used for 64 columns). */
static void gemm_kernel(const fx_conv_epilogue *ep, int m, int n, int k, const float *w,
                        const float *x, size_t ldx, const float *b, float *y, const float *res,
                        size_t ldy)
{
    for (int j0 = 0; j0 < n; j0 += 16 * PWK_NV) {
        int nv;
        __mmask16 last = pwk_panel(n - j0, &nv);
        for (int m0 = 0; m0 < m; m0 += PWK_MR) {
            int mr = m - m0 < PWK_MR ? m - m0 : PWK_MR;
            size_t yo = (size_t)m0 * ldy + (size_t)j0;
            pwk_tile_any(mr, nv, last, k, w + (size_t)m0 * k, x + j0, ldx, b ? b + m0 : NULL,
                         y + yo, res ? res + yo : NULL, ldy, ep);
        }
    }
}
#endif

static int use_kernel(int force)
{
    return force != 0 && fx_cpu_avx512();
}

void fx_conv_gemm_path(const fx_conv_epilogue *ep, int m, int n, int k, const float *w,
                       const float *x, size_t ldx, const float *b, float *y, const float *res,
                       size_t ldy, int force)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef FX_HAVE_AVX512_KERNELS
    if (k > 0 && use_kernel(force)) {
        gemm_kernel(ep, m, n, k, w, x, ldx, b, y, res, ldy);
        return;
    }
#else
    (void)force;
#endif
    gemm_sgemm(ep, m, n, k, w, x, ldx, b, y, res, ldy);
}

void fx_conv_gemm(const fx_conv_epilogue *ep, int m, int n, int k, const float *w, const float *x,
                  size_t ldx, const float *b, float *y, const float *res, size_t ldy)
{
    fx_conv_gemm_path(ep, m, n, k, w, x, ldx, b, y, res, ldy, -1);
}

#ifdef FX_HAVE_AVX512_KERNELS
/* fx_conv_gemm_interleaved's tile: pixels p0 .. p0 + MR (x points at
 * column p0) x channel vectors 0 .. NV (wt points at channel c0, the last
 * vector masked by `last`), stored to dst + (c / 16) * gstride + pos[p] * 16. */
FX_AVX512_INLINE void pwkt_tile(int MR, int NV, __mmask16 last, int k, const float *wt,
                                size_t ldw, const float *x, size_t ldx, const float *b,
                                float *dst, size_t gstride, const int *pos,
                                const fx_conv_epilogue *ep)
{
    __m512 acc[PWK_MR][PWK_NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        __mmask16 mk = v == NV - 1 ? last : (__mmask16)0xffff;
        __m512 bv = b ? _mm512_maskz_loadu_ps(mk, b + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++)
            acc[i][v] = bv;
    }
    for (int kk = 0; kk < k; kk++) {
        const float *wr = wt + (size_t)kk * ldw, *xr = x + (size_t)kk * ldx;
        __m512 wv[PWK_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV - 1; v++)
            wv[v] = _mm512_loadu_ps(wr + 16 * v);
        wv[NV - 1] = _mm512_maskz_loadu_ps(last, wr + 16 * (NV - 1));
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 xv = _mm512_set1_ps(xr[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_fmadd_ps(xv, wv[v], acc[i][v]);
        }
    }
    fx_act_kind act = ep ? ep->act : FX_ACT_NONE;
    float lo = ep ? ep->lo : 0.0f, hi = ep ? ep->hi : 0.0f;
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(dst + (size_t)v * gstride + (size_t)pos[i] * 16,
                                  v == NV - 1 ? last : (__mmask16)0xffff,
                                  fx_avx512_act(acc[i][v], act, lo, hi));
}

#define PWKT_NV_CASES(MR)                                                                          \
    switch (nv) {                                                                                  \
    case 1: pwkt_tile(MR, 1, last, k, wt, ldw, x, ldx, b, dst, gstride, pos, ep); break;           \
    case 2: pwkt_tile(MR, 2, last, k, wt, ldw, x, ldx, b, dst, gstride, pos, ep); break;           \
    case 3: pwkt_tile(MR, 3, last, k, wt, ldw, x, ldx, b, dst, gstride, pos, ep); break;           \
    default: pwkt_tile(MR, 4, last, k, wt, ldw, x, ldx, b, dst, gstride, pos, ep); break;          \
    }

FX_AVX512_TARGET static void pwkt_tile_any(int mr, int nv, __mmask16 last, int k, const float *wt,
                                           size_t ldw, const float *x, size_t ldx, const float *b,
                                           float *dst, size_t gstride, const int *pos,
                                           const fx_conv_epilogue *ep)
{
    switch (mr) {
    case 1: PWKT_NV_CASES(1) break;
    case 2: PWKT_NV_CASES(2) break;
    case 3: PWKT_NV_CASES(3) break;
    case 4: PWKT_NV_CASES(4) break;
    case 5: PWKT_NV_CASES(5) break;
    default: PWKT_NV_CASES(6) break;
    }
}
#endif

int fx_conv_gemm_interleaved(const fx_conv_epilogue *ep, int nc, int hw, int k, const float *wt,
                             size_t ldw, const float *x, size_t ldx, const float *b, float *dst,
                             size_t gstride, const int *pos)
{
#ifdef FX_HAVE_AVX512_KERNELS
    if (nc <= 0 || hw <= 0 || k <= 0 || !fx_cpu_avx512())
        return 0;
    for (int c0 = 0; c0 < nc; c0 += 16 * PWK_NV) { /* a k x 64 panel of W^T, then every pixel */
        int nv;
        __mmask16 last = pwk_panel(nc - c0, &nv);
        for (int p0 = 0; p0 < hw; p0 += PWK_MR) {
            int mr = hw - p0 < PWK_MR ? hw - p0 : PWK_MR;
            pwkt_tile_any(mr, nv, last, k, wt + c0, ldw, x + p0, ldx, b ? b + c0 : NULL,
                          dst + (size_t)(c0 / 16) * gstride, gstride, pos + p0, ep);
        }
    }
    return 1;
#else
    (void)ep, (void)nc, (void)hw, (void)k, (void)wt, (void)ldw, (void)x, (void)ldx, (void)b;
    (void)dst, (void)gstride, (void)pos;
    return 0;
#endif
}
