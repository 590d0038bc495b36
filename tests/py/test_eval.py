#!/usr/bin/env python3
"""`fxscreen eval` against scikit-learn and NumPy on the same numbers.

Writes a synthetic results directory (summary.csv as `fxscreen run` writes it,
results.h5 with a root `threshold`) and a labels.csv as `fxscreen synth`
writes it: probabilities correlated with the labels and rounded so there are
many ties, error rows, unmatched rows and labels, a duplicate row, an
ambiguous basename, paths spelled several ways (absolute, relative, with ./
and ../, quoted with a comma, only the basename resolving), and boxes with
peaks placed inside, in the 10% margin, just outside it, and missing.  Then
compares eval.json with sklearn.metrics (roc_auc_score, confusion_matrix,
cohen_kappa_score) and NumPy (DeLong by the O(mn) definition, Wilson
intervals, the pointing game) to 1e-9.

Env: FX_BUILD = build directory (default "build").  One PASS/FAIL line per
check; exits 1 on failure, 77 when the binary, h5py or scikit-learn is missing
(scikit-learn: Debian's python3-sklearn, `make deps`)."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("FX_BUILD", "build")
BIN = os.path.abspath(os.path.join(BUILD, "fxscreen"))
TOL = 1e-9
Z = 1.959963984540054
failures = 0


def report(name, ok, why=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    sys.stdout.flush()
    if not ok:
        failures += 1


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL


def check_num(name, got, want):
    report(name, close(got, want), "got %r, want %r" % (got, want))


def wilson(x, n):
    if n == 0:
        return None, None, None
    p = x / n
    d = 1 + Z * Z / n
    c = (p + Z * Z / (2 * n)) / d
    h = Z / d * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return p, max(0.0, c - h), min(1.0, c + h)


def delong(np, y, p):
    x = p[y == 1][:, None]
    v = p[y == 0][None, :]
    psi = (x > v) + 0.5 * (x == v)
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    m, n = len(v10), len(v01)
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    auc = psi.mean()
    return auc, se, max(0.0, auc - Z * se), min(1.0, auc + Z * se)


def csv_field(s):
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def run_eval(cwd, *args):
    return subprocess.run([BIN, "eval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def build_case(np, tmp, rng):
    """Writes tmp/data/* (labels + empty image files) and tmp/res/summary.csv.
    Returns the expected join: list of (prob, label, box or None, peak or None),
    plus expected counts."""
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "sub"))
    os.makedirs(os.path.join(data, "a"))
    os.makedirs(os.path.join(data, "b"))
    os.makedirs(os.path.join(tmp, "res"))
    n = 400
    labels = []  # (relpath, label, box)
    for i in range(n):
        rel = ("sub/" if i % 7 == 0 else "") + "img_%04d.png" % i
        if i == 5:
            rel = "img,comma_0005.png"
        y = int(rng.random() < 0.4)
        box = None
        if y:
            x0, y0 = int(rng.integers(0, 400)), int(rng.integers(0, 400))
            box = (x0, y0, x0 + int(rng.integers(5, 100)), y0 + int(rng.integers(5, 100)))
            if i % 11 == 0:
                box = None  # a fractured image without a box: not in the pointing game
        labels.append((rel, y, box))
    labels.append(("a/dup.png", 1, (0, 0, 10, 10)))
    labels.append(("b/dup.png", 0, None))
    for rel, _, _ in labels:
        open(os.path.join(data, rel), "w").close()
    with open(os.path.join(data, "labels.csv"), "w") as f:
        f.write("path,label,cx,cy,x0,y0,x1,y1\n")
        for rel, y, box in labels:
            if box:
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                f.write("%s,%d,%g,%g,%d,%d,%d,%d\n" % (csv_field(rel), y, cx, cy, *box))
            else:
                f.write("%s,%d,,,,,,\n" % (csv_field(rel), y))

    rows = []  # summary.csv rows (list of fields)
    expect = []
    counts = dict(summary_rows=0, error_rows=0, unmatched_rows=0, duplicate_rows=0,
                  matched_by_basename=0, unmatched_labels=0)
    for i, (rel, y, box) in enumerate(labels[:n]):
        if i % 50 == 3:
            counts["unmatched_labels"] += 1  # never given to run
            continue
        # spell the path several ways; cwd of eval is tmp
        k = i % 6
        if k == 0:
            path = os.path.join(data, rel)
        elif k == 1:
            path = os.path.join("data", rel)
        elif k == 2:
            path = os.path.join("data", ".", rel)
        elif k == 3:
            path = os.path.join("data", "sub", "..", rel)
        elif k == 4:
            path = os.path.join("/nonexistent/moved", os.path.basename(rel))
            counts["matched_by_basename"] += 1
        else:
            path = "./" + os.path.join("data", rel)
        if i % 23 == 4:  # an error row; its basename match is counted as an error
            rows.append([path, "error", "", "", "", "", "", "", "", "", "decode failed: bad CRC, \"IDAT\""])
            if k == 4:
                counts["matched_by_basename"] -= 1
            counts["error_rows"] += 1
            continue
        # probability: correlated with the label, rounded to 0.05 for ties
        raw = 1 / (1 + math.exp(-(1.6 * (2 * y - 1) + rng.normal(0, 1.2))))
        p = round(round(raw / 0.05) * 0.05, 2)
        p = min(max(p, 0.0), 1.0)
        peak = None
        if box:
            w, h = box[2] - box[0], box[3] - box[1]
            kind = i % 5
            if kind == 0:
                peak = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)          # inside
            elif kind == 1:
                peak = (box[0] - 0.05 * w, box[1] - 0.1 * h + 0.25)            # in the margin
            elif kind == 2:
                peak = (box[2] + 0.1 * w + 0.5, box[1] + 1)                    # just outside in x
            elif kind == 3:
                peak = (box[0] + 1, box[3] + 0.1 * h)                          # on the open edge: miss
            # kind 4: no peak
        elif rng.random() < 0.5:
            peak = (float(rng.integers(0, 500)), float(rng.integers(0, 500)))
        rows.append([path, "ok", repr(p), "", "%r" % peak[0] if peak else "",
                     "%r" % peak[1] if peak else "", "", "", "", "", ""])
        expect.append((p, y, box, peak, len(rows) - 1))
    # a duplicate of an evaluated row, unmatched rows, an ambiguous basename
    rows.append([os.path.join(data, labels[0][0]), "ok", "0.99", "", "", "", "", "", "", "", ""])
    counts["duplicate_rows"] += 1
    for j in range(3):
        rows.append(["/nowhere/stranger_%d.png" % j, "ok", "0.5", "", "", "", "", "", "", "", ""])
    rows.append(["/nowhere/dup.png", "ok", "0.7", "", "", "", "", "", "", "", ""])
    counts["unmatched_rows"] += 4
    counts["unmatched_labels"] += 2  # a/dup.png and b/dup.png: never matched
    counts["summary_rows"] = len(rows)
    counts["label_rows"] = len(labels)
    return rows, expect, counts


def write_summary(tmp, rows, thr):
    with open(os.path.join(tmp, "res", "summary.csv"), "w") as f:
        f.write("path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error\n")
        for r in rows:
            r = list(r)
            if r[1] == "ok":
                r[3] = "1" if float(r[2]) >= thr else "0"
            f.write(",".join(csv_field(x) for x in r) + "\n")


def expected_metrics(np, skm, expect, thr):
    p = np.array([e[0] for e in expect])
    y = np.array([e[1] for e in expect])
    pred = (p >= thr).astype(int)
    cm = skm.confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    out = dict(auc=float(skm.roc_auc_score(y, p)), kappa=float(skm.cohen_kappa_score(y, pred)),
               cm=cm.tolist(), tp=tp, fp=fp, tn=tn, fn=fn, npos=int(y.sum()),
               nneg=int((1 - y).sum()))
    out["delong"] = delong(np, y, p)
    out["sensitivity"] = (tp, tp + fn)
    out["specificity"] = (tn, tn + fp)
    out["ppv"] = (tp, tp + fp)
    out["npv"] = (tn, tn + fn)
    out["accuracy"] = (tp + tn, len(y))
    hits = n = nopeak = withbox = 0
    for _, lab, box, peak, _ in expect:
        if lab != 1 or not box:
            continue
        withbox += 1
        if peak is None:
            nopeak += 1
            continue
        n += 1
        gx, gy = 0.1 * (box[2] - box[0]), 0.1 * (box[3] - box[1])
        hits += (box[0] - gx <= peak[0] < box[2] + gx) and (box[1] - gy <= peak[1] < box[3] + gy)
    out["pointing"] = (hits, n, nopeak, withbox)
    return out


def compare(tag, js, want, counts, thr, source):
    check_num(tag + " threshold", js["threshold"], thr)
    report(tag + " threshold_source", js["threshold_source"] == source,
           "%r != %r" % (js["threshold_source"], source))
    c = js["counts"]
    bad = {k: (c.get(k), v) for k, v in counts.items() if c.get(k) != v}
    report(tag + " join counts", not bad, "got/want %r" % bad)
    report(tag + " evaluated", c["evaluated"] == want["npos"] + want["nneg"] and
           c["positives"] == want["npos"] and c["negatives"] == want["nneg"],
           "%r vs %d+%d" % (c, want["npos"], want["nneg"]))
    check_num(tag + " auroc vs sklearn roc_auc_score", js["auroc"]["value"], want["auc"])
    auc, se, lo, hi = want["delong"]
    check_num(tag + " auroc vs O(mn) definition", js["auroc"]["value"], auc)
    check_num(tag + " auroc DeLong se", js["auroc"]["se"], se)
    report(tag + " auroc DeLong ci95", close(js["auroc"]["ci95"][0], lo) and
           close(js["auroc"]["ci95"][1], hi), "%r vs %r" % (js["auroc"]["ci95"], (lo, hi)))
    m = js["confusion_matrix"]
    report(tag + " confusion matrix vs sklearn", m["matrix"] == want["cm"] and
           (m["tp"], m["fp"], m["tn"], m["fn"]) == (want["tp"], want["fp"], want["tn"], want["fn"]),
           "%r vs %r" % (m, want["cm"]))
    check_num(tag + " kappa vs sklearn cohen_kappa_score", js["kappa"], want["kappa"])
    for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        x, n = want[k]
        v, lo, hi = wilson(x, n)
        got = js[k]
        ok = got["x"] == x and got["n"] == n and close(got["value"], v) and \
            close(got["ci95"][0], lo) and close(got["ci95"][1], hi)
        report(tag + " %s + Wilson ci95" % k, ok, "%r vs %r" % (got, (x, n, v, lo, hi)))
    hits, n, nopeak, withbox = want["pointing"]
    pg = js["pointing_game"]
    v, lo, hi = wilson(hits, n)
    ok = (pg["hits"], pg["n"], pg["without_peak"], pg["fractured_with_box"]) == \
        (hits, n, nopeak, withbox) and close(pg["rate"], v) and close(pg["ci95"][0], lo) and \
        close(pg["ci95"][1], hi)
    report(tag + " pointing game", ok, "%r vs %r" % (pg, (hits, n, nopeak, withbox, v)))


def main():
    if not os.access(BIN, os.X_OK):
        print("SKIP test_eval: %s not built yet" % BIN)
        return 77
    try:
        import numpy as np
        import h5py
        import sklearn
        import sklearn.metrics as skm
    except ImportError as e:
        print("SKIP test_eval: %s (run make deps: python3-sklearn, python3-h5py)" % e)
        return 77
    print("# scikit-learn %s" % sklearn.__version__)
    rng = np.random.default_rng(20240611)
    tmp = tempfile.mkdtemp(prefix="fx_py_eval_")
    try:
        rows, expect, counts = build_case(np, tmp, rng)
        res = os.path.join(tmp, "res")
        labels = os.path.join("data", "labels.csv")
        n_ties = len(expect) - len({e[0] for e in expect})
        report("case has ties and both classes", n_ties > 50 and 0 < sum(e[1] for e in expect) <
               len(expect), "ties %d" % n_ties)

        # 1. threshold from results.h5 (0.35), predictions consistent with it
        thr = 0.35
        with h5py.File(os.path.join(res, "results.h5"), "w") as h:
            h.attrs["threshold"] = np.float64(thr)
        write_summary(tmp, rows, thr)
        r = run_eval(tmp, "--results", "res", "--labels", labels)
        report("eval exits 0", r.returncode == 0, "rc %d: %s" % (r.returncode, r.stderr))
        report("table printed", "AUROC" in r.stdout and "pointing game" in r.stdout and
               "confusion matrix" in r.stdout, r.stdout[:400])
        js = json.load(open(os.path.join(res, "eval.json")))
        want = expected_metrics(np, skm, expect, thr)
        compare("h5", js, want, dict(counts, prediction_mismatch=0), thr, "results.h5")
        report("json provenance", js["fxscreen_version"] and js["created"].endswith("Z") and
               js["inputs"]["results_h5"] == os.path.realpath(os.path.join(res, "results.h5")) and
               js["inputs"]["labels_csv"] == os.path.realpath(os.path.join(tmp, labels)) and
               js["inputs"]["summary_csv"] == os.path.realpath(os.path.join(res, "summary.csv")),
               repr(js["inputs"]))

        # 2. --threshold overrides results.h5; --json elsewhere; the prediction
        #    column (written for 0.35) now disagrees where 0.35 <= p < 0.6
        out = os.path.join(tmp, "other.json")
        r = run_eval(tmp, "--results", "res", "--labels", labels, "--threshold", "0.6",
                     "--json", out)
        report("eval --threshold --json exits 0", r.returncode == 0, r.stderr)
        js = json.load(open(out))
        want = expected_metrics(np, skm, expect, 0.6)
        mism = sum(1 for e in expect if 0.35 <= e[0] < 0.6)
        compare("flag", js, want, dict(counts, prediction_mismatch=mism), 0.6, "--threshold")

        # 3. no results.h5: default 0.5
        os.unlink(os.path.join(res, "results.h5"))
        write_summary(tmp, rows, 0.5)
        r = run_eval(tmp, "--results", res, "--labels", os.path.join(tmp, labels))
        js = json.load(open(os.path.join(res, "eval.json")))
        want = expected_metrics(np, skm, expect, 0.5)
        compare("default", js, want, dict(counts, prediction_mismatch=0), 0.5, "default")
        report("no results.h5 -> inputs.results_h5 null", js["inputs"]["results_h5"] is None,
               repr(js["inputs"]))

        # 4. one class only: AUROC, sensitivity, PPV, kappa are null, not NaN
        only = [r_ for r_, e in zip([rows[e[4]] for e in expect], expect) if e[1] == 0]
        write_summary(tmp, only, 0.99)
        r = run_eval(tmp, "--results", "res", "--labels", labels, "--threshold", "0.99")
        js = json.load(open(os.path.join(res, "eval.json")))
        ok = r.returncode == 0 and js["auroc"]["value"] is None and \
            js["auroc"]["ci95"] == [None, None] and js["sensitivity"]["value"] is None and \
            js["kappa"] is None and js["specificity"]["value"] is not None and \
            js["pointing_game"]["rate"] is None
        y_only = np.zeros(len(only), dtype=int)
        pred_only = (np.array([float(x[2]) for x in only]) >= 0.99).astype(int)
        with np.errstate(all="ignore"):
            import warnings
            warnings.simplefilter("ignore")
            sk_kappa = skm.cohen_kappa_score(y_only, pred_only)
        report("one class: undefined statistics are null (sklearn kappa %r)" % sk_kappa,
               ok and (pred_only.any() or math.isnan(sk_kappa)), r.stderr + r.stdout[:300])

        # 5. usage errors exit 2 and name the fix
        for args, needle in [(["--labels", labels], "--results"),
                             (["--results", "res"], "--labels"),
                             (["--results", "res", "--labels", labels, "--threshold", "abc"], "[0, 1]"),
                             (["--results", "res", "--labels", labels, "--threshold", "1.5"], "[0, 1]"),
                             (["--results", "data", "--labels", labels], "summary.csv"),
                             (["--results", "res", "--labels", "nope.csv"], "nope.csv")]:
            r = run_eval(tmp, *args)
            report("usage %s -> exit 2" % " ".join(args), r.returncode == 2 and
                   needle in r.stderr, "rc %d: %s" % (r.returncode, r.stderr))
        with h5py.File(os.path.join(res, "results.h5"), "w") as h:
            h.attrs["model"] = "x"
        r = run_eval(tmp, "--results", "res", "--labels", labels)
        report("results.h5 without threshold -> exit 2 naming --threshold",
               r.returncode == 2 and "--threshold" in r.stderr, r.stderr)
    finally:
        if os.environ.get("FX_KEEP"):
            print("# kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
