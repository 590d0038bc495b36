#!/usr/bin/env python3
"""The Open Inference Protocol (KServe v2) of `fxscreen serve`, with
tritonclient[http] from PyPI (build/venv, scripts/venv.sh) as the client,
unchanged:

- health, server and model metadata, model readiness;
- INPUT, a preprocessed FP32 tensor, as binary and as JSON: LOGITS against
  PyTorch on the same weights and tensor, the probabilities against a softmax
  of them, HEATMAP/PEAK/BBOX against `fxscreen model cam` on the same tensor
  (itself checked against PyTorch Grad-CAM in test_cam.py);
- IMAGE, radiograph files as BYTES (binary, and base64 in JSON): the same
  probability, peak, box and heat map as `fxscreen run` on the files;
- malformed requests answered 4xx in the protocol's error shape, the server
  serving on;
- with --auth, TLS and --audit: tokens on the client's headers, the
  certificate checked, an audit line per request with the image hashes."""
import concurrent.futures
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402

try:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException
except ImportError as e:  # the venv is made by `make deps` (scripts/venv.sh)
    print("FAIL tritonclient[http] importable (run `make deps` to make build/venv): %s" % e)
    sys.exit(1)

OUTS = ["LOGITS", "PROBABILITIES", "PROBABILITY", "PREDICTION", "HEATMAP", "PEAK", "BBOX"]
H, W = 48, 64  # the test model's input: not square


def make_model(torch, path):
    """A small fracture-classifier-shaped CNN, exported to ONNX."""
    torch.manual_seed(7)
    nn = torch.nn
    m = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    m.eval()
    torch.onnx.export(m, torch.zeros(1, 1, H, W), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=13)
    return m


def infer(cl, x, binary, names=OUTS, **kw):
    i = th.InferInput("INPUT", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    outs = [th.InferRequestedOutput(n, binary_data=binary) for n in names] if names else None
    return cl.infer("tiny", [i], outputs=outs, **kw)


def raw(srv, path, doc, binary=b"", headers=None, method="POST"):
    """A v2 request by hand: JSON header, then binary bytes."""
    head = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    h = {"Content-Type": "application/json"} if not binary else {"Inference-Header-Content-Length": str(len(head))}
    h.update(headers or {})
    st, hh, data = srv.request(method, path, head + binary, h)
    try:
        js = json.loads(data)
    except ValueError:
        js = data
    return st, hh, js


def tensor_checks(work):
    import torch
    model = os.path.join(work, "tiny.onnx")
    net = make_model(torch, model)
    cfg = os.path.join(work, "tiny.yaml")
    with open(cfg, "w") as f:
        f.write("input: {height: %d, width: %d, channels: 1}\nnormalize: {mean: [0.5], std: [0.25]}\n"
                "model: {classes: [normal, fracture], positive: fracture, threshold: 0.5}\n" % (H, W))
    srv = su.Server("--config", cfg, "--max-batch", "4", model=model)
    cl = th.InferenceServerClient("127.0.0.1:%d" % srv.port, concurrency=4)

    check("is_server_live", cl.is_server_live())
    check("is_server_ready", cl.is_server_ready())
    check("is_model_ready('tiny') and version 1", cl.is_model_ready("tiny") and cl.is_model_ready("tiny", "1"))
    check("is_model_ready('nope') is false", not cl.is_model_ready("nope"))
    sm = cl.get_server_metadata()
    check("server metadata names the binary-tensor extension",
          sm.get("name") == "fxscreen" and "binary_tensor_data" in sm.get("extensions", []), sm)
    mm = cl.get_model_metadata("tiny")
    ins = {t["name"]: (t["datatype"], t["shape"]) for t in mm.get("inputs", [])}
    outs = {t["name"]: (t["datatype"], t["shape"]) for t in mm.get("outputs", [])}
    check("model metadata: INPUT FP32 [-1, 1, 48, 64], IMAGE BYTES [-1]",
          ins == {"INPUT": ("FP32", [-1, 1, H, W]), "IMAGE": ("BYTES", [-1])}, ins)
    check("model metadata: the seven outputs with their shapes",
          outs == {"LOGITS": ("FP32", [-1, 2]), "PROBABILITIES": ("FP32", [-1, 2]), "PROBABILITY": ("FP32", [-1]),
                   "PREDICTION": ("BYTES", [-1]), "HEATMAP": ("UINT8", [-1, H, W]), "PEAK": ("FP32", [-1, 2]),
                   "BBOX": ("FP32", [-1, 4])}, outs)
    st, _, api = srv.json("GET", "/api/model")
    check("model metadata's sha256 is /api/model's", mm.get("sha256") == api.get("sha256"), (mm.get("sha256"),))
    for name, ver in (("nope", ""), ("tiny", "2")):
        try:
            cl.get_model_metadata(name, ver)
            check("metadata of %s version %r: an error" % (name, ver), False)
        except InferenceServerException as e:
            check("metadata of %s version %r: 404 naming the model served" % (name, ver),
                  "404" in str(e.status()) and "tiny" in e.message(), (e.status(), e.message()))

    # ---- INPUT: a preprocessed tensor, five images.
    rng = np.random.RandomState(3)
    x = rng.randn(5, 1, H, W).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    inh5, camh5 = os.path.join(work, "in.h5"), os.path.join(work, "cam.h5")
    with h5py.File(inh5, "w") as f:
        f["input"] = x
    p = subprocess.run([su.FX, "model", "cam", model, "--input", inh5, "--output", camh5, "--target", "1"],
                       capture_output=True, text=True)
    check("reference: fxscreen model cam", p.returncode == 0, p.stderr)
    with h5py.File(camh5, "r") as f:
        cam, peak, box = f["cam"][:], f["peak"][:], f["box"][:]

    r = infer(cl, x, True, request_id="req-17")
    resp = r.get_response()
    got = {n: r.as_numpy(n) for n in OUTS}
    check("binary: the outputs asked for, in order, with binary_data_size",
          [o["name"] for o in resp["outputs"]] == OUTS
          and all("binary_data_size" in o.get("parameters", {}) for o in resp["outputs"]), resp)
    check("binary: the request id echoed, model name and version",
          resp.get("id") == "req-17" and resp.get("model_name") == "tiny" and resp.get("model_version") == "1", resp)
    d = np.abs(got["LOGITS"] - ref).max()
    check("LOGITS [5, 2] = PyTorch on the same tensor (1e-4)", got["LOGITS"].shape == (5, 2) and d < 1e-4, d)
    sm_ref = torch.softmax(torch.from_numpy(got["LOGITS"].astype(np.float64)), 1).numpy()
    check("PROBABILITIES = softmax(LOGITS) (1e-6)", np.abs(got["PROBABILITIES"] - sm_ref).max() < 1e-6,
          got["PROBABILITIES"])
    check("PROBABILITY = PROBABILITIES[:, fracture]",
          got["PROBABILITY"].shape == (5,) and np.array_equal(got["PROBABILITY"], got["PROBABILITIES"][:, 1]))
    want = [b"fracture" if q >= 0.5 else b"normal" for q in got["PROBABILITY"]]
    check("PREDICTION: the class name by the threshold", list(got["PREDICTION"]) == want, got["PREDICTION"])
    hd = np.abs(got["HEATMAP"].astype(int) - cam * 255).max()
    check("HEATMAP UINT8 [5, 48, 64] = model cam x 255 (within 1)",
          got["HEATMAP"].dtype == np.uint8 and got["HEATMAP"].shape == (5, H, W) and hd <= 1.0, hd)
    check("PEAK = model cam's peak, model pixels (1e-3)", np.allclose(got["PEAK"], peak, atol=1e-3),
          (got["PEAK"][:2], peak[:2]))
    check("BBOX = model cam's box, model pixels (1e-3)", np.allclose(got["BBOX"], box, atol=1e-3),
          (got["BBOX"][:2], box[:2]))

    rj = infer(cl, x, False)
    js = rj.get_response()
    check("JSON: no binary_data_size, data inline",
          all("data" in o and "parameters" not in o for o in js["outputs"]), js["outputs"][0])
    same = all(np.array_equal(rj.as_numpy(n).astype(got[n].dtype), got[n]) for n in OUTS if n != "PREDICTION")
    check("JSON tensors and outputs: the same values as binary", same and
          [s.encode() if isinstance(s, str) else s for s in rj.as_numpy("PREDICTION")] == want)
    rd = infer(cl, x[:1], True, names=None)
    check("no outputs named: LOGITS, PROBABILITIES, PROBABILITY, PREDICTION",
          [o["name"] for o in rd.get_response()["outputs"]] == OUTS[:4], rd.get_response())
    iv = th.InferInput("INPUT", [1, 1, H, W], "FP32")
    iv.set_data_from_numpy(x[1:2])
    rv = cl.infer("tiny", [iv], model_version="1")
    check("/versions/1/infer: the same LOGITS", np.array_equal(rv.as_numpy("LOGITS"), got["LOGITS"][1:2]))

    # Concurrent requests batch with each other and give the same answers.
    def one(i):
        c = th.InferenceServerClient("127.0.0.1:%d" % srv.port)
        return infer(c, x[i % 5:i % 5 + 1], i % 2 == 0).as_numpy("LOGITS")
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        res = list(ex.map(one, range(24)))
    check("24 concurrent infer requests: the same LOGITS as one by one (1e-5)",
          all(np.abs(res[i] - got["LOGITS"][i % 5:i % 5 + 1]).max() < 1e-5 for i in range(24)))

    try:
        it = th.InferInput("INPUT", [1, 1, W, H], "FP32")
        it.set_data_from_numpy(np.zeros((1, 1, W, H), np.float32))
        cl.infer("tiny", [it])
        check("a transposed INPUT: an error", False)
    except InferenceServerException as e:
        check("a transposed INPUT: 400 naming the shape to send",
              "400" in str(e.status()) and "[N, 1, 48, 64]" in e.message(), (e.status(), e.message()))

    malformed(srv)
    st, _, _ = srv.json("GET", "/v2/health/live")
    check("serving after the malformed requests", st == 200 and cl.is_model_ready("tiny"), st)
    st, _, text = srv.request("GET", "/metrics")
    m = re.search(rb'fxscreen_http_requests_total\{route="/v2/models/\{model\}/infer",status="200"\} (\d+)', text)
    check("metrics: infer 200s counted under their own route", m and int(m.group(1)) >= 28, m and m.group(0))
    cl.close()
    check("SIGTERM: exit 0", srv.stop() == 0)


def malformed(srv):
    """Hand-made bad infer requests to the tiny model's server."""
    url = "/v2/models/tiny/infer"
    ok_in = {"name": "INPUT", "datatype": "FP32", "shape": [1, 1, H, W]}
    z = np.zeros((1, 1, H, W), np.float32).tobytes()
    cases = [
        ("not JSON", b"{", b"", 400, "JSON"),
        ("empty body", b"", b"", 400, "JSON"),
        ("no inputs", {"outputs": []}, b"", 400, "one input"),
        ("two inputs", {"inputs": [ok_in, ok_in]}, b"", 400, "one input"),
        ("unknown input", {"inputs": [dict(ok_in, name="X", data=[0])]}, b"", 400, "unknown input"),
        ("FP16 INPUT", {"inputs": [dict(ok_in, datatype="FP16", data=[0])]}, b"", 400, "FP32"),
        ("N = 0", {"inputs": [dict(ok_in, shape=[0, 1, H, W], data=[])]}, b"", 400, "1 to"),
        ("N over the queue", {"inputs": [dict(ok_in, shape=[100000, 1, H, W], data=[])]}, b"", 400, "1 to"),
        ("negative shape", {"inputs": [dict(ok_in, shape=[-1, 1, H, W], data=[])]}, b"", 400, "shape"),
        ("too few numbers", {"inputs": [dict(ok_in, data=[1.0, 2.0])]}, b"", 400, "numbers"),
        ("a string in data", {"inputs": [dict(ok_in, data=["a"] * (H * W))]}, b"", 400, "numbers"),
        ("no data", {"inputs": [ok_in]}, b"", 400, "neither"),
        ("binary size mismatch", {"inputs": [dict(ok_in, parameters={"binary_data_size": 12})]}, z, 400,
         "binary_data_size"),
        ("binary bytes short", {"inputs": [dict(ok_in, parameters={"binary_data_size": len(z) - 4})]}, z[:-4],
         400, "bytes"),
        ("unknown output", {"inputs": [dict(ok_in, data=[0.0] * (H * W))], "outputs": [{"name": "FOO"}]}, b"",
         400, "unknown output"),
        ("classification", {"inputs": [dict(ok_in, data=[0.0] * (H * W))],
                            "outputs": [{"name": "LOGITS", "parameters": {"classification": 2}}]}, b"", 400,
         "classification"),
        ("id not a string", {"id": 5, "inputs": [dict(ok_in, data=[0.0] * (H * W))]}, b"", 400, "'id'"),
        ("IMAGE not base64", {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["*"]}]},
         b"", 400, "base64"),
        ("IMAGE not an image", {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                            "data": ["aGVsbG8gd29ybGQ="]}]}, b"", 400, "IMAGE[0]"),
        ("IMAGE length past the end", {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                                   "parameters": {"binary_data_size": 8}}]},
         struct.pack("<I", 1000) + b"abcd", 400, "announced"),
    ]
    bad = []
    for name, doc, binary, want_st, want_msg in cases:
        st, _, js = raw(srv, url, doc, binary)
        if st != want_st or not isinstance(js, dict) or want_msg not in js.get("error", ""):
            bad.append((name, st, js))
    check("%d malformed infer requests: 4xx with {\"error\"} naming the fault" % len(cases), not bad, bad[:3])
    st, hh, _ = raw(srv, url, {"inputs": [ok_in]}, headers={"Inference-Header-Content-Length": "99999"})
    check("Inference-Header-Content-Length past the body: 400", st == 400, st)
    st, hh, _ = srv.json("GET", url)
    check("GET .../infer: 405, Allow: POST", st == 405 and hh.get("allow") == "POST", (st, hh.get("allow")))
    st, hh, _ = raw(srv, "/v2/models/tiny", {"inputs": []})
    check("POST /v2/models/tiny: 405, Allow: GET, HEAD", st == 405 and hh.get("allow") == "GET, HEAD",
          (st, hh.get("allow")))
    st, _, js = raw(srv, url, {"inputs": [ok_in]}, headers={"Content-Encoding": "gzip"})
    check("a gzip body: 415 saying to send it uncompressed", st == 415 and "uncompressed" in js.get("error", ""), js)
    st, _, js = raw(srv, "/v2/models/nope/infer", {"inputs": [ok_in]})
    check("infer on an unknown model: 404", st == 404 and "tiny" in js.get("error", ""), js)


def asan_pass(work):
    """The infer route's parsing under AddressSanitizer and UBSan: the bad
    requests, a good tensor and a good image; the server must exit 0."""
    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    if not os.path.exists(asan):
        print("SKIP asan pass: %s not built (make test builds it)" % asan)
        return
    su.prefix = "asan: "
    srv = su.Server("--config", os.path.join(work, "tiny.yaml"), model=os.path.join(work, "tiny.onnx"),
                    binary=asan)
    malformed(srv)
    cl = th.InferenceServerClient("127.0.0.1:%d" % srv.port)
    x = np.random.RandomState(5).randn(2, 1, H, W).astype(np.float32)
    check("a good tensor", infer(cl, x, True).as_numpy("HEATMAP").shape == (2, H, W))
    png = open(su.synth(os.path.join(work, "aimg"), 1, size=200, bits=16, seed=2)[0], "rb").read()
    i = th.InferInput("IMAGE", [2], "BYTES")
    i.set_data_from_numpy(np.array([png, png], dtype=object))
    check("a good image pair", cl.infer("tiny", [i]).as_numpy("PROBABILITY").shape == (2,))
    cl.close()
    check("exit 0 (no sanitizer report)", srv.stop() == 0)
    su.prefix = ""


def image_checks(work):
    images = su.synth(os.path.join(work, "img"), 3, size=384, bits=16, seed=4)
    images += su.synth(os.path.join(work, "imgt"), 1, size=300, bits=16, fmt="tiff", seed=5)
    out = os.path.join(work, "run")
    p = subprocess.run([su.FX, "run", "--model", su.MODEL, "--out", out, "--quiet"] + images,
                       capture_output=True, text=True)
    check("reference: fxscreen run on the four files", p.returncode == 0, p.stderr)
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        order = [os.path.abspath(q.decode() if isinstance(q, bytes) else q) for q in f["path"][:]]
        idx = [order.index(os.path.abspath(q)) for q in images]
        prob, peak, box, heat = (f[k][:][idx] for k in ("probability", "peak_xy", "bbox", "heatmap"))
    srv = su.Server()
    cl = th.InferenceServerClient("127.0.0.1:%d" % srv.port)
    files = [open(q, "rb").read() for q in images]
    i = th.InferInput("IMAGE", [len(files)], "BYTES")
    i.set_data_from_numpy(np.array(files, dtype=object), binary_data=True)
    r = cl.infer("fxdemo", [i], outputs=[th.InferRequestedOutput(n) for n in OUTS])
    g = {n: r.as_numpy(n) for n in OUTS}
    check("IMAGE (4 files, binary): PROBABILITY = fxscreen run's (1e-6)",
          np.abs(g["PROBABILITY"] - prob).max() < 1e-6, (g["PROBABILITY"], prob))
    check("IMAGE: PEAK and BBOX = run's, original pixels (1e-3)",
          np.allclose(g["PEAK"], peak, atol=1e-3) and np.allclose(g["BBOX"], box, atol=1e-3), (g["PEAK"], peak))
    check("IMAGE: HEATMAP = run's heatmap", np.array_equal(g["HEATMAP"], heat),
          np.abs(g["HEATMAP"].astype(int) - heat).max())
    b64 = [__import__("base64").b64encode(b).decode() for b in files[:2]]
    st, _, js = raw(srv, "/v2/models/fxdemo/infer",
                    {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2, 1], "data": [[b64[0]], [b64[1]]]}],
                     "outputs": [{"name": "PROBABILITY"}, {"name": "PREDICTION"}]})
    pj = next((o for o in js.get("outputs", []) if o["name"] == "PROBABILITY"), {}) if st == 200 else {}
    check("IMAGE as base64 in JSON ([2, 1]): the same PROBABILITY",
          st == 200 and np.abs(np.array(pj.get("data", [9, 9])) - prob[:2]).max() < 1e-6, (st, js))
    st, _, pr = srv.json("POST", "/api/predict", files[0], {"Content-Type": "image/png"})
    check("/api/predict on the same file: the same probability",
          st == 200 and abs(pr["probability"] - g["PROBABILITY"][0]) < 1e-6, (st, pr.get("probability")))
    j = th.InferInput("IMAGE", [3], "BYTES")
    j.set_data_from_numpy(np.array([files[0], files[1][:500], files[2]], dtype=object))
    try:
        cl.infer("fxdemo", [j])
        check("a truncated file among three: an error", False)
    except InferenceServerException as e:
        check("a truncated file among three: 400 naming IMAGE[1]",
              "400" in str(e.status()) and "IMAGE[1]" in e.message(), (e.status(), e.message()))
    check("serving after it", cl.is_server_ready())
    cl.close()
    check("SIGTERM: exit 0 and no file written", srv.stop() == 0 and not srv.disk_clean(), srv.disk_clean())


def secure_checks(work):
    tokens = os.path.join(work, "tokens.yaml")
    tok = {}
    for name, role in (("pacs", "service"), ("dr-a", "clinician")):
        p = subprocess.run([su.FX, "serve", "token", "add", name, "--role", role, "--file", tokens],
                           capture_output=True, text=True)
        tok[name] = p.stdout.strip()
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True)
    check("openssl made a certificate", p.returncode == 0, p.stderr[-300:])
    srv = su.Server("--auth", tokens, "--tls-cert", cert, "--tls-key", key, "--audit", "audit.jsonl")
    # The client's own way to trust a CA: ssl_options ca_certs, verified by
    # its default context factory (ssl.create_default_context).
    cl = th.InferenceServerClient("127.0.0.1:%d" % srv.port, ssl=True, ssl_options={"ca_certs": cert})
    auth = {"Authorization": "Bearer " + tok["pacs"]}
    check("TLS: is_server_live without a token (public)", cl.is_server_live())
    try:
        cl.get_model_metadata("fxdemo")
        check("model metadata without a token: refused", False)
    except InferenceServerException as e:
        check("model metadata without a token: 401", "401" in str(e.status()), (e.status(), e.message()))
    check("model metadata with the service token", cl.get_model_metadata("fxdemo", headers=auth)["name"] == "fxdemo")
    files = [open(q, "rb").read() for q in su.synth(os.path.join(work, "simg"), 2, size=256, bits=16, seed=9)]

    def image_input(bs):
        i = th.InferInput("IMAGE", [len(bs)], "BYTES")
        i.set_data_from_numpy(np.array(bs, dtype=object))
        return i
    try:
        cl.infer("fxdemo", [image_input(files[:1])])
        check("infer without a token: refused", False)
    except InferenceServerException as e:
        check("infer without a token: 401", "401" in str(e.status()), (e.status(), e.message()))
    try:
        cl.infer("fxdemo", [image_input(files[:1])], headers={"Authorization": "Bearer " + "0" * 64})
        check("infer with a wrong token: refused", False)
    except InferenceServerException as e:
        check("infer with a wrong token: 401", "401" in str(e.status()), (e.status(), e.message()))
    r1 = cl.infer("fxdemo", [image_input(files[:1])], headers=auth)
    r2 = cl.infer("fxdemo", [image_input(files)], headers={"Authorization": "Bearer " + tok["dr-a"]})
    check("infer over TLS with the service and the clinician token",
          r1.as_numpy("PROBABILITY").shape == (1,) and r2.as_numpy("PROBABILITY").shape == (2,))
    try:
        bad = th.InferenceServerClient("127.0.0.1:%d" % srv.port, ssl=True)
        bad.is_server_live()
        check("a client that does not trust the certificate: refused", False)
    except Exception as e:  # the certificate is self-signed: verification fails
        check("a client that does not trust the certificate: refused", "CERTIFICATE" in str(e).upper(), e)
    cl.close()
    check("SIGTERM: exit 0", srv.stop() == 0)
    lines = [json.loads(x) for x in open(os.path.join(srv.cwd, "audit.jsonl"))]
    inf = [x for x in lines if x.get("route") == "/v2/models/fxdemo/infer"]
    sha = [hashlib.sha256(b).hexdigest() for b in files]
    check("audit: a line per infer request (two refused, two served)",
          [x.get("status") for x in inf] == [401, 401, 200, 200], [x.get("status") for x in inf])
    ok = [x for x in inf if x.get("status") == 200]
    check("audit: user, role, the image's SHA-256 and the result",
          len(ok) == 2 and ok[0].get("user") == "pacs" and ok[0].get("role") == "service"
          and ok[0].get("image_sha256") == sha[0]
          and abs(ok[0].get("probability", -1) - float(r1.as_numpy("PROBABILITY")[0])) < 1e-6, ok[:1])
    imgs = ok[1].get("images", []) if len(ok) == 2 else []
    check("audit: a request of two images lists each one's hash and result",
          [x.get("image_sha256") for x in imgs] == sha and all("prediction" in x for x in imgs), imgs)
    check("audit: no token and no pixels in the trail",
          all(t not in open(os.path.join(srv.cwd, "audit.jsonl")).read() for t in tok.values()))
    p = subprocess.run([su.FX, "audit", "verify", os.path.join(srv.cwd, "audit.jsonl")], capture_output=True,
                       text=True)
    check("fxscreen audit verify: the chain holds", p.returncode == 0, p.stdout + p.stderr)


def main():
    return su.run_tests("fx_kserve_", tensor_checks, asan_pass, image_checks, secure_checks)


if __name__ == "__main__":
    sys.exit(main())
