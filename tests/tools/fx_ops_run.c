/* fx_ops_run IN.h5 OUT.h5
 * Runs every case of an operator case file (layout in tests/ops_case.h,
 * written by tests/py/gen_ops_ref.py) through our kernels and writes
 * OUT.h5:/cases/<name>/ref<i> (reference kernels) and fast<i> (conv and
 * gemm fast paths).  A case whose kernel fails gets no datasets and a line
 * on stderr; tests/py/test_ops_torch.py then reports it as FAIL.
 * Exits 0 when every case ran, 1 otherwise, 2 on usage/IO errors. */
#include <stdio.h>

#include "ops_case.h"

/* Run c (ref, then fast if any) and write the outputs into group og. */
static int run_and_write(const fx_case *c, hid_t og, const char *name)
{
    const fx_case_op *op = fx_case_find_op(c->op);
    int bad = 0;
    for (int fast = 0; fast <= (op && op->has_fast); fast++) {
        fx_case_tensor out[FX_CASE_MAX_IO];
        int n_out = 0;
        fx_status st = fx_case_run(c, fast, out, &n_out);
        if (st != FX_OK) {
            fprintf(stderr, "%s (%s): %s\n", name, c->op, fx_status_str(st));
            bad = 1;
        }
        for (int i = 0; i < n_out; i++) {
            char ds[32];
            snprintf(ds, sizeof ds, "%s%d", fast ? "fast" : "ref", i);
            if (fx_case_write(og, ds, &out[i]) != 0)
                bad = 1;
        }
        fx_case_free_tensors(out, n_out);
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.h5 OUT.h5\n", argv[0]);
        return 2;
    }
    hid_t in = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t out = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t cases = in >= 0 ? H5Gopen2(in, "cases", H5P_DEFAULT) : -1;
    hid_t ocases = out >= 0 ? H5Gcreate2(out, "cases", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    H5G_info_t info;
    if (cases < 0 || ocases < 0 || H5Gget_info(cases, &info) < 0) {
        fprintf(stderr, "cannot open %s:/cases or create %s\n", argv[1], argv[2]);
        return 2;
    }
    int bad = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[256];
        H5Lget_name_by_idx(cases, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                           H5P_DEFAULT);
        hid_t g = H5Gopen2(cases, name, H5P_DEFAULT);
        hid_t og = H5Gcreate2(ocases, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        fx_case c;
        memset(&c, 0, sizeof c);
        if (g < 0 || og < 0 || fx_case_load(g, &c) != 0) {
            fprintf(stderr, "%s: cannot load case\n", name);
            bad = 1;
        } else {
            bad |= run_and_write(&c, og, name);
        }
        fx_case_unload(&c);
        if (og >= 0)
            H5Gclose(og);
        if (g >= 0)
            H5Gclose(g);
    }
    H5Gclose(ocases);
    H5Gclose(cases);
    H5Fclose(out);
    H5Fclose(in);
    return bad;
}
