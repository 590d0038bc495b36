/* Graph IR, prepare rewrites, memory plan and executor, on small graphs
 * built by hand and compared against the ops.h reference kernels. */
#include <string.h>

#include "check.h"
#include "fxscreen/graph.h"

static fx_error err;

static void fill(float *v, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static void add_const(fx_graph *g, const char *name, fx_shape s, unsigned seed)
{
    float v[4096];
    fill(v, fx_shape_numel(&s), seed);
    CHECK(fx_graph_add_constant(g, name, FX_DT_FLOAT, &s, v, &err) == FX_OK);
}

static void node(fx_graph *g, const char *name, const char *op, const char *const *in, int n_in,
                 const char *out, const fx_attr *a, int n_a)
{
    const char *outs[1] = {out};
    fx_status st = fx_graph_add_node(g, name, op, in, n_in, outs, 1, a, n_a, &err);
    CHECK_MSG(st == FX_OK, "%s", err.msg);
}

static fx_shape shp4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return (fx_shape){4, {a, b, c, d}};
}

static int close_rel(const float *a, const float *b, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= tol * (1.0 + fabs(b[i]))))
            return 0;
    return 1;
}

/* x(2,3,8,8) -> conv 3x3 pad 1 (4 ch) -> BN -> Relu -> MaxPool 2 -> Flatten -> Gemm(5) */
static fx_graph *build_cnn(unsigned rewrites)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_graph_set_rewrites(g, rewrites);
    fx_shape in = shp4(-1, 3, 8, 8);
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    add_const(g, "w", shp4(4, 3, 3, 3), 1);
    add_const(g, "b", (fx_shape){1, {4}}, 2);
    add_const(g, "s", (fx_shape){1, {4}}, 3);
    add_const(g, "beta", (fx_shape){1, {4}}, 4);
    add_const(g, "m", (fx_shape){1, {4}}, 5);
    float var[4] = {0.5f, 1.5f, 2.0f, 0.25f};
    fx_shape v4 = {1, {4}};
    fx_graph_add_constant(g, "v", FX_DT_FLOAT, &v4, var, &err);
    add_const(g, "fw", (fx_shape){2, {5, 64}}, 6);
    add_const(g, "fb", (fx_shape){1, {5}}, 7);
    int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
    fx_attr ca[1] = {{.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4}};
    fx_attr pa[2] = {{.name = "kernel_shape", .type = FX_ATTR_INTS, .ints = k2, .n = 2},
                     {.name = "strides", .type = FX_ATTR_INTS, .ints = k2, .n = 2}};
    fx_attr ga[1] = {{.name = "transB", .type = FX_ATTR_INT, .i = 1}};
    node(g, "conv", "Conv", (const char *[]){"x", "w", "b"}, 3, "c", ca, 1);
    node(g, "bn", "BatchNormalization", (const char *[]){"c", "s", "beta", "m", "v"}, 5, "n", NULL,
         0);
    node(g, "relu", "Relu", (const char *[]){"n"}, 1, "r", NULL, 0);
    node(g, "pool", "MaxPool", (const char *[]){"r"}, 1, "p", pa, 2);
    node(g, "flat", "Flatten", (const char *[]){"p"}, 1, "f", NULL, 0);
    node(g, "fc", "Gemm", (const char *[]){"f", "fw", "fb"}, 3, "y", ga, 1);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 2, 8, 8, &err) == FX_OK, "%s", err.msg);
    return g;
}

/* The same network through the ops.h references directly. */
static void reference_cnn(const float *x, float *y)
{
    float w[108], b[4], s[4], beta[4], m[4], v[4] = {0.5f, 1.5f, 2.0f, 0.25f}, fw[320], fb[5];
    fill(w, 108, 1), fill(b, 4, 2), fill(s, 4, 3), fill(beta, 4, 4), fill(m, 4, 5);
    fill(fw, 320, 6), fill(fb, 5, 7);
    static float c[2 * 4 * 64], p[2 * 4 * 16];
    fx_conv2d_params cp = {2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(fx_op_conv2d_ref(&cp, x, w, b, c) == FX_OK);
    fx_batchnorm_params bp = {2, 4, 64, 1e-5f};
    CHECK(fx_op_batchnorm_ref(&bp, c, s, beta, m, v, c) == FX_OK);
    fx_act_params ap = {2 * 4 * 64, 0, 0};
    CHECK(fx_op_relu_ref(&ap, c, c) == FX_OK);
    fx_pool2d_params pp = {2, 4, 8, 8, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0};
    CHECK(fx_op_maxpool2d_ref(&pp, c, p) == FX_OK);
    fx_gemm_params gp = {2, 5, 64, 0, 1, 1.0f, 1.0f, 1, 5};
    CHECK(fx_op_gemm_ref(&gp, p, fw, fb, y) == FX_OK);
}

static const float *run_plan(const fx_graph *g, fx_plan **p, int ref, const float *x,
                             const char *name, fx_shape *s)
{
    fx_plan_opts o = {.use_reference = ref, .poison = 1};
    CHECK_MSG(fx_plan_create(g, &o, p, &err) == FX_OK, "%s", err.msg);
    if (!*p)
        return NULL;
    CHECK_MSG(fx_plan_run(*p, x, &err) == FX_OK, "%s", err.msg);
    return fx_plan_tensor(*p, name, s);
}

static void test_cnn_matches_reference_and_bn_fold(void)
{
    float x[2 * 3 * 64], want[10];
    fill(x, 384, 42);
    reference_cnn(x, want);
    fx_graph *folded = build_cnn(FX_REWRITE_FOLD_BN | FX_REWRITE_ELIDE_IDENTITY);
    fx_graph *plain = build_cnn(0);
    CHECK(fx_graph_num_nodes(folded) == 5 && fx_graph_num_nodes(plain) == 6);
    fx_plan *pf = NULL, *pr = NULL, *pu = NULL;
    fx_shape s;
    const float *yf = run_plan(folded, &pf, 0, x, "y", &s);
    CHECK(s.rank == 2 && s.d[0] == 2 && s.d[1] == 5);
    const float *yr = run_plan(folded, &pr, 1, x, "y", NULL);
    const float *yu = run_plan(plain, &pu, 1, x, "y", NULL);
    CHECK(yf && yr && yu);
    if (yf && yr && yu) {
        CHECK(close_rel(yu, want, 10, 1e-6)); /* unfolded reference == direct calls */
        CHECK(close_rel(yr, yu, 10, 1e-5));   /* BN folding */
        CHECK(close_rel(yf, yu, 10, 1e-4));   /* fast kernels */
    }
    fx_node_info ni;
    CHECK(fx_graph_node_info(folded, 0, &ni) == FX_OK);
    CHECK(!strcmp(ni.op_type, "Conv") && !strcmp(ni.output, "n"));
    CHECK(ni.params == 108 + 4 && ni.macs == 2LL * 4 * 64 * 27);
    CHECK(fx_graph_node_info(folded, 4, &ni) == FX_OK && ni.macs == 2 * 5 * 64);
    const char *cam = fx_graph_cam_layer(folded);
    CHECK(cam && !strcmp(cam, "p"));
    CHECK(fx_graph_tensor_shape(folded, "p", &s, &err) == FX_OK && s.d[2] == 4);
    CHECK(fx_graph_tensor_shape(folded, "nope", &s, &err) == FX_ERR_USAGE);
    fx_plan_destroy(pf), fx_plan_destroy(pr), fx_plan_destroy(pu);
    fx_graph_destroy(folded), fx_graph_destroy(plain);
}

/* x -> relu a -> conv1x1 -> add(a) -> concat(a) on C -> GlobalAveragePool */
static void test_residual_and_concat(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(1, 2, 5, 5);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    add_const(g, "w", shp4(2, 2, 1, 1), 9);
    fx_attr ax = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
    node(g, "", "Relu", (const char *[]){"x"}, 1, "a", NULL, 0);
    node(g, "c", "Conv", (const char *[]){"a", "w"}, 2, "c", NULL, 0);
    node(g, "add", "Add", (const char *[]){"c", "a"}, 2, "s", NULL, 0);
    node(g, "cat", "Concat", (const char *[]){"s", "a"}, 2, "k", &ax, 1);
    node(g, "gap", "GlobalAveragePool", (const char *[]){"k"}, 1, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 1, 5, 5, &err) == FX_OK, "%s", err.msg);
    float x[50], w[4], a[50], c[50], k[100], want[4];
    fill(x, 50, 11), fill(w, 4, 9);
    fx_act_params ap = {50, 0, 0};
    fx_op_relu_ref(&ap, x, a);
    fx_conv2d_params cp = {1, 2, 5, 5, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
    fx_op_conv2d_ref(&cp, a, w, NULL, c);
    fx_binary_params bp = {shp4(1, 2, 5, 5), shp4(1, 2, 5, 5)};
    fx_op_add_ref(&bp, c, a, c);
    memcpy(k, c, sizeof c), memcpy(k + 50, a, sizeof a);
    fx_global_pool_params gp = {1, 4, 25};
    fx_op_global_avgpool_ref(&gp, k, want);
    fx_plan *p = NULL;
    fx_shape s;
    const float *y = run_plan(g, &p, 0, x, "y", &s);
    CHECK(y && s.rank == 4 && s.d[1] == 4 && close_rel(y, want, 4, 1e-5));
    const char *cam = fx_graph_cam_layer(g);
    CHECK(cam && !strcmp(cam, "k"));
    fx_plan_destroy(p);
    fx_graph_destroy(g);
}

static void test_unsupported_lists_all(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(1, 1, 2, 2);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    node(g, "a", "Foo", (const char *[]){"x"}, 1, "t1", NULL, 0);
    node(g, "b", "Bar", (const char *[]){"t1"}, 1, "t2", NULL, 0);
    node(g, "r", "Relu", (const char *[]){"t2"}, 1, "t3", NULL, 0);
    node(g, "c", "Bar", (const char *[]){"t3"}, 1, "t4", NULL, 0);
    fx_graph_add_output(g, "t4", &err);
    CHECK(fx_graph_op_known("Conv") && !fx_graph_op_known("Foo"));
    CHECK(fx_graph_check_supported(g, &err) == FX_ERR_UNSUPPORTED);
    CHECK_MSG(!strcmp(err.msg, "unsupported ops: Foo (node 'a'), Bar (2 nodes: 'b', 'c')"), "%s",
              err.msg);
    CHECK(fx_graph_prepare(g, 1, 2, 2, &err) == FX_ERR_UNSUPPORTED);
    fx_graph_destroy(g);
}

/* ConvNeXt-like: 3 unsupported types x 25 nodes with 45-character names,
 * far more than one message holds.  Every type is still named with its
 * count, node names fill the rest ("and N more"), and the message is
 * whole (ends with ')', shorter than the buffer). */
static void test_unsupported_long_list(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(1, 1, 2, 2);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    const char *types[3] = {"Pow", "Sqrt", "Erf"};
    char prev[64] = "x";
    for (int i = 0; i < 75; i++) {
        char name[64], out[64];
        snprintf(name, sizeof name, "/features/features.%02d/block/block.%d/%s", i, i % 7,
                 types[i % 3]);
        snprintf(out, sizeof out, "t%d", i);
        node(g, name, types[i % 3], (const char *[]){prev}, 1, out, NULL, 0);
        snprintf(prev, sizeof prev, "%s", out);
    }
    fx_graph_add_output(g, prev, &err);
    CHECK(fx_graph_check_supported(g, &err) == FX_ERR_UNSUPPORTED);
    size_t len = strlen(err.msg);
    CHECK_MSG(len > 0 && len < FX_ERROR_MSG_MAX - 1 && err.msg[len - 1] == ')', "%zu: %s", len,
              err.msg);
    CHECK_MSG(strstr(err.msg, "Pow (25 nodes: '/features/features.00/") &&
                  strstr(err.msg, "Sqrt (25 nodes: ") && strstr(err.msg, "Erf (25 nodes: ") &&
                  strstr(err.msg, " more)"),
              "%s", err.msg);
    fx_graph_destroy(g);
}

/* Tensors the load-time rewrites removed cannot be kept or dumped, and say
 * why: the Conv output folded with its BatchNorm names the tensor the
 * folded conv writes; a constant and an unknown name are refused; the BN
 * output (now the conv's) and the graph input can be kept. */
static void test_readable_after_rewrites(void)
{
    fx_graph *g = build_cnn(FX_REWRITE_FOLD_BN | FX_REWRITE_ELIDE_IDENTITY);
    CHECK(fx_graph_check_readable(g, "c", &err) == FX_ERR_USAGE);
    CHECK_MSG(strstr(err.msg, "folded") && strstr(err.msg, "'n'"), "%s", err.msg);
    CHECK(fx_graph_check_readable(g, "w", &err) == FX_ERR_USAGE && strstr(err.msg, "constant"));
    CHECK(fx_graph_check_readable(g, "nope", &err) == FX_ERR_USAGE && strstr(err.msg, "no tensor"));
    CHECK_MSG(fx_graph_check_readable(g, "n", &err) == FX_OK, "%s", err.msg);
    CHECK_MSG(fx_graph_check_readable(g, "x", &err) == FX_OK, "%s", err.msg);
    const char *bad[1] = {"c"}, *good[2] = {"n", "r"};
    fx_plan *p = NULL;
    fx_plan_opts ob = {.keep = bad, .n_keep = 1};
    CHECK(fx_plan_create(g, &ob, &p, &err) == FX_ERR_USAGE && !p && strstr(err.msg, "folded"));
    fx_plan_opts og = {.keep = good, .n_keep = 2};
    CHECK_MSG(fx_plan_create(g, &og, &p, &err) == FX_OK, "%s", err.msg);
    float x[2 * 3 * 64];
    fill(x, 2 * 3 * 64, 9);
    CHECK(p && fx_plan_run(p, x, &err) == FX_OK && fx_plan_tensor(p, "n", NULL) &&
          fx_plan_tensor(p, "r", NULL));
    fx_plan_destroy(p);
    fx_graph_destroy(g);
    /* without the rewrites the conv output is an ordinary tensor */
    g = build_cnn(0);
    CHECK_MSG(fx_graph_check_readable(g, "c", &err) == FX_OK, "%s", err.msg);
    fx_graph_destroy(g);
}

/* Flatten as exporters write it: Shape -> Gather(0) -> Unsqueeze -> Concat(-1) -> Reshape. */
static void test_shape_chain_folds(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = shp4(-1, 2, 3, 3);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    int64_t zero = 0, minus1 = -1;
    fx_shape scalar = {0, {0}}, one = {1, {1}};
    fx_graph_add_constant(g, "i0", FX_DT_INT64, &scalar, &zero, &err);
    fx_graph_add_constant(g, "ax0", FX_DT_INT64, &one, &zero, &err);
    fx_attr cv = {.name = "value",
                  .type = FX_ATTR_TENSOR,
                  .t_dtype = FX_DT_INT64,
                  .t_shape = one,
                  .t_data = &minus1};
    fx_attr ax = {.name = "axis", .type = FX_ATTR_INT, .i = 0};
    node(g, "shape", "Shape", (const char *[]){"x"}, 1, "sh", NULL, 0);
    node(g, "gather", "Gather", (const char *[]){"sh", "i0"}, 2, "n", NULL, 0);
    node(g, "unsq", "Unsqueeze", (const char *[]){"n", "ax0"}, 2, "n1", NULL, 0);
    node(g, "const", "Constant", NULL, 0, "m1", &cv, 1);
    node(g, "cat", "Concat", (const char *[]){"n1", "m1"}, 2, "newshape", &ax, 1);
    node(g, "reshape", "Reshape", (const char *[]){"x", "newshape"}, 2, "flat", NULL, 0);
    node(g, "sm", "Softmax", (const char *[]){"flat"}, 1, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 3, 3, 3, &err) == FX_OK, "%s", err.msg);
    CHECK(fx_graph_num_nodes(g) == 2); /* Reshape (a view) + Softmax */
    fx_shape s;
    CHECK(fx_graph_tensor_shape(g, "flat", &s, &err) == FX_OK && s.rank == 2 && s.d[0] == 3 &&
          s.d[1] == 18);
    float x[54], want[54];
    fill(x, 54, 5);
    fx_softmax_params sp = {(fx_shape){2, {3, 18}}, -1};
    fx_op_softmax_ref(&sp, x, want);
    fx_plan *p = NULL;
    const float *y = run_plan(g, &p, 0, x, "y", &s);
    CHECK(y && close_rel(y, want, 54, 1e-6));
    fx_plan_destroy(p);
    fx_graph_destroy(g);
}

/* Identity, Dropout and an all-zero Pad in the middle, Identity as the
 * output; a dead branch (Sigmoid) dropped; a Pad that pads stays. */
static void test_identity_and_dead_branch(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(1, 1, 2, 3);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    node(g, "id", "Identity", (const char *[]){"x"}, 1, "i", NULL, 0);
    node(g, "dead", "Sigmoid", (const char *[]){"i"}, 1, "unused", NULL, 0);
    node(g, "drop", "Dropout", (const char *[]){"i"}, 1, "d", NULL, 0);
    int64_t zeros[8] = {0}, one[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    fx_shape s8 = {1, {8}};
    CHECK(fx_graph_add_constant(g, "pz", FX_DT_INT64, &s8, zeros, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "p1", FX_DT_INT64, &s8, one, &err) == FX_OK);
    node(g, "pad0", "Pad", (const char *[]){"d", "pz"}, 2, "dp", NULL, 0);
    node(g, "tanh", "Tanh", (const char *[]){"dp"}, 1, "t", NULL, 0);
    node(g, "out", "Identity", (const char *[]){"t"}, 1, "y", NULL, 0);
    node(g, "pad1", "Pad", (const char *[]){"i", "p1"}, 2, "y2", NULL, 0); /* a real pad stays */
    fx_graph_add_output(g, "y", &err);
    fx_graph_add_output(g, "y2", &err);
    CHECK_MSG(fx_graph_prepare(g, 1, 2, 3, &err) == FX_OK, "%s", err.msg);
    /* Tanh + the output Identity (a view) + the non-zero Pad; the zero Pad is gone */
    CHECK_MSG(fx_graph_num_nodes(g) == 3, "%d nodes", fx_graph_num_nodes(g));
    CHECK(fx_graph_check_readable(g, "dp", &err) == FX_ERR_USAGE);
    CHECK(!strcmp(fx_graph_output_name(g, 0), "y"));
    CHECK(fx_graph_prepare(g, 1, 2, 3, &err) == FX_ERR_USAGE);
    float x[6], want[6];
    fill(x, 6, 8);
    for (int i = 0; i < 6; i++)
        want[i] = tanhf(x[i]);
    fx_plan *p = NULL;
    const float *y = run_plan(g, &p, 0, x, "y", NULL);
    CHECK(y && close_rel(y, want, 6, 1e-6));
    fx_plan_destroy(p);
    fx_graph_destroy(g);
}

/* A chain of 6 activations (with a view in the middle) reuses two buffers. */
static void test_memory_plan_reuses(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(2, 4, 8, 8);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    node(g, "r1", "Relu", (const char *[]){"x"}, 1, "a", NULL, 0);
    node(g, "s1", "Sigmoid", (const char *[]){"a"}, 1, "b", NULL, 0);
    node(g, "fl", "Flatten", (const char *[]){"b"}, 1, "bf", NULL, 0);
    node(g, "t1", "Tanh", (const char *[]){"bf"}, 1, "c", NULL, 0);
    node(g, "r2", "Relu", (const char *[]){"c"}, 1, "d", NULL, 0);
    node(g, "s2", "Sigmoid", (const char *[]){"d"}, 1, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 2, 8, 8, &err) == FX_OK, "%s", err.msg);
    float x[512], want[512];
    fill(x, 512, 3);
    for (int i = 0; i < 512; i++) {
        float v = 1.0f / (1.0f + expf(-fmaxf(x[i], 0.0f)));
        v = fmaxf(tanhf(v), 0.0f);
        want[i] = 1.0f / (1.0f + expf(-v));
    }
    const char *keep[1] = {"b"};
    fx_plan_opts o = {.keep = keep, .n_keep = 1, .poison = 1};
    fx_plan *p = NULL;
    CHECK_MSG(fx_plan_create(g, &o, &p, &err) == FX_OK, "%s", err.msg);
    if (!p)
        return;
    size_t one = 512 * sizeof(float);
    CHECK(fx_plan_naive_bytes(p) == 6 * one);
    CHECK_MSG(fx_plan_peak_bytes(p) == 3 * one, "peak %zu", fx_plan_peak_bytes(p));
    CHECK(fx_plan_run(p, x, &err) == FX_OK);
    CHECK(fx_plan_run(p, x, &err) == FX_OK); /* runs are repeatable */
    fx_shape s;
    const float *y = fx_plan_tensor(p, "y", &s), *b = fx_plan_tensor(p, "b", NULL);
    CHECK(y && b && close_rel(y, want, 512, 1e-6));
    CHECK(b && fabsf(b[7] - 1.0f / (1.0f + expf(-fmaxf(x[7], 0.0f)))) < 1e-6f);
    CHECK(fx_plan_tensor(p, "c", NULL) == NULL); /* not kept */
    fx_plan_destroy(p);
    fx_graph_destroy(g);
}

/* x(2,5,9,7) -> Conv 3x3 -> Add(x) -> Relu -> Conv 1x1 -> Sigmoid, Mul (SiLU):
 * the fast plan fuses Add+Relu and the SiLU pair into the convs (nothing but
 * Conv shows in its profile) and agrees with the unfused reference plan;
 * keeping the Add's output stops the Relu from being fused away. */
static fx_graph *build_fusable(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = shp4(-1, 5, 9, 7);
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    add_const(g, "w1", shp4(5, 5, 3, 3), 11);
    add_const(g, "b1", (fx_shape){1, {5}}, 12);
    add_const(g, "w2", shp4(6, 5, 1, 1), 13);
    int64_t pads[4] = {1, 1, 1, 1};
    fx_attr ca[1] = {{.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4}};
    node(g, "c1", "Conv", (const char *[]){"x", "w1", "b1"}, 3, "a", ca, 1);
    node(g, "add", "Add", (const char *[]){"a", "x"}, 2, "s", NULL, 0);
    node(g, "relu", "Relu", (const char *[]){"s"}, 1, "r", NULL, 0);
    node(g, "c2", "Conv", (const char *[]){"r", "w2"}, 2, "c", NULL, 0);
    node(g, "sig", "Sigmoid", (const char *[]){"c"}, 1, "sg", NULL, 0);
    node(g, "mul", "Mul", (const char *[]){"sg", "c"}, 2, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK_MSG(fx_graph_prepare(g, 2, 9, 7, &err) == FX_OK, "%s", err.msg);
    return g;
}

static int profile_has(const fx_plan *p, const char *label)
{
    const char *l;
    double sec;
    long long calls;
    for (int i = 0; fx_plan_profile(p, i, &l, &sec, &calls) == FX_OK; i++)
        if (!strcmp(l, label))
            return calls > 0 && sec >= 0;
    return 0;
}

static void test_plan_fusion_and_profile(void)
{
    fx_graph *g = build_fusable();
    float x[2 * 5 * 63];
    fill(x, 2 * 5 * 63, 9);
    fx_plan *pr = NULL, *pf = NULL, *pk = NULL;
    const float *yr = run_plan(g, &pr, 1, x, "y", NULL);
    fx_plan_opts o = {.poison = 1, .profile = 1};
    CHECK_MSG(fx_plan_create(g, &o, &pf, &err) == FX_OK, "%s", err.msg);
    CHECK(pf && fx_plan_run(pf, x, &err) == FX_OK && fx_plan_run(pf, x, &err) == FX_OK);
    const float *yf = pf ? fx_plan_tensor(pf, "y", NULL) : NULL;
    CHECK(yr && yf && close_rel(yf, yr, 2 * 6 * 63, 1e-4));
    if (pf) {
        CHECK(profile_has(pf, "Conv 3x3") && profile_has(pf, "Conv 1x1"));
        CHECK(!profile_has(pf, "Add") && !profile_has(pf, "Relu") && !profile_has(pf, "Mul") &&
              !profile_has(pf, "Sigmoid"));
        const char *l;
        double sec;
        long long calls;
        CHECK(fx_plan_profile(pf, 2, &l, &sec, &calls) == FX_ERR_USAGE); /* two entries */
        CHECK(fx_plan_profile(pr, 0, &l, &sec, &calls) == FX_ERR_USAGE); /* not profiling */
    }
    const char *keep[1] = {"s"};
    fx_plan_opts ok = {.keep = keep, .n_keep = 1, .poison = 1, .profile = 1};
    CHECK_MSG(fx_plan_create(g, &ok, &pk, &err) == FX_OK, "%s", err.msg);
    CHECK(pk && fx_plan_run(pk, x, &err) == FX_OK);
    const float *yk = pk ? fx_plan_tensor(pk, "y", NULL) : NULL;
    const float *sk = pk ? fx_plan_tensor(pk, "s", NULL) : NULL;
    CHECK(yk && yr && close_rel(yk, yr, 2 * 6 * 63, 1e-4));
    CHECK(sk && pk && profile_has(pk, "Relu") && !profile_has(pk, "Add"));
    if (sk && pr) { /* s = conv1(x) + x, checked against a reference plan keeping it */
        fx_plan *pks = NULL;
        fx_plan_opts rk = {.keep = keep, .n_keep = 1, .use_reference = 1};
        CHECK(fx_plan_create(g, &rk, &pks, &err) == FX_OK && fx_plan_run(pks, x, &err) == FX_OK);
        const float *sr = pks ? fx_plan_tensor(pks, "s", NULL) : NULL;
        CHECK(sr && close_rel(sk, sr, 2 * 5 * 63, 1e-4));
        fx_plan_destroy(pks);
    }
    fx_plan_destroy(pr);
    fx_plan_destroy(pf);
    fx_plan_destroy(pk);
    fx_graph_destroy(g);
}

/* x(2,5,9,7) -> Conv 1x1 (5 -> 12) -> SiLU pair -> depthwise Conv 3x3
 * stride 2 -> Relu -> y, and GlobalAveragePool(y) -> gp: the fast plan
 * runs the 1x1 conv inside the depthwise one and takes the pool there too
 * (only "Conv dw" in its profile), never stores the 12-channel expansion
 * (less memory than a plan keeping it), and agrees with the reference
 * plan; keeping the expansion stops that fusion, not the pool's. */
static void test_plan_expand_dw_fusion(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = shp4(-1, 5, 9, 7);
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    add_const(g, "we", shp4(12, 5, 1, 1), 21);
    add_const(g, "be", (fx_shape){1, {12}}, 22);
    add_const(g, "wd", shp4(12, 1, 3, 3), 23);
    int64_t pads[4] = {1, 1, 1, 1}, strides[2] = {2, 2};
    fx_attr da[3] = {{.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "strides", .type = FX_ATTR_INTS, .ints = strides, .n = 2},
                     {.name = "group", .type = FX_ATTR_INT, .i = 12}};
    node(g, "ce", "Conv", (const char *[]){"x", "we", "be"}, 3, "c", NULL, 0);
    node(g, "sig", "Sigmoid", (const char *[]){"c"}, 1, "sg", NULL, 0);
    node(g, "mul", "Mul", (const char *[]){"c", "sg"}, 2, "e", NULL, 0);
    node(g, "cd", "Conv", (const char *[]){"e", "wd"}, 2, "d", da, 3);
    node(g, "relu", "Relu", (const char *[]){"d"}, 1, "y", NULL, 0);
    node(g, "gap", "GlobalAveragePool", (const char *[]){"y"}, 1, "gp", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    fx_graph_add_output(g, "gp", &err);
    CHECK_MSG(fx_graph_prepare(g, 2, 9, 7, &err) == FX_OK, "%s", err.msg);
    float x[2 * 5 * 63];
    fill(x, 2 * 5 * 63, 17);
    fx_plan *pr = NULL, *pf = NULL, *pk = NULL;
    const float *yr = run_plan(g, &pr, 1, x, "y", NULL);
    fx_plan_opts o = {.poison = 1, .profile = 1};
    CHECK_MSG(fx_plan_create(g, &o, &pf, &err) == FX_OK, "%s", err.msg);
    CHECK(pf && fx_plan_run(pf, x, &err) == FX_OK && fx_plan_run(pf, x, &err) == FX_OK);
    const float *yf = pf ? fx_plan_tensor(pf, "y", NULL) : NULL;
    CHECK(yr && yf && close_rel(yf, yr, 2 * 12 * 20, 1e-4));
    CHECK(pf && profile_has(pf, "Conv dw") && !profile_has(pf, "Conv 1x1") &&
          !profile_has(pf, "Mul") && !profile_has(pf, "GlobalAveragePool"));
    const float *gr = pr ? fx_plan_tensor(pr, "gp", NULL) : NULL;
    const float *gf = pf ? fx_plan_tensor(pf, "gp", NULL) : NULL;
    CHECK(gr && gf && close_rel(gf, gr, 2 * 12, 1e-4));
    const char *keep[1] = {"e"};
    fx_plan_opts ok = {.keep = keep, .n_keep = 1, .poison = 1, .profile = 1};
    CHECK_MSG(fx_plan_create(g, &ok, &pk, &err) == FX_OK, "%s", err.msg);
    CHECK(pk && fx_plan_run(pk, x, &err) == FX_OK);
    const float *yk = pk ? fx_plan_tensor(pk, "y", NULL) : NULL;
    CHECK(yk && yr && close_rel(yk, yr, 2 * 12 * 20, 1e-4));
    CHECK(pk && profile_has(pk, "Conv 1x1") && fx_plan_tensor(pk, "e", NULL));
    CHECK(pk && !profile_has(pk, "GlobalAveragePool") && gr &&
          close_rel(fx_plan_tensor(pk, "gp", NULL), gr, 2 * 12, 1e-4));
    CHECK(pf && pk && fx_plan_peak_bytes(pf) < fx_plan_peak_bytes(pk));
    fx_plan_destroy(pr);
    fx_plan_destroy(pf);
    fx_plan_destroy(pk);
    fx_graph_destroy(g);
}

static void test_errors_name_the_node(void)
{
    fx_graph *g = fx_graph_create();
    fx_shape in = shp4(1, 3, 4, 4);
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    add_const(g, "w", shp4(2, 5, 3, 3), 1); /* C_in mismatch */
    node(g, "badconv", "Conv", (const char *[]){"x", "w"}, 2, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK(fx_graph_prepare(g, 1, 4, 4, &err) == FX_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "'badconv'") != NULL, "%s", err.msg);
    fx_graph_destroy(g);
    g = fx_graph_create();
    fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err);
    node(g, "r", "Relu", (const char *[]){"missing"}, 1, "y", NULL, 0);
    fx_graph_add_output(g, "y", &err);
    CHECK(fx_graph_prepare(g, 1, 4, 4, &err) == FX_ERR_FORMAT && strstr(err.msg, "missing"));
    fx_graph_destroy(g);
}

int main(void)
{
    RUN(test_cnn_matches_reference_and_bn_fold);
    RUN(test_residual_and_concat);
    RUN(test_unsupported_lists_all);
    RUN(test_unsupported_long_list);
    RUN(test_readable_after_rewrites);
    RUN(test_shape_chain_folds);
    RUN(test_identity_and_dead_branch);
    RUN(test_memory_plan_reuses);
    RUN(test_errors_name_the_node);
    RUN(test_plan_fusion_and_profile);
    RUN(test_plan_expand_dw_fusion);
    return check_summary();
}
