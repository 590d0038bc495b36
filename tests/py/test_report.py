#!/usr/bin/env python3
"""fxscreen report: the triage report of a real run, checked two ways.

The data: the JSON inside report.html against results.h5 read by h5py
(every row's path, probability, prediction, peak, box, error), the
full-size original against a NumPy windowing of the source PNG (the
config's percentile window, NumPy's 'linear' percentile), the full-size
overlay against the run's own overlay PNG, the eval metrics and plots
present when eval ran.

The page: the report copied ALONE into an empty folder (a USB stick) and
opened from file:// in headless Chromium (Debian's chromium +
chromium-driver, Selenium): rows, default and clicked sort, filter, search,
keyboard navigation, the full-size view (overlay beside original, next,
close), a row without an embedded view, error rows with their reasons,
the print layout (PDF), no console errors, no network request, no
horizontal scroll at 360 px; then a 10,000-row report (a real run's rows
repeated) must load, filter, search and scroll quickly with few rows in
the DOM.  Screenshots go to BUILD/screenshots/report-*.png."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import FX, check  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "fxdemo.onnx")
EVIL = "a</script><img src=x onerror=alert(1)>.png"  # a folder "a<" holding "script><img ...>.png"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = os.path.abspath(os.path.join(su.BUILD, "screenshots"))


def fx(*args, **kw):
    return subprocess.run([FX] + list(args), capture_output=True, text=True, **kw)


def page_data(html_path):
    html = open(html_path, encoding="utf-8").read()
    m = re.search(r'<script type="application/json" id="fx-data">(.*?)</script>', html, re.S)
    return html, json.loads(m.group(1)) if m else None


def decode_uri(uri):
    head, b64 = uri.split(",", 1)
    return head, Image.open(io.BytesIO(base64.b64decode(b64)))


def h5rows(path):
    with h5py.File(path, "r") as f:
        dec = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
        return {"path": [dec(v) for v in f["path"][:]], "error": [dec(v) for v in f["error"][:]],
                "status": f["status"][:], "prob": f["probability"][:], "pred": f["prediction"][:],
                "peak": f["peak_xy"][:], "bbox": f["bbox"][:]}


def make_run(work):
    """40 synthetic 16-bit radiographs (384 px) and 2 damaged files, run with
    overlays for every row, then evaluated with plots."""
    src = os.path.join(work, "images")
    su.synth(src, 40, size=384, bits=16, seed=5)
    open(os.path.join(src, "zz_truncated.png"), "wb").write(open(os.path.join(src, "img_000001.png"), "rb").read()[:300])
    open(os.path.join(src, "zz_not_an_image.png"), "wb").write(b"this is not a PNG file at all\n")
    # A name with markup in it: the page must show it as text, never run it.
    os.makedirs(os.path.join(src, os.path.dirname(EVIL)))
    shutil.copy(os.path.join(src, "img_000002.png"), os.path.join(src, EVIL))
    out = os.path.join(work, "run")
    p = fx("run", "--model", MODEL, "--out", out, "--quiet", "--overlays", "all", src)
    check("run: 43 rows with overlays", p.returncode == 0, p.stderr[-500:])
    lab = os.path.join(work, "labels.csv")
    with open(os.path.join(src, "labels.csv")) as f, open(lab, "w") as g:
        g.write(f.read())
    p = fx("eval", "--results", out, "--labels", lab, "--bootstrap=200", "--plots", os.path.join(out, "plots"),
           "--faithfulness=3", "--model", MODEL, "--faith-percentiles", "30,70")
    check("eval with plots", p.returncode == 0, p.stderr[-500:])
    return src, out


def data_checks(work, src, out):
    p = fx("report", out, "--views", "30", "--quality", "95")
    check("report exits 0 and prints its summary", p.returncode == 0 and "43 rows (2 errors)" in p.stderr
          and "41 with pictures" in p.stderr and "30 full-size views" in p.stderr, (p.returncode, p.stderr[-500:]))
    rep = os.path.join(out, "report.html")
    if not check("DIR/report.html written", os.path.exists(rep)):
        return None
    html, d = page_data(rep)
    check("the page carries its data as JSON", d is not None)
    if d is None:
        return None
    check("self-contained: no http(s) URL in any src or href, a CSP forbidding the network",
          not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html, re.I)
          and "default-src 'none'" in html, "")
    h = h5rows(os.path.join(out, "results.h5"))
    rows = d["rows"]
    check("one row per results.h5 row, in its order", [r["path"] for r in rows] == h["path"], len(rows))
    ok_same = all(
        (r["status"] == "ok") == (h["status"][i] == 0)
        and (r["status"] != "ok" or (abs(r["p"] - float(h["prob"][i])) < 1e-6 and r["pred"] == int(h["pred"][i])
                                     and np.allclose(r["peak"], h["peak"][i]) and np.allclose(r["bbox"], h["bbox"][i])))
        and (r["status"] == "ok" or r["error"] == h["error"][i])
        for i, r in enumerate(rows))
    check("every row's status, probability, prediction, peak, box and error equal results.h5", ok_same)
    errs = [r for r in rows if r["status"] != "ok"]
    check("the 2 damaged files are error rows with their reasons",
          len(errs) == 2 and all(r["error"] and r["path"].endswith(("zz_truncated.png", "zz_not_an_image.png")) for r in errs),
          [(r["path"], r.get("error")) for r in errs])
    thumbs = [r for r in rows if r.get("thumb")]
    check("every ok row has a JPEG thumbnail of at most 160 px",
          len(thumbs) == 41 and all(decode_uri(r["thumb"])[0] == "data:image/jpeg;base64"
                                    and max(decode_uri(r["thumb"])[1].size) <= 160 for r in thumbs), len(thumbs))
    order = np.argsort(-np.where(h["status"] == 0, h["prob"], -1), kind="stable")
    top30 = {int(i) for i in order[:30]}
    viewed = {r["row"] for r in rows if r.get("overlay")}
    check("the 30 highest-probability rows carry the full-size view (--views 30)", viewed == top30,
          sorted(viewed ^ top30)[:5])
    # The original: the source PNG windowed as configured (percentile 0.5/99.5), x255.
    r = next(r for r in rows if r.get("original"))
    a = np.asarray(Image.open(r["path"])).astype(np.float64)
    lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
    want = np.floor(np.clip((a - lo) / (hi - lo), 0, 1) * 255 + 0.5)
    got = np.asarray(decode_uri(r["original"])[1].convert("L")).astype(np.float64)
    dd = np.abs(got - want)
    check("full-size original = the source windowed by NumPy (JPEG q95: mean |diff| %.2f)" % dd.mean(),
          got.shape == want.shape and dd.mean() < 1.5, (got.shape, want.shape, dd.mean()))
    # The overlay: the run's own overlay PNG of that row.
    name = "%08d_%s.png" % (r["row"], os.path.splitext(os.path.basename(r["path"]))[0])
    ov = np.asarray(Image.open(os.path.join(out, "overlays", name)).convert("RGB")).astype(np.float64)
    go = np.asarray(decode_uri(r["overlay"])[1].convert("RGB")).astype(np.float64)
    dd = np.abs(go - ov)
    check("full-size overlay = the run's overlay PNG (JPEG q95: mean |diff| %.2f)" % dd.mean(),
          go.shape == ov.shape and dd.mean() < 2.0, (go.shape, ov.shape, dd.mean()))
    ev = json.load(open(os.path.join(out, "eval.json")))
    check("eval.json carried whole (AUROC and its CI)", d["eval"] and d["eval"]["auroc"] == ev["auroc"])
    check("the four eval plots embedded as SVG", sorted(d["plots"]) == ["histogram", "pr", "reliability", "roc"]
          and all(v.startswith("data:image/svg+xml;base64,") for v in d["plots"].values()), sorted(d["plots"]))
    check("run summary: model SHA-256, times, threshold",
          d["run"]["model_sha256"] == json.load(open(os.path.join(out, "run.json")))["model_sha256"]
          and d["run"]["start_time"] and d["run"]["end_time"] and d["run"]["threshold"] == 0.5, d["run"])
    usb = os.path.join(work, "usb")
    os.makedirs(usb)
    shutil.copy(rep, os.path.join(usb, "report.html"))
    return os.path.join(usb, "report.html"), rows, h


def sources(work):
    """A run started elsewhere with relative sources, a folder and a tar of
    the same files: the report, made from another directory, finds every
    original (run.json's cwd) and reads the archive's members in memory."""
    rel = os.path.join(work, "rel")
    os.makedirs(rel)
    imgs = su.synth(os.path.join(rel, "images"), 4, size=200, bits=16, seed=12)
    subprocess.run(["tar", "cf", os.path.join(rel, "shard.tar"), "-C", os.path.join(rel, "images")]
                   + [os.path.basename(i) for i in imgs[:3]], check=True)
    p = subprocess.run([FX, "run", "--model", MODEL, "--out", "out", "--quiet", "images", "shard.tar"],
                       cwd=rel, capture_output=True, text=True)
    if not check("run from its own directory on relative sources (folder + tar)", p.returncode == 0, p.stderr[-300:]):
        return
    p = subprocess.run([FX, "report", os.path.join(rel, "out"), "--views", "all"], cwd="/", capture_output=True, text=True)
    check("report from another directory: all 7 rows pictured", p.returncode == 0 and "7 with pictures" in p.stderr,
          p.stderr[-400:])
    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    if os.path.exists(asan):
        q = subprocess.run([asan, "report", os.path.join(rel, "out"), "--out", os.path.join(work, "rel.html")],
                           cwd="/", capture_output=True, text=True, env=su.sanitizer_env())
        check("ASan+UBSan+LSan: the report over a tar runs clean", q.returncode == 0 and "Sanitizer" not in q.stderr,
              q.stderr[-1500:])
    _, d = page_data(os.path.join(rel, "out", "report.html"))
    if d is None:
        return
    by = {r["path"]: r for r in d["rows"]}
    pairs = [(by.get("images/" + os.path.basename(i)), by.get("shard.tar!/" + os.path.basename(i))) for i in imgs[:3]]
    check("an archive member's pictures equal its folder copy's",
          all(a and b and a.get("thumb") and a.get("thumb") == b.get("thumb") and a.get("original") == b.get("original")
              for a, b in pairs), [(a and a["path"], b and b["path"]) for a, b in pairs])


def refusals(work, out):
    p = fx("report", work)
    check("a directory without run.json: exit 2 naming it", p.returncode == 2 and "run.json" in p.stderr, p.stderr)
    p = fx("report", out, "--thumb", "8")
    check("--thumb out of range: exit 2 naming the ranges", p.returncode == 2 and "--thumb 16..512" in p.stderr, p.stderr)
    p = fx("report", out, "--views", "x")
    check("--views x: exit 2", p.returncode == 2, p.stderr)
    bad = os.path.join(work, "badrun")
    os.makedirs(bad)
    open(os.path.join(bad, "run.json"), "w").write("{not json")
    open(os.path.join(bad, "results.h5"), "w").write("nope")
    p = fx("report", bad)
    check("a broken run.json: exit 2, not a crash", p.returncode == 2 and "run.json" in p.stderr, p.stderr)
    shutil.copy(os.path.join(out, "run.json"), os.path.join(bad, "run.json"))
    p = fx("report", bad)
    check("a results.h5 that is not HDF5: exit 2 naming it", p.returncode == 2 and "results.h5" in p.stderr, p.stderr)


def sanitized(work, out):
    """The report of the run with its error rows under ASan + UBSan + LeakSanitizer."""
    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    if not os.path.exists(asan):
        check("ASan build present (%s)" % asan, False)
        return
    env = su.sanitizer_env()
    p = subprocess.run([asan, "report", out, "--views", "5", "--out", os.path.join(work, "asan.html")],
                       capture_output=True, text=True, env=env)
    check("ASan+UBSan+LSan: the report runs clean", p.returncode == 0 and "Sanitizer" not in p.stderr,
          p.stderr[-1500:])
    p = subprocess.run([asan, "report", work], capture_output=True, text=True, env=env)
    check("ASan+UBSan+LSan: a refusal runs clean", p.returncode == 2 and "Sanitizer" not in p.stderr,
          p.stderr[-1500:])


def browser(width, height, mobile=False, page=None):
    """Chromium with the console and network logs, opened on the report page
    (file://) when given, once its script has run."""
    d = su.chromium(width, height, mobile, args=("--allow-file-access-from-files",),
                    logs=("browser", "performance"))
    if page:
        try:
            d.get("file://" + page)
            WebDriverWait(d, 30).until(lambda dr: dr.execute_script("return !!window.fxReport"))
        except Exception:
            d.quit()
            raise
    return d


def first_rows(d, k):
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#spacer .row')).sort((a, b) => "
        "parseFloat(a.style.top) - parseFloat(b.style.top)).slice(0, arguments[0]).map(e => +e.dataset.row)", k)


def browse(rep, rows, h):
    os.makedirs(SHOTS, exist_ok=True)
    d = browser(1280, 900, page=rep)
    try:
        d.save_screenshot(os.path.join(SHOTS, "report-desktop.png"))
        d.execute_script("document.getElementById('worklist').scrollIntoView()")
        d.save_screenshot(os.path.join(SHOTS, "report-worklist.png"))
        faith = d.execute_script("return document.querySelectorAll('#faith tr').length")
        check("page: the ROAD faithfulness table (2 percentiles)", faith == 3, faith)
        count = d.find_element(By.ID, "count").text
        check("page: 43 of 43 rows", count == "43 of 43 rows", count)
        evil = d.execute_script("const s = document.getElementById('search'); s.value = 'onerror';"
                                " s.dispatchEvent(new Event('input'));"
                                " return new Promise(r => setTimeout(() => { const t = Array.from("
                                "document.querySelectorAll('#spacer .path')).map(e => e.textContent);"
                                " s.value = ''; s.dispatchEvent(new Event('input')); setTimeout(() => r(t), 300); }, 300));")
        check("page: a file name with markup is shown as text (no element made, no script run)",
              len(evil) == 1 and evil[0].endswith(EVIL)
              and d.execute_script("return document.querySelectorAll('img[src=x], script:not([id]):not([src])').length") <= 1,
              evil)
        ok = h["status"] == 0
        order = [int(i) for i in np.argsort(-np.where(ok, h["prob"], -1), kind="stable")]
        check("page: sorted by probability, highest first", first_rows(d, 5) == order[:5], (first_rows(d, 5), order[:5]))
        d.find_element(By.XPATH, "//div[@class='listhead']//button[text()='Probability']").click()
        asc = [int(i) for i in np.argsort(np.where(ok, h["prob"], 2), kind="stable")]
        check("page: a click on Probability sorts lowest first", first_rows(d, 3) == asc[:3], (first_rows(d, 3), asc[:3]))
        Select(d.find_element(By.ID, "sort")).select_by_value("p-desc")
        sel = Select(d.find_element(By.ID, "filter"))
        sel.select_by_value("pos")
        npos = int(((h["pred"] == 1) & ok).sum())
        check("page: filter 'predicted fracture' shows %d rows" % npos,
              d.find_element(By.ID, "count").text == "%d of 43 rows" % npos, d.find_element(By.ID, "count").text)
        sel.select_by_value("err")
        txt = d.execute_script("return Array.from(document.querySelectorAll('#spacer .errtext')).map(e => e.textContent)")
        check("page: filter 'errors' shows the 2 error rows with their reasons",
              len(txt) == 2 and all(t.startswith("error: ") and len(t) > 10 for t in txt), txt)
        errs = d.execute_script("return Array.from(document.querySelectorAll('#errors li')).map(e => e.textContent)")
        check("page: the error section lists both with their reasons",
              len(errs) == 2 and all(h["error"][i] in " ".join(errs) for i in np.flatnonzero(~ok)), errs)
        sel.select_by_value("all")
        target = os.path.basename(h["path"][7])
        s = d.find_element(By.ID, "search")
        s.send_keys(target)
        WebDriverWait(d, 5).until(lambda dr: dr.find_element(By.ID, "count").text == "1 of 43 rows")
        check("page: search by path finds the one row", first_rows(d, 2) == [7], first_rows(d, 2))
        s.send_keys(Keys.CONTROL, "a")
        s.send_keys(Keys.DELETE)
        WebDriverWait(d, 5).until(lambda dr: dr.find_element(By.ID, "count").text == "43 of 43 rows")
        # Keyboard: focus the list, two rows down, open, next, close.
        lst = d.find_element(By.ID, "list")
        lst.click()
        d.execute_script("arguments[0].focus()", lst)
        d.execute_script("document.getElementById('viewer').open && document.getElementById('viewer').close()")
        lst.send_keys(Keys.HOME)
        lst.send_keys(Keys.ARROW_DOWN)
        lst.send_keys(Keys.ARROW_DOWN)
        check("page: arrow keys move the selection", d.execute_script("return fxReport.selected()") == order[2],
              (d.execute_script("return fxReport.selected()"), order[2]))
        lst.send_keys(Keys.ENTER)
        WebDriverWait(d, 5).until(lambda dr: dr.execute_script("return document.getElementById('viewer').open"))
        sizes = d.execute_script("return ['vover', 'vorig'].map(i => { const e = document.getElementById(i);"
                                 " return e && e.complete ? [e.naturalWidth, e.naturalHeight] : null; })")
        check("page: Enter opens the full-size overlay beside the original (384 x 384)",
              sizes == [[384, 384], [384, 384]], sizes)
        check("page: the view is titled with the row's path", d.find_element(By.ID, "vtitle").text == h["path"][order[2]])
        d.save_screenshot(os.path.join(SHOTS, "report-view.png"))
        d.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
        check("page: the right arrow shows the next row", d.find_element(By.ID, "vtitle").text == h["path"][order[3]],
              d.find_element(By.ID, "vtitle").text)
        d.switch_to.active_element.send_keys(Keys.ESCAPE)
        WebDriverWait(d, 5).until(lambda dr: not dr.execute_script("return document.getElementById('viewer').open"))
        check("page: Escape closes the view, focus back on the list",
              d.execute_script("return document.activeElement.id") == "list")
        # A row beyond --views 30: the thumbnail and the note.
        lst.send_keys(Keys.END)
        for _ in range(3):
            lst.send_keys(Keys.ARROW_UP)  # past the 2 error rows, to the lowest ok row
        lst.send_keys(Keys.ENTER)
        WebDriverWait(d, 5).until(lambda dr: dr.execute_script("return document.getElementById('viewer').open"))
        cap = d.find_element(By.ID, "vpair").text
        check("page: a row without an embedded view shows its thumbnail and says why", "--views" in cap, cap)
        d.find_element(By.ID, "vclose").click()
        # Print: the toolbar and the list hidden, the print table filled, a PDF.
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        hidden = d.execute_script("return ['.toolbar', '#listwrap'].map(s => getComputedStyle(document.querySelector(s)).display)")
        d.execute_script("window.dispatchEvent(new Event('beforeprint'))")
        prows = d.execute_script("return document.querySelectorAll('#printlist tr').length")
        check("print: controls and the scrolling list hidden, a table of all 43 rows instead",
              hidden == ["none", "none"] and prows == 44, (hidden, prows))
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        pdf = base64.b64decode(d.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})["data"])
        open(os.path.join(SHOTS, "report-print.pdf"), "wb").write(pdf)
        check("print: a PDF of %d pages" % len(re.findall(rb"/Type\s*/Page[^s]", pdf)), pdf.startswith(b"%PDF"))
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        check("page: no console errors", not logs, logs[:3])
        net = [json.loads(e["message"])["message"] for e in d.get_log("performance")]
        urls = [m["params"]["request"]["url"] for m in net if m["method"] == "Network.requestWillBeSent"]
        check("page: no request but the file itself and its data: pictures",
              all(u.startswith(("file://", "data:")) for u in urls), [u[:60] for u in urls if not u.startswith(("file://", "data:"))][:3])
    finally:
        d.quit()
    d = browser(360, 740, mobile=True, page=rep)
    try:
        d.save_screenshot(os.path.join(SHOTS, "report-phone.png"))
        d.execute_script("document.getElementById('worklist').scrollIntoView()")
        d.save_screenshot(os.path.join(SHOTS, "report-phone-worklist.png"))
        over = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        check("phone 360 px: no horizontal scroll", over <= 0, over)
        labelled = d.execute_script(
            "return Array.from(document.querySelectorAll('input, select')).every(e => e.getAttribute('aria-label') || e.closest('label'))")
        check("controls labelled for screen readers", labelled)
    finally:
        d.quit()


def big(work):
    """10,000 rows: a real run of 25 small radiographs, its rows repeated 400 times."""
    src = os.path.join(work, "small")
    su.synth(src, 25, size=128, bits=16, seed=9)
    out = os.path.join(work, "run25")
    p = fx("run", "--model", MODEL, "--out", out, "--quiet", src)
    if not check("run on 25 small radiographs", p.returncode == 0, p.stderr[-300:]):
        return
    out10k = os.path.join(work, "run10k")
    os.makedirs(out10k)
    shutil.copy(os.path.join(out, "run.json"), out10k)
    with h5py.File(os.path.join(out, "results.h5"), "r") as f, h5py.File(os.path.join(out10k, "results.h5"), "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v

        def copy(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[:]
                g.create_dataset(name, data=np.concatenate([data] * 400), dtype=obj.dtype)
        f.visititems(copy)
    t = time.time()
    p = fx("report", out10k, "--views", "100")
    dt = time.time() - t
    size = os.path.getsize(os.path.join(out10k, "report.html")) if p.returncode == 0 else 0
    check("10,000-row report written (%.1f s, %.1f MB)" % (dt, size / 1e6),
          p.returncode == 0 and "10000 rows" in p.stderr, p.stderr[-300:])
    if p.returncode != 0 or webdriver is None or not CHROMIUM:
        return
    d = browser(1280, 900)
    try:
        t = time.time()
        d.get("file://" + os.path.join(out10k, "report.html"))
        WebDriverWait(d, 60).until(lambda dr: dr.execute_script("return !!window.fxReport"))
        load = time.time() - t
        check("10,000 rows: the page is ready in %.1f s (< 15 s)" % load, load < 15)
        ms = d.execute_script("const f = document.getElementById('filter'), t = performance.now();"
                              " f.value = 'pos'; f.dispatchEvent(new Event('change'));"
                              " f.value = 'all'; f.dispatchEvent(new Event('change'));"
                              " const s = document.getElementById('sort'); s.value = 'path'; s.dispatchEvent(new Event('change'));"
                              " return performance.now() - t;")
        check("10,000 rows: two filters and a sort in %.0f ms (< 1500)" % ms, ms < 1500, ms)
        n = d.execute_script("const l = document.getElementById('list'); l.scrollTop = l.scrollHeight;"
                             " return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() =>"
                             " r([document.querySelectorAll('#spacer .row').length, document.getElementById('count').textContent]))))")
        check("10,000 rows: scrolled to the end, only the rows in sight are in the DOM (%d)" % n[0],
              0 < n[0] < 60 and n[1] == "10000 of 10000 rows", n)
        d.save_screenshot(os.path.join(SHOTS, "report-10k-end.png"))
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        check("10,000 rows: no console errors", not logs, logs[:3])
    finally:
        d.quit()


def main():
    def all_steps(work):
        src, out = make_run(work)
        got = data_checks(work, src, out)
        refusals(work, out)
        sources(work)
        sanitized(work, out)
        if webdriver is None or not CHROMIUM or not DRIVER:
            print("SKIP report in the browser: chromium, chromium-driver or python3-selenium missing (make deps)")
        elif got:
            browse(*got)
        big(work)
    return su.run_tests("fx_report_", all_steps)


if __name__ == "__main__":
    sys.exit(main())
