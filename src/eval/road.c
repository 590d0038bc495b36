/* ROAD's pixel removal and noisy linear imputation (include/fxscreen/faith.h).
 *
 * The system: for each removed pixel i with in-image neighbours N(i) of
 * weights w (1/6 across, 1/12 diagonal),
 *     (sum_{j in N(i)} w_j) x_i - sum_{j in N(i) removed} w_j x_j
 *         = sum_{j in N(i) kept} w_j v_j        (one right-hand side per channel)
 * which is symmetric and, as long as some pixel is kept, positive definite
 * (every removed region borders a kept pixel): CHOLMOD factors it once for
 * all channels.  Only the upper triangle is given (stype 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "fxscreen/eval.h"
#include "fxscreen/faith.h"
#include "fxscreen/prep.h"

void fx_road_keep(const float *map, size_t n, double p, int most_first, uint8_t *keep)
{
    /* The threshold is NumPy's linear percentile of the float values, the
     * preprocessing's own (fx_prep_percentile, exact on float planes). */
    float *v = malloc(n * sizeof *v);
    fx_prep_scratch *s = fx_prep_scratch_create();
    double t = NAN;
    if (v && s && n > 0 && n <= INT32_MAX) {
        for (size_t i = 0; i < n; i++)
            v[i] = most_first ? map[i] : 1.0f - map[i]; /* float, as torch's 1 - mask */
        fx_image img = {.info = {.width = (int)n, .height = 1, .channels = 1, .type = FX_PIX_F32},
                        .pixels = v};
        t = fx_prep_percentile(&img, p, s);
    }
    for (size_t i = 0; i < n; i++)
        keep[i] = isnan(t) ? 1 : (double)v[i] < t; /* out of memory: nothing removed */
    free(v);
    fx_prep_scratch_destroy(s);
}

#ifndef FX_NO_ROAD
#include <suitesparse/cholmod.h>

static const struct {
    int dy, dx;
    double w;
} nbr[8] = {{1, 1, 1.0 / 12}, {0, 1, 1.0 / 6},    {-1, 1, 1.0 / 12}, {1, -1, 1.0 / 12},
            {0, -1, 1.0 / 6}, {-1, -1, 1.0 / 12}, {1, 0, 1.0 / 6},   {-1, 0, 1.0 / 6}};

/* Standard normal draws k, k + 1 of seed's stream (fx_eval_rand), Box-Muller;
 * *k advanced by two. */
static double normal(uint64_t seed, uint64_t *k)
{
    double u1 =
        ((double)(fx_eval_rand(seed, (*k)++) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double u2 = (double)(fx_eval_rand(seed, (*k)++) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fx_status fx_road_impute(const float *img, int C, int H, int W, const uint8_t *keep, double noise,
                         uint64_t seed, float *out, fx_error *err)
{
    const size_t hw = (size_t)H * (size_t)W;
    if (out != img)
        memcpy(out, img, (size_t)C * hw * sizeof *out);
    int *vid = malloc(hw * sizeof *vid);
    if (!vid)
        return fx_error_set(err, FX_ERR_NOMEM, "road: out of memory");
    size_t N = 0;
    for (size_t i = 0; i < hw; i++)
        vid[i] = keep[i] ? -1 : (int)N++;
    if (N == 0) {
        free(vid);
        return FX_OK;
    }
    if (N == hw) {
        free(vid);
        return fx_error_set(err, FX_ERR_FORMAT,
                            "road: every pixel removed, nothing to impute from");
    }
    cholmod_common cc;
    cholmod_start(&cc);
    cc.print = 0;
    cholmod_triplet *T = cholmod_allocate_triplet(N, N, 5 * N, 1, CHOLMOD_REAL, &cc);
    cholmod_dense *B = cholmod_zeros(N, (size_t)C, CHOLMOD_REAL, &cc);
    cholmod_sparse *A = NULL;
    cholmod_factor *L = NULL;
    cholmod_dense *X = NULL;
    fx_status st = T && B ? FX_OK : fx_error_set(err, FX_ERR_NOMEM, "road: out of memory");
    if (st == FX_OK) {
        int *ti = T->i, *tj = T->j;
        double *tx = T->x, *b = B->x;
        size_t k = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t p = (size_t)y * W + x;
                int i = vid[p];
                if (i < 0)
                    continue;
                double diag = 0;
                for (int q = 0; q < 8; q++) {
                    int yy = y + nbr[q].dy, xx = x + nbr[q].dx;
                    if (yy < 0 || xx < 0 || yy >= H || xx >= W)
                        continue;
                    size_t pn = (size_t)yy * W + xx;
                    diag += nbr[q].w;
                    if (vid[pn] < 0) {
                        for (int c = 0; c < C; c++)
                            b[(size_t)c * N + (size_t)i] += nbr[q].w * img[(size_t)c * hw + pn];
                    } else if (vid[pn] > i) { /* upper triangle */
                        ti[k] = i, tj[k] = vid[pn], tx[k] = -nbr[q].w, k++;
                    }
                }
                ti[k] = i, tj[k] = i, tx[k] = diag, k++;
            }
        T->nnz = k;
        A = cholmod_triplet_to_sparse(T, k, &cc);
        L = A ? cholmod_analyze(A, &cc) : NULL;
        if (!A || !L || !cholmod_factorize(A, L, &cc) || cc.status != CHOLMOD_OK)
            st = fx_error_set(err, FX_ERR_FORMAT,
                              "road: the imputation system did not factor "
                              "(CHOLMOD status %d)",
                              cc.status);
        if (st == FX_OK && !(X = cholmod_solve(CHOLMOD_A, L, B, &cc)))
            st = fx_error_set(err, FX_ERR_NOMEM, "road: CHOLMOD solve failed");
    }
    if (st == FX_OK) {
        const double *x = X->x;
        uint64_t k = 0;
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < hw; p++) {
                int i = vid[p];
                if (i < 0)
                    continue;
                double v = x[(size_t)c * N + (size_t)i];
                if (noise > 0)
                    v += noise * normal(seed, &k);
                out[(size_t)c * hw + p] = (float)v;
            }
    }
    cholmod_free_dense(&X, &cc);
    cholmod_free_factor(&L, &cc);
    cholmod_free_sparse(&A, &cc);
    cholmod_free_dense(&B, &cc);
    cholmod_free_triplet(&T, &cc);
    cholmod_finish(&cc);
    free(vid);
    return st;
}
#else
fx_status fx_road_impute(const float *img, int C, int H, int W, const uint8_t *keep, double noise,
                         uint64_t seed, float *out, fx_error *err)
{
    (void)img, (void)C, (void)H, (void)W, (void)keep, (void)noise, (void)seed, (void)out;
    return fx_error_set(err, FX_ERR_UNSUPPORTED,
                        "road: built without CHOLMOD (a static build): eval --faithfulness needs "
                        "the default build");
}
#endif
