/* AVX-512 helpers shared by the hand-written kernels (pw_kernel.c,
 * depthwise.c).  Those kernels are compiled for x86-64 with gcc or clang
 * only, in functions with FX_AVX512_TARGET (the rest of the build stays
 * portable x86-64), and run only where fx_cpu_avx512() says the CPU has
 * AVX-512F; elsewhere the callers take their generic paths. */
#ifndef FX_AVX512_INTERNAL_H
#define FX_AVX512_INTERNAL_H

#include "ops_internal.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FX_NO_AVX512)
#define FX_HAVE_AVX512_KERNELS 1
#include <immintrin.h>

#define FX_AVX512_TARGET __attribute__((target("avx512f,fma")))
#define FX_AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) static inline

/* x / (1 + e^-x) on 16 lanes, the same steps as the scalar SiLU of
 * fx_conv_epilogue_apply (fx_ops_exp_reduced, the exponent clamped as an
 * integer as in fx_ops_expf_noclamp, then the division; x > 1e4, +inf
 * included, passes through). */
FX_AVX512_INLINE __m512 fx_avx512_silu(__m512 v)
{
    __m512 x = _mm512_sub_ps(_mm512_setzero_ps(), v);
    __m512 t =
        _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
    t = _mm512_sub_ps(t, _mm512_set1_ps(12582912.0f));
    __m512 r = _mm512_fnmadd_ps(t, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(t, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.3814605566e-3f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3687106285e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1668387525e-2f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666520681e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.9999993451e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(t), _mm512_set1_epi32(127));
    e = _mm512_min_epi32(_mm512_max_epi32(e, _mm512_setzero_si512()), _mm512_set1_epi32(255));
    __m512 ex = _mm512_mul_ps(q, _mm512_castsi512_ps(_mm512_slli_epi32(e, 23)));
    __m512 s = _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), ex));
    __mmask16 big = _mm512_cmp_ps_mask(v, _mm512_set1_ps(1e4f), _CMP_GT_OQ);
    return _mm512_mask_mov_ps(s, big, v);
}

/* The epilogue's activations on 16 lanes, with the scalar code's NaN
 * behaviour (Relu: 0; Clip: NaN stays). */
FX_AVX512_INLINE __m512 fx_avx512_act(__m512 v, fx_act_kind act, float lo, float hi)
{
    switch (act) {
    case FX_ACT_RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case FX_ACT_CLIP:
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_set1_ps(lo), _CMP_LT_OQ),
                               _mm512_set1_ps(lo));
        return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_set1_ps(hi), _CMP_GT_OQ),
                                  _mm512_set1_ps(hi));
    case FX_ACT_SILU: return fx_avx512_silu(v);
    default: return v;
    }
}

/* r[0..15] (16 rows of 16 floats) transposed in place: r[i] lane j <-
 * r[j] lane i.  The usual four rounds of 16 shuffles. */
FX_AVX512_INLINE void fx_avx512_transpose16(__m512 r[16])
{
    __m512 t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 16
    for (int i = 0; i < 8; i++) {
        int a = (i & 3) + (i & 4) * 2; /* 0 1 2 3 8 9 10 11 */
        t[i] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0x88);
        t[i + 8] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0xdd);
    }
}
#endif

#endif
