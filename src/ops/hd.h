/* Per-element arithmetic shared by the CPU references (src/ops/) and the
 * CUDA kernels (the .cu files in kernels/): each function is host+device, so the CPU
 * tests exercise the very arithmetic the GPU runs, and a GPU test only has
 * launch, indexing and memory left to check.  Plain C11 and CUDA C++ both
 * include this header; it needs nothing but <math.h> and <stdint.h>. */
#ifndef FX_OPS_HD_H
#define FX_OPS_HD_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FX_HD static inline __host__ __device__
#else
#define FX_HD static inline
#endif

/* The unary ops, as the graph's activations and the conv epilogue use them. */
typedef enum fx_unary_kind {
    FX_U_NONE = 0,
    FX_U_RELU,     /* max(x, 0) */
    FX_U_LEAKY,    /* x < 0 ? alpha x : x */
    FX_U_CLIP,     /* min(max(x, alpha), beta) */
    FX_U_SIGMOID,  /* 1 / (1 + exp(-x)), in double */
    FX_U_HSIGMOID, /* max(0, min(1, alpha x + beta)) */
    FX_U_HSWISH,   /* x min(max(x + 3, 0), 6) / 6 */
    FX_U_TANH,
    FX_U_SILU, /* x * sigmoid(x): the float sigmoid times x, as Sigmoid + Mul compute it */
    FX_U_ELU,  /* x > 0 ? x : alpha (exp(x) - 1) */
    FX_U_SELU, /* beta (x > 0 ? x : alpha (exp(x) - 1)): beta is ONNX's gamma */
    FX_U_GELU, /* x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, in double */
} fx_unary_kind;

FX_HD float fx_hd_sigmoid(float x)
{
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}

FX_HD float fx_hd_unary(fx_unary_kind k, float x, float alpha, float beta)
{
    switch (k) {
    case FX_U_NONE: return x;
    case FX_U_RELU: return x > 0.0f ? x : 0.0f;
    case FX_U_LEAKY: return x < 0.0f ? alpha * x : x;
    case FX_U_CLIP: {
        float v = x < alpha ? alpha : x;
        return v > beta ? beta : v;
    }
    case FX_U_SIGMOID: return fx_hd_sigmoid(x);
    case FX_U_HSIGMOID: {
        float v = alpha * x + beta;
        return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    case FX_U_HSWISH: {
        float r = x + 3.0f;
        r = r < 0.0f ? 0.0f : r > 6.0f ? 6.0f : r;
        return x * r / 6.0f;
    }
    case FX_U_TANH: return tanhf(x);
    case FX_U_SILU: return x * fx_hd_sigmoid(x);
    case FX_U_ELU: return x > 0.0f ? x : (float)(alpha * expm1((double)x));
    case FX_U_SELU: return beta * (x > 0.0f ? x : (float)(alpha * expm1((double)x)));
    case FX_U_GELU: return (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440)));
    }
    return x;
}

/* 1 for the kinds whose VJP reads the output y (Sigmoid, Tanh), 0 for
 * those that read the input x. */
FX_HD int fx_hd_unary_vjp_reads_y(fx_unary_kind k)
{
    return k == FX_U_SIGMOID || k == FX_U_TANH;
}

/* The VJP of fx_hd_unary: g (dL/dy) times dy/dx, from the input x or, for
 * Sigmoid and Tanh, the output y.  Kinks as PyTorch's autograd: Relu
 * passes where x > 0, Clip (hardtanh) where alpha < x < beta. */
FX_HD float fx_hd_unary_vjp(fx_unary_kind k, float alpha, float beta, float x, float y, float g)
{
    switch (k) {
    case FX_U_NONE: return g;
    case FX_U_RELU: return x > 0.0f ? g : 0.0f;
    case FX_U_LEAKY: return x > 0.0f ? g : g * alpha;
    case FX_U_CLIP: return x > alpha && x < beta ? g : 0.0f;
    case FX_U_SIGMOID: return g * y * (1.0f - y);
    case FX_U_HSIGMOID: {
        float v = alpha * x + beta;
        return v > 0.0f && v < 1.0f ? g * alpha : 0.0f;
    }
    case FX_U_HSWISH: return x < -3.0f ? 0.0f : x <= 3.0f ? g * (x / 3.0f + 0.5f) : g;
    case FX_U_TANH: return g * (1.0f - y * y);
    case FX_U_SILU: {
        float s = fx_hd_sigmoid(x);
        return g * (s + x * s * (1.0f - s));
    }
    case FX_U_ELU: return x > 0.0f ? g : g * (float)(alpha * exp((double)x));
    case FX_U_SELU: return g * beta * (x > 0.0f ? 1.0f : (float)(alpha * exp((double)x)));
    case FX_U_GELU: { /* Phi(x) + x phi(x) */
        double cdf = 0.5 * (1.0 + erf(x * 0.70710678118654752440));
        double pdf = 0.39894228040143267794 * exp(-0.5 * (double)x * x);
        return (float)(g * (cdf + x * pdf));
    }
    }
    return g;
}

/* Binary ops: 'A'dd, 'S'ub, 'M'ul, 'D'iv, 'P'Relu (a < 0 ? a b : a). */
FX_HD float fx_hd_binary(char op, float a, float b)
{
    switch (op) {
    case 'A': return a + b;
    case 'S': return a - b;
    case 'M': return a * b;
    case 'D': return a / b;
    case 'P': return a < 0.0f ? a * b : a;
    }
    return 0.0f;
}

/* The VJP of fx_hd_binary ('A', 'S', 'M', 'D') w.r.t. a (wrt_b = 0) or b,
 * for the output gradient g. */
FX_HD float fx_hd_binary_vjp(char op, int wrt_b, float a, float b, float g)
{
    switch (op) {
    case 'A': return g;
    case 'S': return wrt_b ? -g : g;
    case 'M': return wrt_b ? g * a : g * b;
    default: return wrt_b ? -g * a / (b * b) : g / b;
    }
}

/* A fused conv / BatchNorm epilogue: act(v + bias + residual). */
FX_HD float fx_hd_epilogue(float v, float bias, float res, fx_unary_kind act, float lo, float hi)
{
    return fx_hd_unary(act, v + bias + res, lo, hi);
}

/* Inference BatchNorm as one multiply-add per element: y = a x + b with
 * a = scale / sqrt(var + eps), b = bias - a mean, computed in double and
 * rounded once (as the conv prologue and the GPU kernel use it). */
FX_HD void fx_hd_bn_coeffs(float scale, float bias, float mean, float var, float eps, float *a,
                           float *b)
{
    double s = scale / sqrt((double)var + eps);
    *a = (float)s;
    *b = (float)(bias - s * mean);
}

/* MaxPool's backward scan: 1 when window element v (in scan order) takes
 * over as the routed maximum from m (have: one was already taken).  The
 * first maximum wins ties; the first NaN wins and stays, as the forward
 * propagates it. */
FX_HD int fx_hd_max_takes(int have, float m, float v)
{
    return (!have || v > m || isnan(v)) && !(have && isnan(m));
}

/* Row-major offset of flat output index e over dims[0..rank) into an
 * operand with the given strides (0 on a broadcast dim, negative on a
 * reversed slice). */
FX_HD int64_t fx_hd_offset(int64_t e, int rank, const int64_t *dims, const int64_t *strides)
{
    int64_t off = 0;
    for (int i = rank - 1; i >= 0; i--) {
        int64_t d = dims[i] > 0 ? dims[i] : 1;
        off += (e % d) * strides[i];
        e /= d;
    }
    return off;
}

/* Pad: the input index that output position pos reads on an axis of input
 * length d with `begin` pads in front (negative: crop); -1 = the constant. */
FX_HD int64_t fx_hd_pad_src(int mode, int64_t pos, int64_t begin, int64_t d)
{
    int64_t i = pos - begin;
    if (i >= 0 && i < d)
        return i;
    if (mode == 0) /* FX_PADMODE_CONSTANT */
        return -1;
    if (mode == 2) /* FX_PADMODE_EDGE */
        return i < 0 ? 0 : d - 1;
    /* reflect about the first / last element (validated: |overhang| < d) */
    return i < 0 ? -i : 2 * (d - 1) - i;
}

/* AveragePool, one axis: the window [start, start + k) clipped to the input
 * into [*lo, *hi); returns the divisor length used with count_include_pad
 * (clipped to the padded extent only). */
FX_HD int fx_hd_avg_axis(int start, int k, int in, int pad_end, int *lo, int *hi)
{
    int end = start + k < in + pad_end ? start + k : in + pad_end;
    *lo = start < 0 ? 0 : start;
    *hi = end > in ? in : end;
    return end - start;
}

#endif
