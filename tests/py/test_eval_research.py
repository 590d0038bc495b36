#!/usr/bin/env python3
"""`fxscreen eval`'s research statistics against independent references:
operating points (Youden's J, at a sensitivity, at a specificity) against
scikit-learn's roc_curve, calibration (Brier score, the reliability table)
against brier_score_loss and calibration_curve, ECE against NumPy on the same
bins, and the stratified bootstrap against a NumPy implementation of the
documented resampling scheme and seed (splitmix64 counter stream) with
scikit-learn's roc_auc_score and cohen_kappa_score per replicate."""
import json
import os

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from serve_util import FX, check, run_tests
import subprocess

M64 = (1 << 64) - 1


def splitmix(seed, k):
    """fx_eval_rand(seed, k) for an array k (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (k.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def draw(seed, k, n):
    return ((splitmix(seed, k) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


def make_case(tmp, rng, n=400, constant_label=None):
    y = rng.integers(0, 2, n) if constant_label is None else np.full(n, constant_label)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    p = np.round(p, 2)  # ties, and values on the calibration bins' edges
    os.makedirs(os.path.join(tmp, "res"), exist_ok=True)
    with open(os.path.join(tmp, "labels.csv"), "w") as f:
        f.write("path,label,x0,y0,x1,y1\n")
        for i in range(n):
            f.write(f"img{i:04d}.png,{y[i]},,,,\n")
    with open(os.path.join(tmp, "res", "summary.csv"), "w") as f:
        f.write("path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error\n")
        for i in range(n):
            f.write(f"{tmp}/img{i:04d}.png,ok,{p[i]!r},{int(p[i] >= 0.5)},,,,,,,\n")
    return y, p


def run_eval(tmp, *args):
    p = subprocess.run([FX, "eval", "--results", os.path.join(tmp, "res"), "--labels",
                        os.path.join(tmp, "labels.csv"), "--threshold", "0.5", *args],
                       capture_output=True, text=True)
    js = None
    if p.returncode == 0:
        with open(os.path.join(tmp, "res", "eval.json")) as f:
            js = json.load(f)
    return p.returncode, p.stdout + p.stderr, js


def close(a, b, tol=1e-9):
    return a is not None and b is not None and abs(a - b) <= tol


def step_operating_points(tmp):
    rng = np.random.default_rng(11)
    y, p = make_case(tmp, rng)
    rc, out, js = run_eval(tmp, "--at-sensitivity", "0.9", "--at-specificity", "0.8")
    if not check("eval with operating points", rc == 0, out):
        return
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    ops = js["operating_points"]
    j = int(np.argmax(tpr - fpr))
    got = ops["youden"]
    check("Youden's J threshold == sklearn roc_curve argmax(tpr - fpr)",
          close(got["threshold"], thr[j]), (got["threshold"], thr[j]))
    check("Youden's J sensitivity/specificity/J", close(got["sensitivity"], tpr[j]) and
          close(got["specificity"], 1 - fpr[j]) and close(got["youden_j"], tpr[j] - fpr[j]))
    ok = tpr >= 0.9
    t = thr[ok].max()
    got = ops["at_sensitivity"]
    check("at sensitivity >= 0.9: the largest threshold reaching it",
          close(got["threshold"], t), (got["threshold"], t))
    pred = p >= got["threshold"]
    check("at sensitivity: counts and rates at that threshold",
          got["tp"] == int(np.sum(pred & (y == 1))) and got["fp"] == int(np.sum(pred & (y == 0)))
          and close(got["sensitivity"], skm.recall_score(y, pred))
          and close(got["ppv"], skm.precision_score(y, pred)))
    ok = (1 - fpr) >= 0.8
    t = thr[ok][thr[ok] <= p.max()].min() if np.any(thr[ok] <= p.max()) else None
    got = ops["at_specificity"]
    check("at specificity >= 0.8: the smallest threshold reaching it",
          close(got["threshold"], t), (got["threshold"], t))
    pred = p >= got["threshold"]
    check("at specificity: specificity at that threshold",
          close(got["specificity"], np.sum(~pred & (y == 0)) / np.sum(y == 0)))
    rc, out, js = run_eval(tmp, "--at-specificity", "1")
    got = js["operating_points"]["at_specificity"] if js else {}
    above = p[p > p[y == 0].max()]
    want = above.min() if len(above) else p.max() + 1
    check("at specificity 1: the smallest score above every negative (or max + 1)",
          rc == 0 and got.get("specificity") == 1.0 and close(got["threshold"], want), (got, want))
    y1 = y.copy()
    y1[np.argmax(p)] = 0  # the highest score a negative: only "nothing positive" reaches 1
    make_labels = os.path.join(tmp, "labels.csv")
    with open(make_labels, "w") as f:
        f.write("path,label,x0,y0,x1,y1\n")
        for i in range(len(y1)):
            f.write(f"img{i:04d}.png,{y1[i]},,,,\n")
    rc, out, js = run_eval(tmp, "--at-specificity", "1")
    got = js["operating_points"]["at_specificity"] if js else {}
    check("at specificity 1 with a negative on top: threshold max + 1 (sklearn's first), no "
          "positive predicted", rc == 0 and close(got["threshold"], p.max() + 1) and
          got["tp"] == 0 and got["fp"] == 0 and close(thr[0], p.max() + 1), (got, thr[0]))
    for args, want in [(["--at-sensitivity", "0"], "(0, 1]"), (["--at-specificity", "1.5"], "(0, 1]"),
                       (["--bootstrap=0"], "1.."), (["--calibration-bins", "0"], "1..100"),
                       (["--seed", "-3"], "0..2^64-1")]:
        rc, out, _ = run_eval(tmp, *args)
        check(f"refused: {' '.join(args)}", rc == 2 and want in out, out)


def step_calibration(tmp):
    rng = np.random.default_rng(12)
    y, p = make_case(tmp, rng)
    for bins in (10, 7):
        rc, out, js = run_eval(tmp, "--calibration-bins", str(bins))
        if not check(f"eval, {bins} calibration bins", rc == 0, out):
            return
        cal = js["calibration"]
        check(f"Brier score == sklearn brier_score_loss ({bins} bins)",
              close(cal["brier"], skm.brier_score_loss(y, p), 1e-12))
        prob_true, prob_pred = calibration_curve(y, p, n_bins=bins, strategy="uniform")
        rows = [r for r in cal["reliability"] if r["count"] > 0]
        check(f"reliability table == sklearn calibration_curve ({bins} bins)",
              len(rows) == len(prob_true) and
              all(close(r["fraction_positive"], a, 1e-12) and close(r["mean_probability"], b, 1e-12)
                  for r, a, b in zip(rows, prob_true, prob_pred)),
              (rows[:3], prob_true[:3], prob_pred[:3]))
        edges = np.linspace(0, 1, bins + 1)
        ids = np.searchsorted(edges[1:-1], p)
        ece = sum(np.sum(ids == b) / len(p) * abs(p[ids == b].mean() - y[ids == b].mean())
                  for b in range(bins) if np.any(ids == b))
        check(f"ECE == NumPy on the same bins ({bins} bins)", close(cal["ece"], ece, 1e-12),
              (cal["ece"], ece))
        check(f"bin counts ({bins} bins)",
              [r["count"] for r in cal["reliability"]] == [int(np.sum(ids == b)) for b in range(bins)])


def bootstrap_ref(y, p, thr, reps, seed):
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    np_, nq = len(pos), len(neg)
    m = np_ + nq
    stats = {k: [] for k in ["auroc", "sensitivity", "specificity", "ppv", "npv", "kappa"]}
    yy = np.r_[np.ones(np_, int), np.zeros(nq, int)]
    for b in range(reps):
        k0 = b * m
        ip = pos[draw(seed, np.arange(k0, k0 + np_), np_).astype(np.int64)]
        iq = neg[draw(seed, np.arange(k0 + np_, k0 + m), nq).astype(np.int64)]
        s = np.r_[p[ip], p[iq]]
        pred = (s >= thr).astype(int)
        tp, fp = np.sum(pred & yy), np.sum(pred & (1 - yy))
        tn, fn = np.sum((1 - pred) & (1 - yy)), np.sum((1 - pred) & yy)
        stats["auroc"].append(skm.roc_auc_score(yy, s))
        stats["sensitivity"].append(tp / (tp + fn))
        stats["specificity"].append(tn / (tn + fp))
        stats["ppv"].append(tp / (tp + fp) if tp + fp else np.nan)
        stats["npv"].append(tn / (tn + fn) if tn + fn else np.nan)
        stats["kappa"].append(skm.cohen_kappa_score(yy, pred) if len(set(pred)) > 1 or
                              len(set(yy)) > 1 else np.nan)
    out = {}
    for k, v in stats.items():
        v = np.array(v, float)
        v = v[np.isfinite(v)]
        out[k] = (np.percentile(v, 2.5), np.percentile(v, 97.5), len(v))
    return out


def step_bootstrap(tmp):
    rng = np.random.default_rng(13)
    y, p = make_case(tmp, rng, n=300)
    reps, seed = 400, 987654321987
    rc, out, js = run_eval(tmp, f"--bootstrap={reps}", "--seed", str(seed))
    if not check("eval --bootstrap", rc == 0 and "bootstrap" in js, out):
        return
    ref = bootstrap_ref(y, p, 0.5, reps, seed)
    bo = js["bootstrap"]
    check("bootstrap: replicates and seed recorded", bo["replicates"] == reps and bo["seed"] == seed)
    for k, (lo, hi, valid) in ref.items():
        got = bo[k]
        check(f"bootstrap {k} 95% CI == NumPy reference of the same scheme",
              close(got["ci95"][0], lo, 1e-9) and close(got["ci95"][1], hi, 1e-9) and
              got["valid_replicates"] == valid, (got, lo, hi, valid))
    auc = skm.roc_auc_score(y, p)
    check("the bootstrap AUROC interval holds the AUROC", bo["auroc"]["ci95"][0] <= auc <=
          bo["auroc"]["ci95"][1])
    rc2, out2, js2 = run_eval(tmp, f"--bootstrap={reps}", "--seed", str(seed))
    check("the same seed gives the same intervals", js2["bootstrap"] == bo)
    rc3, out3, js3 = run_eval(tmp, "--bootstrap", "--seed", "2")
    check("--bootstrap alone: 10,000 replicates", rc3 == 0 and
          js3["bootstrap"]["replicates"] == 10000, out3)
    # One class only: AUROC undefined in every replicate, null intervals.
    y, p = make_case(tmp, rng, n=50, constant_label=1)
    rc, out, js = run_eval(tmp, "--bootstrap=50")
    check("one class: AUROC interval null, sensitivity defined",
          rc == 0 and js["bootstrap"]["auroc"]["ci95"] == [None, None] and
          js["bootstrap"]["auroc"]["valid_replicates"] == 0 and
          js["bootstrap"]["sensitivity"]["ci95"][0] is not None and
          js["operating_points"]["youden"]["threshold"] is None, out)


def write_case(tmp, name, paths, y, p, extra=None, label_extra=None):
    """res dir `name` with summary.csv (optionally extra columns), labels.csv."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    ex = extra or {}
    with open(os.path.join(d, "summary.csv"), "w") as f:
        f.write("path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error" +
                "".join("," + k for k in ex) + "\n")
        for i, path in enumerate(paths):
            f.write(f"{tmp}/{path},ok,{p[i]!r},,,,,,,," + "".join("," + v[i] for v in ex.values())
                    + "\n")
    if label_extra is not None:
        with open(os.path.join(tmp, "labels.csv"), "w") as f:
            f.write("path,label,x0,y0,x1,y1" + "".join("," + k for k in label_extra) + "\n")
            for i in range(len(y)):
                f.write(f"img{i:04d}.png,{y[i]},,,," + "".join("," + v[i] for v in
                                                             label_extra.values()) + "\n")
    return d


def evaluate(tmp, res, *args):
    p = subprocess.run([FX, "eval", "--results", res, "--labels", os.path.join(tmp, "labels.csv"),
                        "--threshold", "0.5", "--json", os.path.join(tmp, "e.json"), *args],
                       capture_output=True, text=True)
    js = json.load(open(os.path.join(tmp, "e.json"))) if p.returncode == 0 else None
    return p.returncode, p.stdout + p.stderr, js


def step_subgroups(tmp):
    rng = np.random.default_rng(14)
    n = 360
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 3)
    site = np.array(["north", "south", "east"])[rng.integers(0, 3, n)]
    body = np.array(["WRIST", "ANKLE", ""])[rng.integers(0, 3, n)]
    paths = [f"img{i:04d}.png" for i in range(n)]
    res = write_case(tmp, "sg", paths, y, p, extra={"body_part": list(body)},
                     label_extra={"site": list(site)})
    for col, values in [("site", site), ("body_part", body)]:
        rc, out, js = evaluate(tmp, res, "--group-by", col)
        if not check(f"eval --group-by {col}", rc == 0, out):
            continue
        sg = js["subgroups"]
        check(f"--group-by {col}: read from " + ("labels.csv" if col == "site" else "summary.csv"),
              sg["column"] == col and sg["from"] == ("labels.csv" if col == "site" else
                                                     "summary.csv"))
        want = sorted(set(values))
        check(f"--group-by {col}: one entry per value, sorted",
              [g["value"] for g in sg["groups"]] == want, [g["value"] for g in sg["groups"]])
        for g in sg["groups"]:
            m = values == g["value"]
            yy, pp = y[m], p[m]
            pred = pp >= 0.5
            ok = (g["n"] == int(m.sum()) and close(g["auroc"]["value"], skm.roc_auc_score(yy, pp))
                  and close(g["sensitivity"]["value"], skm.recall_score(yy, pred))
                  and close(g["specificity"]["value"], np.sum(~pred & (yy == 0)) / np.sum(yy == 0)))
            check(f"--group-by {col} = '{g['value']}': n, AUROC, sensitivity, specificity "
                  "against scikit-learn", ok, g)
    rc, out, js = evaluate(tmp, res, "--group-by", "hospital")
    check("--group-by of a column nowhere: refused, naming it", rc == 2 and
          "--group-by hospital: no such column" in out, out)


def delong_paired_ref(y, a, b):
    """DeLong et al. (1988) for two correlated AUROCs, written out here:
    psi over every positive-negative pair, no midrank shortcut."""
    pos, neg = y == 1, y == 0
    comps = []
    for s in (a, b):
        x, z = s[pos][:, None], s[neg][None, :]
        psi = (x > z) + 0.5 * (x == z)
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, k = pos.sum(), neg.sum()
    v10 = np.cov(np.vstack([comps[0][1], comps[1][1]]))
    v01 = np.cov(np.vstack([comps[0][2], comps[1][2]]))
    S = v10 / m + v01 / k
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    z = (comps[0][0] - comps[1][0]) / np.sqrt(var)
    from scipy.stats import norm
    return comps[0][0], comps[1][0], np.sqrt(var), z, 2 * norm.sf(abs(z))


def step_compare(tmp):
    from scipy.stats import binomtest, chi2
    rng = np.random.default_rng(15)
    n = 300
    y = rng.integers(0, 2, n)
    base = rng.normal(0, 0.2, n)
    pa = np.round(np.clip(0.35 + 0.3 * y + base, 0, 1), 3)
    pb = np.round(np.clip(0.4 + 0.2 * y + 0.7 * base + rng.normal(0, 0.1, n), 0, 1), 3)
    paths = [f"img{i:04d}.png" for i in range(n)]
    ra = write_case(tmp, "A", paths, y, pa, label_extra={})
    keep = np.ones(n, bool)
    keep[::7] = False  # B lacks some images: only the paired ones count
    rb = write_case(tmp, "B", [q for q, k in zip(paths, keep) if k], y[keep], pb[keep])
    rc, out, js = evaluate(tmp, ra, "--compare", rb)
    if not check("eval --compare", rc == 0 and "compare" in js, out):
        return
    c = js["compare"]
    ya, a, b = y[keep], pa[keep], pb[keep]
    check("compare: pairs the images both runs evaluated", c["paired"] == int(keep.sum()) and
          c["evaluated_b"] == int(keep.sum()), c)
    auc_a, auc_b, se, z, pval = delong_paired_ref(ya, a, b)
    d = c["delong"]
    check("paired DeLong: AUROCs, se, z, p against the test's own implementation",
          close(d["auroc_a"], auc_a) and close(d["auroc_b"], auc_b) and close(d["se"], se) and
          close(d["z"], z, 1e-8) and close(d["p"], pval, 1e-10), (d, auc_a, auc_b, se, z, pval))
    check("paired DeLong AUROCs equal scikit-learn's on the pairs",
          close(d["auroc_a"], skm.roc_auc_score(ya, a)) and close(d["auroc_b"],
                                                                  skm.roc_auc_score(ya, b)))
    ca, cb = (a >= 0.5) == (ya == 1), (b >= 0.5) == (ya == 1)
    bb, cc = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    mc = c["mcnemar"]
    stat = (abs(bb - cc) - 1) ** 2 / (bb + cc)
    check("McNemar: discordant counts, chi2 and p (scipy chi2.sf), exact p (scipy binomtest)",
          mc["a_right_b_wrong"] == bb and mc["a_wrong_b_right"] == cc and
          close(mc["chi2"], stat) and close(mc["p_chi2"], chi2.sf(stat, 1), 1e-10) and
          close(mc["p_exact"], binomtest(bb, bb + cc, 0.5).pvalue, 1e-10), (mc, bb, cc))
    rc, out, js = evaluate(tmp, ra, "--compare", os.path.join(tmp, "nowhere"))
    check("--compare of a missing run: refused, naming it", rc == 2 and "nowhere" in out, out)


def step_plots(tmp):
    import xml.etree.ElementTree as ET
    from PIL import Image
    rng = np.random.default_rng(16)
    y, p = make_case(tmp, rng, n=250)
    plots = os.path.join(tmp, "plots")
    reps, seed = 200, 5
    rc, out, js = run_eval(tmp, "--plots", plots, f"--bootstrap={reps}", "--seed", str(seed))
    if not check("eval --plots", rc == 0, out):
        return
    want_text = {
        "roc": ["ROC curve", "False positive rate (1 - specificity)",
                "True positive rate (sensitivity)", "AUROC %.3f" % js["auroc"]["value"],
                "95% bootstrap band", "threshold 0.5", "chance"],
        "pr": ["Precision-recall curve", "Recall (sensitivity)", "Precision (PPV)",
               "95% bootstrap band", "prevalence"],
        "reliability": ["Reliability diagram", "Mean predicted probability",
                        "Fraction of fractures", "perfect calibration",
                        "model (ECE %.3f)" % js["calibration"]["ece"]],
        "histogram": ["Scores by class", "Predicted probability of fracture", "Images", "normal",
                      "fracture"],
    }
    ns = "{http://www.w3.org/2000/svg}"
    for name, texts in want_text.items():
        img = Image.open(os.path.join(plots, name + ".png"))
        img.load()
        px = np.asarray(img.convert("RGB")).reshape(-1, 3)
        blue = np.sum(np.all(np.abs(px.astype(int) - [0x1f, 0x77, 0xb4]) < 8, axis=1))
        check(f"{name}.png: a 640 x 480 RGB PNG with the series drawn",
              img.format == "PNG" and img.size == (640, 480) and img.mode == "RGB" and
              len(np.unique(px, axis=0)) > 20 and (blue > 200 or name == "histogram"),
              (img.size, img.mode, blue))
        root = ET.parse(os.path.join(plots, name + ".svg")).getroot()
        got = [("".join(t.itertext())) for t in root.iter(ns + "text")]
        check(f"{name}.svg: valid SVG 640 x 480 with title, axis labels and legend",
              root.tag == ns + "svg" and root.get("width") == "640" and
              all(t in got for t in texts), (texts, got[-8:]))
    svg = ET.parse(os.path.join(plots, "roc.svg")).getroot()
    check("roc.svg: the curve, the band and the operating point",
          len(list(svg.iter(ns + "polyline"))) == 2 and len(list(svg.iter(ns + "polygon"))) == 1
          and len(list(svg.iter(ns + "circle"))) == 1)
    cj = json.load(open(os.path.join(plots, "curves.json")))
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    check("curves.json ROC vertices == sklearn roc_curve (drop_intermediate=False)",
          np.allclose(cj["fpr"], fpr[1:], atol=1e-12) and np.allclose(cj["tpr"], tpr[1:], atol=1e-12)
          and np.allclose(cj["thresholds"], thr[1:], atol=1e-12), len(cj["fpr"]))
    prec, rec, pthr = skm.precision_recall_curve(y, p)
    ours = {t: (pr_, r_) for t, pr_, r_ in zip(cj["thresholds"], cj["precision"], cj["tpr"])}
    check("curves.json precision/recall == sklearn precision_recall_curve at its thresholds",
          all(abs(ours[t][0] - a) < 1e-12 and abs(ours[t][1] - b) < 1e-12
              for t, a, b in zip(pthr, prec[:-1], rec[:-1])))
    # The bands: the bootstrap's replicates replayed in NumPy.
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, G = len(y), 101
    grid = np.arange(G) / (G - 1)
    roc_r, pr_r = np.zeros((reps, G)), np.zeros((reps, G))
    for b in range(reps):
        ip = pos[draw(seed, np.arange(b * m, b * m + len(pos)), len(pos)).astype(np.int64)]
        iq = neg[draw(seed, np.arange(b * m + len(pos), (b + 1) * m), len(neg)).astype(np.int64)]
        s = np.r_[p[ip], p[iq]]
        yy = np.r_[np.ones(len(ip), int), np.zeros(len(iq), int)]
        f, t, _ = skm.roc_curve(yy, s, drop_intermediate=False)
        f, t = f[1:], t[1:]
        tps, fps = t * len(ip), f * len(iq)
        pr = tps / (tps + fps)
        roc_r[b] = [t[f <= v + 1e-12].max(initial=0) for v in grid]
        pr_r[b] = [pr[t >= v - 1e-12].max() for v in grid]
    bands = cj["bands"]
    check("ROC band == NumPy replay of the bootstrap (2.5 / 97.5 percentiles)",
          np.allclose(bands["roc_tpr_lo"], np.percentile(roc_r, 2.5, axis=0), atol=1e-9) and
          np.allclose(bands["roc_tpr_hi"], np.percentile(roc_r, 97.5, axis=0), atol=1e-9))
    check("PR band == NumPy replay of the bootstrap",
          np.allclose(bands["pr_precision_lo"], np.percentile(pr_r, 2.5, axis=0), atol=1e-9) and
          np.allclose(bands["pr_precision_hi"], np.percentile(pr_r, 97.5, axis=0), atol=1e-9))
    rc, out, js = run_eval(tmp, "--plots", "/proc/nope")
    check("--plots where nothing can be written: refused with the path", rc != 0 and
          "/proc/nope" in out, out)


if __name__ == "__main__":
    raise SystemExit(run_tests("fx_evalr_", step_operating_points, step_calibration,
                               step_bootstrap, step_subgroups, step_compare, step_plots))
