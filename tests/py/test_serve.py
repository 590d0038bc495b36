#!/usr/bin/env python3
"""API tests of `fxscreen serve` over real HTTP on loopback: every route,
every input form (multipart, raw PNG/TIFF/octet-stream, base64 JSON), every
error status, answers validated against the server's own OpenAPI document
with jsonschema; 64 concurrent clients whose answers equal `fxscreen run`
(and `fxscreen model cam`) on the same files; hostile clients (truncated
multipart, bad base64, wrong types, huge headers, a client that sends slowly
and stops) while others are served; a full queue; keep-alive; graceful
SIGTERM with requests in flight; and no file written by the server."""
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import jsonschema
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402

TOOLS = os.path.abspath(os.path.join(su.BUILD, "tools"))


def openapi_validator(doc, status, path, method, body, ctype="application/json"):
    """Validates body against the document's schema for (path, method, status)."""
    op = doc["paths"][path][method.lower()]
    resp = op["responses"].get(str(status))
    if resp is None:
        return "status %d is not documented for %s %s" % (status, method, path)
    schema = resp.get("content", {}).get(ctype, {}).get("schema")
    if schema is None:
        return "no %s schema for %d" % (ctype, status)
    resolver = jsonschema.RefResolver.from_schema(doc)
    try:
        jsonschema.Draft202012Validator(schema, resolver=resolver).validate(body)
    except jsonschema.ValidationError as e:
        return "schema: %s" % e.message
    return None


def run_reference(work, images):
    """`fxscreen run` on the same files: path -> (probability, peak, bbox)."""
    out = os.path.join(work, "run")
    p = subprocess.run([su.FX, "run", "--model", su.MODEL, "--out", out, "--quiet", "--overlays", "all"] + images,
                       capture_output=True, text=True)
    check("reference: fxscreen run exits 0", p.returncode == 0, p.stderr)
    ref = {}
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        for i, path in enumerate(f["path"][:]):
            path = path.decode() if isinstance(path, bytes) else path
            ref[os.path.abspath(path)] = (float(f["probability"][i]), f["peak_xy"][i].astype(float),
                                          f["bbox"][i].astype(float))
    return ref


def model_cam_reference(work, image):
    """`fxscreen model cam` on the file's preprocessed tensor: probability,
    and peak and box taken back to original pixels."""
    raw = os.path.join(work, "plane.raw")
    d = subprocess.run([os.path.join(TOOLS, "fx_decode_dump"), image, raw], capture_output=True, text=True)
    _, w, h, _, _, t = d.stdout.split()
    x = os.path.join(work, "x.raw")
    g = subprocess.run([os.path.join(TOOLS, "fx_prep_dump"), os.path.join(su.ROOT, "models", "fxdemo.yaml"),
                        raw, w, h, t, x], capture_output=True, text=True)
    _, new_w, new_h, off_x, off_y = g.stdout.split()[:5]
    sx, sy = int(new_w) / int(w), int(new_h) / int(h)
    with h5py.File(os.path.join(work, "in.h5"), "w") as f:
        f["input"] = np.fromfile(x, np.float32).reshape(1, 1, 256, 256)
    subprocess.run([su.FX, "model", "cam", su.MODEL, "--input", os.path.join(work, "in.h5"),
                    "--output", os.path.join(work, "cam.h5"), "--target", "1",
                    "--layer", "/features/block5/relu/Relu_output_0"], check=True, capture_output=True)
    with h5py.File(os.path.join(work, "cam.h5"), "r") as f:
        lg = f["logits"][0].astype(np.float64)
        peak, box = f["peak"][0], f["box"][0]
    p = np.exp(lg - lg.max())
    prob = p[1] / p.sum()
    # As fx_cam_locate maps them: peaks are pixel indices (centre at i),
    # boxes are pixel edges.
    peak = np.array([(peak[0] + 0.5 - int(off_x)) / sx - 0.5, (peak[1] + 0.5 - int(off_y)) / sy - 0.5])
    box = np.array([(box[0] - int(off_x)) / sx, (box[1] - int(off_y)) / sy,
                    (box[2] - int(off_x)) / sx, (box[3] - int(off_y)) / sy])
    box = np.clip(box, 0, [int(w), int(h), int(w), int(h)])
    return prob, peak, box


def main():
    work = tempfile.mkdtemp(prefix="fx_serve_test_")
    try:
        pngs = su.synth(os.path.join(work, "png"), 24, size=512, bits=16, seed=3)
        tifs = su.synth(os.path.join(work, "tif"), 8, size=384, bits=16, fmt="tiff", seed=4)
        images = pngs + tifs
        ref = run_reference(work, images)
        srv = su.Server("--max-upload", "1", "--max-batch", "8", "--max-wait-ms", "20", "--threads", "8")
        try:
            body_checks(srv, images, ref, work)
        finally:
            rc = srv.stop()
            check("SIGTERM after the tests: exit 0", rc == 0, rc)
            left = srv.disk_clean()
            check("nothing written to the working or temporary directory", not left, left)
        queue_and_shutdown(images)
        # The same API tests against the CLI built with ASan + UBSan (leaks
        # reported at exit make the exit status non-zero).
        asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
        if os.path.exists(asan):
            su.prefix = "asan: "
            srv = su.Server("--max-upload", "1", "--max-batch", "8", "--max-wait-ms", "20", "--threads", "8",
                            binary=asan)
            try:
                body_checks(srv, images, ref, work)
            finally:
                rc = srv.stop()
                srv_log = open(srv.err.name).read()
                check("SIGTERM after the tests: exit 0 (no sanitizer report)", rc == 0, (rc, srv_log[-2000:]))
            su.prefix = ""
        else:
            print("SKIP asan pass: %s not built (make test builds it)" % asan)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s)" % su.failures)
    return 1 if su.failures else 0


def body_checks(srv, images, ref, work):
    st, _, doc = srv.json("GET", "/openapi.json")
    check("GET /openapi.json is OpenAPI 3.1", st == 200 and doc.get("openapi", "").startswith("3.1"), st)
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["Result"])

    def valid(name, status, path, method, body, ctype="application/json"):
        e = openapi_validator(doc, status, path, method, body, ctype)
        check(name + " matches /openapi.json", e is None, e)

    # ---- the small routes
    for path in ("/api/health", "/api/ready", "/api/model"):
        st, h, body = srv.json("GET", path)
        check("GET %s 200 JSON" % path, st == 200 and h.get("content-type", "").startswith("application/json"), st)
        valid("GET " + path, st, path, "GET", body)
    st, _, model = srv.json("GET", "/api/model")
    check("/api/model: the demo model's classes and CAM layer",
          model["classes"] == ["normal", "fracture"] and model["cam_layer"] == "/features/block5/relu/Relu_output_0"
          and model["input"] == {"channels": 1, "height": 256, "width": 256}, model)
    st, h, html = srv.request("GET", "/")
    check("GET / serves the web app", st == 200 and b"<html" in html and h["content-type"].startswith("text/html"), st)
    check("the web app loads nothing from another host",
          b"http://" not in html.replace(b"http://www.w3.org", b"") and b"https://" not in html)
    for a, t in (("/app.js", "text/javascript"), ("/app.css", "text/css"),
                 ("/manifest.webmanifest", "application/manifest+json"), ("/icon.svg", "image/svg+xml")):
        st, h, data = srv.request("GET", a)
        check("GET %s (%s)" % (a, t), st == 200 and h["content-type"].startswith(t) and len(data) > 100, (st, h))
    st, _, man = srv.json("GET", "/manifest.webmanifest")
    check("the manifest names the app and an icon", man.get("name") and man.get("icons"), man)
    st, h, data = srv.request("HEAD", "/api/health")
    check("HEAD on a GET route: 200, no body", st == 200 and data == b"", (st, data))

    # ---- every input form gives the same answer for the same file
    png = open(images[0], "rb").read()
    tif = open(images[-1], "rb").read()
    forms = {}
    body, ct = su.multipart([("image", "a.png", png)])
    forms["multipart"] = srv.json("POST", "/api/predict", body, {"Content-Type": ct})
    forms["image/png"] = srv.json("POST", "/api/predict", png, {"Content-Type": "image/png"})
    forms["octet-stream"] = srv.json("POST", "/api/predict", png, {"Content-Type": "application/octet-stream"})
    forms["json"] = srv.json("POST", "/api/predict", json.dumps({"image": base64.b64encode(png).decode()}),
                             {"Content-Type": "application/json"})
    forms["json data-url"] = srv.json("POST", "/api/predict", json.dumps(
        {"image": "data:image/png;base64," + base64.b64encode(png).decode()}), {"Content-Type": "application/json"})
    p0, pk0, bx0 = ref[os.path.abspath(images[0])]
    for k, (st, h, r) in forms.items():
        ok = st == 200 and isinstance(r, dict)
        check("POST /api/predict as %s: 200" % k, ok, (st, r))
        if not ok:
            continue
        valid("predict (%s)" % k, st, "/api/predict", "POST", r)
        check("%s: probability, peak and box equal fxscreen run's" % k,
              abs(r["probability"] - p0) < 1e-6 and np.allclose(r["peak"], pk0, atol=1e-3)
              and np.allclose(r["bbox"], bx0, atol=1e-3), (r["probability"], p0, r["peak"], pk0, r["bbox"], bx0))
        check("%s: prediction and confidence agree with the probability" % k,
              (r["prediction"] == "fracture") == (r["probability"] >= r["threshold"])
              and abs(r["confidence"] - (r["probability"] if r["prediction"] == "fracture" else 1 - r["probability"])) < 1e-6
              and "heatmap_png" not in r, r)
    # A DICOM holding the PNG's 16-bit values: the same answer as the PNG.
    try:
        import test_dicom
        from PIL import Image
        dcm = os.path.join(work, "same_as_png.dcm")
        test_dicom.write(dcm, np.asarray(Image.open(images[0])).astype(np.int64), 16)
        st, _, r = srv.json("POST", "/api/predict", open(dcm, "rb").read(), {"Content-Type": "application/dicom"})
        check("POST a DICOM (application/dicom) with the PNG's values: the PNG's probability and peak",
              st == 200 and abs(r["probability"] - p0) < 1e-6 and np.allclose(r["peak"], pk0, atol=1e-3)
              and r["image"]["bits"] == 16, (st, r if st != 200 else (r["probability"], p0)))
    except ImportError as e:
        check("pydicom for the DICOM upload", False, e)
    st, _, r = srv.json("POST", "/api/predict", tif, {"Content-Type": "image/tiff"})
    pt, pkt, _ = ref[os.path.abspath(images[-1])]
    check("POST a TIFF as image/tiff: the same probability as fxscreen run",
          st == 200 and abs(r["probability"] - pt) < 1e-6 and np.allclose(r["peak"], pkt, atol=1e-3), (st, r))

    # model cam on the same file's tensor: same probability, peak and box.
    cprob, cpeak, cbox = model_cam_reference(work, images[0])
    r = forms["image/png"][2]
    check("serve equals fxscreen model cam: probability", abs(r["probability"] - cprob) < 1e-5, (r["probability"], cprob))
    check("serve equals fxscreen model cam: peak (original pixels)", np.allclose(r["peak"], cpeak, atol=1e-3),
          (r["peak"], cpeak))
    check("serve equals fxscreen model cam: box (original pixels)", np.allclose(r["bbox"], cbox, atol=1e-3),
          (r["bbox"], cbox))

    # ---- visualisation: embedded, and by URL
    st, _, r = srv.json("POST", "/api/predict?return_visualization=true", png, {"Content-Type": "image/png"})
    ov = base64.b64decode(r.get("heatmap_png", "")) if st == 200 else b""
    check("return_visualization=true embeds the overlay PNG", ov[:8] == b"\x89PNG\r\n\x1a\n", st)
    st2, h, ov2 = srv.request("GET", r["visualization_url"])
    check("GET visualization_url: the same overlay PNG", st2 == 200 and h["content-type"] == "image/png" and ov2 == ov,
          (st2, len(ov2), len(ov)))
    from PIL import Image
    import io
    name = os.path.splitext(os.path.basename(images[0]))[0]
    run_ov = [f for f in os.listdir(os.path.join(work, "run", "overlays")) if f.endswith("_" + name + ".png")]
    a = np.asarray(Image.open(io.BytesIO(ov2)).convert("RGB"))
    b = np.asarray(Image.open(os.path.join(work, "run", "overlays", run_ov[0])).convert("RGB")) if run_ov else None
    check("the served overlay equals fxscreen run --overlays all, pixel for pixel",
          b is not None and a.shape == b.shape and np.array_equal(a, b),
          None if b is None else (a.shape, b.shape, int(np.abs(a.astype(int) - b).max()) if a.shape == b.shape else -1))
    st2, h, im = srv.request("GET", r["image_url"])
    check("GET image_url: a grey PNG", st2 == 200 and im[:8] == b"\x89PNG\r\n\x1a\n" and im[25] == 0, (st2, im[25:26]))
    st2, _, again = srv.json("GET", r["result_url"])
    check("GET /api/results/<id>: the stored result", st2 == 200 and again["id"] == r["id"]
          and again["probability"] == r["probability"] and "heatmap_png" not in again, st2)
    valid("GET /api/results/<id>", st2, "/api/results/{id}", "GET", again)
    body, ct = su.multipart([("return_visualization", None, b"true"), ("image", "a.png", png)])
    st, _, r = srv.json("POST", "/api/predict", body, {"Content-Type": ct})
    check("multipart field return_visualization=true embeds the overlay", st == 200 and "heatmap_png" in r, st)
    st, _, r = srv.json("POST", "/api/predict", json.dumps({"image": base64.b64encode(png).decode(),
                                                              "return_visualization": True}),
                        {"Content-Type": "application/json"})
    check("JSON return_visualization: true embeds the overlay", st == 200 and "heatmap_png" in r, st)

    # ---- every error status, JSON {"error", "detail"}, documented
    errors = [
        ("400 no image field", "POST", "/api/predict", *su.multipart([("other", None, b"x")])[::-1], 400),
        ("400 bad base64", "POST", "/api/predict", "application/json", json.dumps({"image": "@@@not base64@@@"}), 400),
        ("400 JSON without image", "POST", "/api/predict", "application/json", json.dumps({"x": 1}), 400),
        ("400 not JSON", "POST", "/api/predict", "application/json", "{not json", 400),
        ("400 empty body", "POST", "/api/predict", "image/png", b"", 400),
        ("400 truncated multipart", "POST", "/api/predict", su.multipart([("image", "a.png", png)])[1],
         su.multipart([("image", "a.png", png)])[0][:-60], 400),
        ("415 wrong content type", "POST", "/api/predict", "text/plain", b"hello", 415),
        ("415 not an image", "POST", "/api/predict", "application/octet-stream", b"GIF89a" + b"\0" * 100, 415),
        ("422 damaged PNG", "POST", "/api/predict", "image/png", png[:len(png) // 2], 422),
        ("422 damaged TIFF", "POST", "/api/predict", "image/tiff", tif[:400], 422),
        ("404 unknown route", "GET", "/api/nothing", None, None, 404),
        ("404 unknown result", "GET", "/api/results/" + "0" * 32, None, None, 404),
        ("404 bad result id", "GET", "/api/results/xyz", None, None, 404),
        ("405 GET /api/predict", "GET", "/api/predict", None, None, 405),
        ("405 POST /api/health", "POST", "/api/health", "application/json", "{}", 405),
        ("405 DELETE /api/model", "DELETE", "/api/model", None, None, 405),
    ]
    for name, method, path, ct, body, want in errors:
        hdr = {"Content-Type": ct} if ct else {}
        try:
            st, h, r = srv.json(method, path, body, hdr)
        except (ConnectionError, OSError) as e:
            check(name, False, e)
            continue
        ok = st == want and isinstance(r, dict) and set(r) == {"error", "detail"} and r["detail"]
        check(name, ok, (st, r))
        if path == "/api/predict" and method == "POST":
            valid(name, st, "/api/predict", "POST", r)
        if want == 405:
            check(name + ": Allow header", "allow" in h, h)

    # 413: answered from the headers, before the body is read (a client that
    # waits for it, as with Expect: 100-continue, gets it at once).
    s413 = socket.create_connection(("127.0.0.1", srv.port))
    s413.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Content-Length: %d\r\n\r\n" % (2 << 20) + png[:1000])
    s413.settimeout(10)
    got = b""
    try:
        while b"}" not in got:
            k = s413.recv(4096)
            if not k:
                break
            got += k
    except OSError:
        pass
    s413.close()
    head, _, js = got.partition(b"\r\n\r\n")
    try:
        r413 = json.loads(js)
    except ValueError:
        r413 = None
    check("413 body over --max-upload, from Content-Length", head.startswith(b"HTTP/1.1 413")
          and isinstance(r413, dict) and set(r413) == {"error", "detail"}, got[:200])
    if isinstance(r413, dict):
        valid("413", 413, "/api/predict", "POST", r413)

    # ---- keep-alive: three requests on one connection
    c = srv.conn()
    statuses = []
    for path in ("/api/health", "/api/model", "/api/health"):
        c.request("GET", path)
        rr = c.getresponse()
        rr.read()
        statuses.append(rr.status)
    c.request("POST", "/api/predict", body=png, headers={"Content-Type": "image/png"})
    rr = c.getresponse()
    rr.read()
    statuses.append(rr.status)
    c.close()
    check("HTTP/1.1 keep-alive: four requests on one connection", statuses == [200] * 4, statuses)

    # ---- hostile clients while others are served
    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                 + png[:100])  # ... and stops
    slowhdr = socket.create_connection(("127.0.0.1", srv.port))
    slowhdr.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never end
    huge = socket.create_connection(("127.0.0.1", srv.port))
    try:
        huge.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * (1 << 20) + b"\r\n\r\n")
        huge.settimeout(10)
        first = huge.recv(200)
    except OSError:
        first = b"(closed)"
    huge.close()
    check("huge headers: refused (431/413) or closed, not served",
          first.startswith((b"HTTP/1.1 431", b"HTTP/1.1 413", b"HTTP/1.1 400")) or first in (b"", b"(closed)"), first[:40])
    t0 = time.time()
    st, _, r = srv.json("POST", "/api/predict", png, {"Content-Type": "image/png"})
    check("others are served while a client sends slowly and stops",
          st == 200 and time.time() - t0 < 10, (st, time.time() - t0))
    garbage = socket.create_connection(("127.0.0.1", srv.port))
    garbage.sendall(os.urandom(4096))
    garbage.close()
    st, _, _ = srv.json("GET", "/api/health")
    check("still serving after slow, huge and garbage clients", st == 200, st)

    # ---- a short fuzz pass driven by /openapi.json: every documented path with
    # every method, random content types and bodies (mutated images, random
    # bytes, random JSON); every answer must be a documented status (or 404/405
    # for a wrong path/method) with the error shape, and the server must live.
    import random
    rng = random.Random(5)
    paths = [p.replace("{id}", r["id"] if rng.random() < 0.5 else "f" * 32)
             .replace("{model}", "fxdemo" if rng.random() < 0.8 else "x").replace("{version}", rng.choice("12"))
             for p in doc["paths"]]
    paths += ["/api/results/" + "a" * 31, "/api/predict/", "//api/predict", "/api/predict?x=%00", "/%2e%2e/etc"]
    types = ["image/png", "image/tiff", "application/octet-stream", "application/json", "multipart/form-data",
             "multipart/form-data; boundary=", "text/html", "", "image/png; charset=utf-8", "application/JSON"]
    undocumented = []
    for i in range(1000):
        path = rng.choice(paths)
        method = rng.choice(["GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
        kind = rng.randrange(5)
        if kind == 0:
            body = bytearray(png[:rng.randrange(1, len(png))])
            for _ in range(rng.randrange(1, 20)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            body = bytes(body)
        elif kind == 1:
            body = os.urandom(rng.randrange(0, 5000))
        elif kind == 2:
            body = json.dumps({"image": rng.choice([base64.b64encode(png[:rng.randrange(1, 4000)]).decode(), 5, None,
                                                    "=" * rng.randrange(9), [1, 2]]),
                               "return_visualization": rng.choice([True, "yes", 0, None])}).encode()
        elif kind == 3:
            body = su.multipart([(rng.choice(["image", "img", ""]), "f", png[:rng.randrange(1, 3000)])])[0]
        else:
            body = b""
        try:
            st, h, rb = srv.request(method, path, body if method not in ("GET", "HEAD") else None,
                                    {"Content-Type": rng.choice(types)})
        except (OSError, ConnectionError) as e:
            undocumented.append((method, path, "connection: %s" % e))
            continue
        if st >= 500 and st != 503:
            undocumented.append((method, path, st, rb[:100]))
        if st >= 400 and method != "HEAD":
            try:
                e = json.loads(rb)
                if set(e) != {"error", "detail"}:
                    undocumented.append((method, path, st, "error shape", e))
            except ValueError:
                undocumented.append((method, path, st, "not JSON", rb[:80]))
    check("1000 OpenAPI-driven fuzz requests: no 5xx, every error in the error shape", not undocumented,
          undocumented[:4])
    st, _, _ = srv.json("GET", "/api/health")
    check("serving after the fuzz pass, the two slow clients still connected", st == 200, st)
    slow.close()
    slowhdr.close()

    # ---- 64 concurrent clients: every answer equals fxscreen run's
    jobs = [images[i % len(images)] for i in range(64)]

    def post(path):
        data = open(path, "rb").read()
        ct = "image/tiff" if path.endswith((".tif", ".tiff")) else "image/png"
        st, _, r = srv.json("POST", "/api/predict", data, {"Content-Type": ct})
        return path, st, r

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        answers = list(ex.map(post, jobs))
    dt = time.time() - t0
    bad = []
    batches = []
    for path, st, r in answers:
        p, pk, bx = ref[os.path.abspath(path)]
        if st != 200 or abs(r["probability"] - p) > 1e-6 or not np.allclose(r["peak"], pk, atol=1e-3) \
                or not np.allclose(r["bbox"], bx, atol=1e-3):
            bad.append((os.path.basename(path), st, r if st != 200 else (r["probability"], p)))
        else:
            batches.append(r["batch_size"])
    check("64 concurrent clients: all 200 and equal to fxscreen run", not bad, bad[:3])
    check("64 concurrent clients: requests were batched (mean batch > 1)",
          batches and sum(batches) / len(batches) > 1.0, batches[:16])
    print("  64 concurrent requests in %.2f s, mean batch %.2f" % (dt, sum(batches) / max(1, len(batches))))

    # ---- metrics count what happened
    st, h, text = srv.request("GET", "/metrics")
    text = text.decode()
    check("GET /metrics: Prometheus text", st == 200 and h["content-type"].startswith("text/plain")
          and "# TYPE fxscreen_http_requests_total counter" in text, st)
    ok200 = sum(float(l.split()[-1]) for l in text.splitlines()
                if l.startswith('fxscreen_http_requests_total{route="/api/predict",status="200"}'))
    check("metrics: predict 200s counted", ok200 >= 64 + 8, ok200)
    for name in ("fxscreen_http_request_duration_seconds_bucket", "fxscreen_batch_size_bucket",
                 "fxscreen_queue_depth", "fxscreen_images_total", "fxscreen_image_errors_total"):
        check("metrics: %s present" % name, name in text)
    errs = [l for l in text.splitlines() if l.startswith("fxscreen_image_errors_total")]
    check("metrics: image errors counted (415, 422 PNG, 422 TIFF)", errs and float(errs[0].split()[-1]) >= 3, errs)


def queue_and_shutdown(images):
    """A full queue answers 503 at once; SIGTERM finishes what is in flight."""
    srv = su.Server("--queue", "1", "--max-batch", "1", "--max-wait-ms", "0", "--threads", "16")
    data = [open(p, "rb").read() for p in images[:16]]

    def post(d):
        try:
            st, h, r = srv.json("POST", "/api/predict", d, {"Content-Type": "image/png"})
            return st, h.get("retry-after"), r
        except OSError as e:
            return -1, None, str(e)

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        res = list(ex.map(post, data))
    sts = [s for s, _, _ in res]
    check("queue of 1: some requests answered 503, the rest 200", 503 in sts and 200 in sts
          and set(sts) <= {200, 503}, sts)
    check("503 carries Retry-After and the error shape",
          all(ra and set(r) == {"error", "detail"} for s, ra, r in res if s == 503), res[:2])
    st, _, _ = srv.json("GET", "/api/health")
    check("serving after the queue overflowed", st == 200, st)
    srv.stop()

    # Results are freed after their TTL even when nobody asks for them.
    srv = su.Server("--result-ttl", "1")
    st, _, r = srv.json("POST", "/api/predict", data[0], {"Content-Type": "image/png"})
    st1, _, _ = srv.request("GET", r["result_url"]) if st == 200 else (0, 0, 0)
    time.sleep(2.5)
    _, _, text = srv.request("GET", "/metrics")
    held = [l for l in text.decode().splitlines() if l.startswith("fxscreen_results_stored ")]
    st2, _, _ = srv.request("GET", r["result_url"]) if st == 200 else (0, 0, 0)
    check("--result-ttl 1: the result is kept, then freed without any request touching it",
          st1 == 200 and held == ["fxscreen_results_stored 0"] and st2 == 404, (st, st1, held, st2))
    srv.stop()

    # --open: a free loopback port, and the default browser (xdg-open) is
    # started on it; a stand-in xdg-open records the URL it was given.
    fake = tempfile.mkdtemp(prefix="fx_xdg_")
    with open(os.path.join(fake, "xdg-open"), "w") as f:
        f.write("#!/bin/sh\necho \"$1\" > %s/opened\n" % fake)
    os.chmod(os.path.join(fake, "xdg-open"), 0o755)
    srv = su.Server("--open", env_extra={"PATH": fake + ":" + os.environ["PATH"]})
    opened = ""
    for _ in range(50):
        if os.path.exists(os.path.join(fake, "opened")):
            opened = open(os.path.join(fake, "opened")).read().strip()
            break
        time.sleep(0.1)
    st, _, _ = srv.json("GET", "/api/health")
    check("--open: the browser is opened on the server's loopback URL",
          opened == "http://127.0.0.1:%d/" % srv.port and st == 200, (opened, srv.port, st))
    srv.stop()
    shutil.rmtree(fake, ignore_errors=True)

    # Graceful stop: requests in flight when SIGTERM arrives all complete.
    srv = su.Server("--max-batch", "4", "--max-wait-ms", "50", "--threads", "8")
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(post, d) for d in data[:8]]
        time.sleep(0.3)
        srv.p.send_signal(signal.SIGTERM)
        res = [f.result() for f in futs]
    rc = srv.p.wait(60)
    srv.p.stdout.close()
    srv.err.close()
    check("SIGTERM with requests in flight: every one answered 200", [s for s, _, _ in res] == [200] * 8,
          [s for s, _, _ in res])
    check("SIGTERM: exit 0", rc == 0, rc)
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        closed = False
    except OSError:
        closed = True
    check("after SIGTERM the port is closed", closed)


if __name__ == "__main__":
    sys.exit(main())
