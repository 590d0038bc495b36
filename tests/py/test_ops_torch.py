#!/usr/bin/python3
"""Compares our operator kernels with PyTorch on fresh random data.

Builds every case of tests/py/gen_ops_ref.py with a new random seed (printed;
set FX_OPS_SEED to repeat a run), runs them through
$FX_BUILD/tools/fx_ops_run (reference kernels, plus the fast conv/gemm) and
checks max|ours - torch| / max|torch| <= tol per case (1e-5 elementwise,
1e-4 reductions/conv/gemm).  ReduceMean is the one exception to the scale:
a float32 mean has an error proportional to mean|x|, not to |mean| (which
can be ~0 by chance on random data, making the plain ratio meaningless), so
its scale is max(max|torch|, mean|x|).  One PASS/FAIL line per case and variant;
exit 1 on any failure, 77 (SKIP) without torch or h5py.
Run: FX_BUILD=build /usr/bin/python3 tests/py/test_ops_torch.py
"""
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import h5py
    import numpy as np
    import torch  # noqa: F401  (the peer; gen_ops_ref uses it)
except ImportError as e:
    print("SKIP test_ops_torch: %s" % e)
    sys.exit(77)

import gen_ops_ref  # noqa: E402

BUILD = os.environ.get("FX_BUILD", "build")
TOOL = os.path.join(BUILD, "tools", "fx_ops_run")


def rel_err(got, want, floor=0.0):
    if got.shape != want.shape:
        return float("inf"), "shape %s, torch %s" % (got.shape, want.shape)
    if want.size == 0:
        return 0.0, ""
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if np.isnan(d).any():
        return float("inf"), "NaN"
    scale = max(np.abs(want).max(), floor)
    e = d.max() / scale if scale > 0 else d.max()
    return e, "max|diff| %.3g at %s" % (d.max(), np.unravel_index(d.argmax(), d.shape))


def main():
    if not os.access(TOOL, os.X_OK):
        print("FAIL test_ops_torch: %s not built (make %s)" % (TOOL, TOOL))
        return 1
    seed = int(os.environ.get("FX_OPS_SEED", random.SystemRandom().randrange(1 << 31)))
    print("seed %d (FX_OPS_SEED=%d to repeat)" % (seed, seed))
    cases = gen_ops_ref.make_cases(seed)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        cin, cout = os.path.join(tmp, "cases.h5"), os.path.join(tmp, "ours.h5")
        gen_ops_ref.write_cases(cin, cases, seed)
        run = subprocess.run([TOOL, cin, cout], capture_output=True, text=True)
        if run.stderr:
            sys.stdout.write(run.stderr)
        with h5py.File(cout, "r") as f:
            for c in cases:
                g = f["cases"].get(c["name"])
                variants = ["ref"] + (["fast"] if c["op"] in ("conv", "gemm") else [])
                for v in variants:
                    label = "%s %s" % (c["name"], v)
                    worst, detail = 0.0, ""
                    for i, want in enumerate(c["outs"]):
                        key = "%s%d" % (v, i)
                        if g is None or key not in g:
                            worst, detail = float("inf"), "no output %s" % key
                            break
                        floor = (np.abs(c["ins"][0]).mean()
                                 if c["op"] == "reduce_mean" else 0.0)
                        e, d = rel_err(g[key][()], want, floor)
                        if e > worst:
                            worst, detail = e, d
                    ok = worst <= c["tol"]
                    print("%s %s%s" % ("PASS" if ok else "FAIL", label,
                                       "" if ok else ": rel err %.3g > %.3g (%s)" %
                                       (worst, c["tol"], detail)))
                    failed += not ok
    if run.returncode != 0 and failed == 0:
        print("FAIL fx_ops_run exit %d" % run.returncode)
        failed += 1
    print("seed %d: %d failed" % (seed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
