#!/usr/bin/env python3
"""`fxscreen serve` as a hospital deploys it: bearer tokens with roles made
by `fxscreen serve token add`, HTTPS with a certificate made by openssl in the
test (curl --cacert and Python's ssl as clients), every route with no token,
a wrong token and each role, results visible to their owner only, security
headers, the audit trail (a line per request, fsync'd before the answer,
`fxscreen audit verify` catching an edited and a removed line, SIGHUP
reopening it after rotation), the refusal of a non-loopback address
without --auth, rate-limited failed sign-ins, and no file but the audit
trail written, holding no image bytes."""
import base64
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402


class TLSServer(su.Server):
    def __init__(self, *args, ca=None, **kw):
        self.ca = ca
        super().__init__(*args, **kw)

    def conn(self, timeout=60):
        ctx = ssl.create_default_context(cafile=self.ca)
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)


def start_tls(args, ca):
    return TLSServer(*args, ca=ca)


def main():
    return su.run_tests("fx_serve_sec_", body)


def body(work):
    tokens = os.path.join(work, "tokens.yaml")
    tok = {}
    for name, role in (("dr-a", "clinician"), ("dr-b", "clinician"), ("pacs", "service"), ("ops", "admin")):
        p = subprocess.run([su.FX, "serve", "token", "add", name, "--role", role, "--file", tokens],
                           capture_output=True, text=True)
        tok[name] = p.stdout.strip()
        check("token add %s (%s): a 64-hex token printed once" % (name, role),
              p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}", tok[name]), (p.returncode, p.stderr))
    text = open(tokens).read()
    check("tokens.yaml holds hashes, never a token", all(t not in text for t in tok.values())
          and text.count("sha256:") == 4, text[:200])
    p = subprocess.run([su.FX, "serve", "token", "add", "x", "--role", "root", "--file", tokens],
                       capture_output=True, text=True)
    check("token add with an unknown role: exit 2 naming the roles", p.returncode == 2 and "clinician" in p.stderr,
          p.stderr)

    # A certificate for 127.0.0.1, made by openssl.
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True)
    check("openssl made a certificate", p.returncode == 0, p.stderr[-300:])

    audit = "audit.jsonl"
    srv = start_tls(["--auth", tokens, "--tls-cert", cert, "--tls-key", key, "--audit", audit], cert)
    audit_path = os.path.join(srv.cwd, audit)
    png = open(su.synth(os.path.join(work, "img"), 1, size=384, bits=16)[0], "rb").read()
    ino = Inotify([srv.cwd, srv.tmp])  # every file the server creates or writes there
    try:
        # curl over TLS with the test's CA.
        c = subprocess.run(["curl", "-sS", "--cacert", cert, "-D", "-", "https://127.0.0.1:%d/api/health" % srv.port],
                           capture_output=True, text=True)
        check("curl --cacert: HTTPS answers /api/health", c.returncode == 0 and '"status":"ok"' in c.stdout, c.stderr)
        hdr = c.stdout.lower()
        check("security headers: HSTS, CSP without inline script, nosniff, Referrer-Policy, no-store",
              "strict-transport-security" in hdr and "content-security-policy: default-src 'self'; script-src 'self'"
              in hdr and "x-content-type-options: nosniff" in hdr and "referrer-policy" in hdr
              and "cache-control: no-store" in hdr, hdr[:600])
        c = subprocess.run(["curl", "-sS", "--cacert", cert, "--tls-max", "1.1", "https://127.0.0.1:%d/" % srv.port],
                           capture_output=True, text=True)
        check("TLS 1.1 is refused", c.returncode != 0, c.returncode)
        c = subprocess.run(["curl", "-sS", "-H", "Authorization: Bearer " + tok["dr-a"], "-H",
                            "Content-Type: image/png", "--data-binary", "@-", "--cacert", cert,
                            "https://127.0.0.1:%d/api/predict" % srv.port], input=png, capture_output=True)
        check("curl: a clinician's predict over HTTPS", c.returncode == 0 and b'"probability"' in c.stdout,
              c.stdout[:200])

        def req(method, path, who, body=None, ctype=None):
            h = {}
            if who == "wrong":
                h["Authorization"] = "Bearer " + "0" * 64
            elif who:
                h["Authorization"] = "Bearer " + tok[who]
            if ctype:
                h["Content-Type"] = ctype
            st, hh, data = srv.request(method, path, body, h)
            return st, hh, data

        # Results made by dr-a.
        st, _, data = req("POST", "/api/predict", "dr-a", png, "image/png")
        rid = json.loads(data)["id"] if st == 200 else "0" * 32
        who_all = [None, "wrong", "dr-a", "dr-b", "pacs", "ops"]
        want = {
            ("GET", "/api/health"): [200] * 6,
            ("GET", "/api/ready"): [200] * 6,
            ("GET", "/openapi.json"): [200] * 6,
            ("GET", "/"): [200] * 6,
            ("POST", "/api/predict"): [401, 401, 200, 200, 200, 200],
            ("GET", "/api/results/" + rid): [401, 401, 200, 404, 404, 404],
            ("GET", "/api/results/%s/overlay.png" % rid): [401, 401, 200, 404, 404, 404],
            ("GET", "/api/model"): [401, 401, 403, 403, 403, 200],
            ("GET", "/metrics"): [401, 401, 403, 403, 403, 200],
            ("GET", "/api/audit"): [401, 401, 403, 403, 403, 200],
            ("GET", "/v2"): [200] * 6,
            ("GET", "/v2/health/live"): [200] * 6,
            ("GET", "/v2/health/ready"): [200] * 6,
            ("GET", "/v2/models/fxdemo"): [401, 401, 200, 200, 200, 200],
            ("GET", "/v2/models/fxdemo/ready"): [401, 401, 200, 200, 200, 200],
            ("POST", "/v2/models/fxdemo/infer"): [401, 401, 200, 200, 200, 200],
        }
        # The v2 infer body: the image as BYTES, base64 in JSON.
        v2 = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                     "data": [base64.b64encode(png).decode()]}]}).encode()
        bad = []
        for (method, path), sts in want.items():
            for who, w in zip(who_all, sts):
                v2post = path.startswith("/v2/")
                body = (v2 if v2post else png) if method == "POST" else None
                if body and who in (None, "wrong"):
                    # Answered 401 from the headers, after which the server
                    # closes the connection: a large body could meet a closed
                    # socket halfway.  The body does not matter here.
                    body = b"{}"
                st, hh, data = req(method, path, who, body,
                                   ("application/json" if v2post else "image/png") if method == "POST" else None)
                if st != w:
                    bad.append((method, path, who, st, w))
                if st == 401 and "bearer" not in hh.get("www-authenticate", "").lower():
                    bad.append((method, path, who, "no WWW-Authenticate"))
                if st >= 400 and path != "/":
                    try:
                        if set(json.loads(data)) != {"error", "detail"}:
                            bad.append((method, path, who, "error shape"))
                    except ValueError:
                        bad.append((method, path, who, "not JSON"))
        check("every route x (no token, wrong token, clinician, other clinician, service, admin)", not bad, bad[:6])
        st, _, doc = srv.request("GET", "/openapi.json")
        doc = json.loads(doc)
        undocumented = []
        for (method, path), sts in want.items():
            dpath = re.sub(r"/api/results/[0-9a-f]{32}", "/api/results/{id}", path).replace(
                "/v2/models/fxdemo", "/v2/models/{model}")
            for code in set(sts):
                if str(code) not in doc["paths"][dpath][method.lower()]["responses"]:
                    undocumented.append((method, dpath, code))
        check("every status seen is documented in /openapi.json (bearer scheme declared)",
              not undocumented and "bearer" in doc["components"]["securitySchemes"], undocumented)

        # A burst of 32 concurrent uploads while the directories are watched.
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            burst = list(ex.map(lambda i: req("POST", "/api/predict", ["dr-a", "dr-b", "pacs"][i % 3], png,
                                              "image/png")[0], range(32)))
        check("32 concurrent uploads with sign-in over TLS: all 200", burst == [200] * 32, burst)
        touched = ino.poll()
        check("inotify under load: no file created or written but the audit trail",
              touched == {audit_path}, sorted(touched))
        st, _, data = req("GET", "/api/audit?lines=5", "ops")
        lines = json.loads(data)["lines"] if st == 200 else []
        check("/api/audit (admin): the last lines as JSON", st == 200 and len(lines) == 5
              and all("prev" in x and "route" in x for x in lines), lines[:1])
    finally:
        ino.close()
        srv.stop()

    # The audit trail.
    raw = open(audit_path).read().splitlines()
    entries = [json.loads(x) for x in raw]
    check("an audit line for every answered request (%d)" % len(entries), len(entries) >= 60, len(entries))
    e = [x for x in entries if x["route"] == "/api/predict" and x["status"] == 200]
    check("predict lines: user, role, client, image SHA-256, prediction, probability, latency",
          e and all(x["user"] in ("dr-a", "dr-b", "pacs", "ops") and x["role"] and x["client"] == "127.0.0.1"
                    and re.fullmatch(r"[0-9a-f]{64}", x["image_sha256"]) and "probability" in x
                    and x["latency_ms"] >= 0 and x["time"].endswith("Z") for x in e), e[:1])
    blob = open(audit_path, "rb").read()
    check("no token and no image bytes in the audit trail",
          all(t.encode() not in blob for t in tok.values()) and png[1000:1064] not in blob)
    p = subprocess.run([su.FX, "audit", "verify", audit_path], capture_output=True, text=True)
    check("audit verify: the chain is intact", p.returncode == 0 and "intact" in p.stdout, p.stdout + p.stderr)
    edited = os.path.join(work, "edited.jsonl")
    lines = list(raw)
    lines[5] = lines[5].replace('"status":200', '"status":201')
    open(edited, "w").write("\n".join(lines) + "\n")
    p = subprocess.run([su.FX, "audit", "verify", edited], capture_output=True, text=True)
    check("audit verify: an edited line is caught (line 7 no longer follows)",
          p.returncode == 1 and "line 7" in p.stdout, p.stdout)
    removed = os.path.join(work, "removed.jsonl")
    open(removed, "w").write("\n".join(raw[:10] + raw[11:]) + "\n")
    p = subprocess.run([su.FX, "audit", "verify", removed], capture_output=True, text=True)
    check("audit verify: a removed line is caught", p.returncode == 1 and "line 11" in p.stdout, p.stdout)

    # No file but the audit trail was written by the server.
    left = [f for f in srv.disk_clean() if os.path.basename(f) != audit]
    check("nothing but the audit trail in the working and temporary directories", not left, left)

    # SIGHUP after rotation: a new file whose chain continues the old one.
    srv = start_tls(["--auth", tokens, "--tls-cert", cert, "--tls-key", key, "--audit", audit], cert)
    try:
        srv.request("GET", "/api/health")
        ap = os.path.join(srv.cwd, audit)
        os.rename(ap, ap + ".1")
        srv.p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        srv.request("GET", "/api/health")
        srv.request("GET", "/api/ready")
    finally:
        srv.stop()
    old = open(ap + ".1").read().splitlines()
    new = open(ap).read().splitlines() if os.path.exists(ap) else []
    import hashlib
    last = hashlib.sha256(old[-1].encode()).hexdigest() if old else ""
    p = subprocess.run([su.FX, "audit", "verify", ap, "--prev", last], capture_output=True, text=True)
    check("SIGHUP reopens the audit file; the new one continues the chain (verify --prev)",
          len(new) >= 2 and p.returncode == 0, (len(new), p.stdout, p.stderr))

    # Without --auth, a non-loopback address is refused unless --insecure.
    p = subprocess.run([su.FX, "serve", "--model", su.MODEL, "--listen", "0.0.0.0:0"], capture_output=True,
                       text=True, timeout=60)
    check("0.0.0.0 without --auth: exit 2 naming --auth and --insecure",
          p.returncode == 2 and "--auth" in p.stderr and "--insecure" in p.stderr, p.stderr)
    q = subprocess.Popen([su.FX, "serve", "--model", su.MODEL, "--listen", "0.0.0.0:0", "--insecure"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = q.stdout.readline()
    q.send_signal(signal.SIGTERM)
    _, err = q.communicate(timeout=60)
    check("0.0.0.0 with --insecure: serves, with a warning about clear text",
          "listening" in line and "not a loopback address" in err and q.returncode == 0, (line, err[-300:]))

    # Failed sign-ins are rate-limited per address.
    srv = su.Server("--auth", tokens)
    try:
        codes = [srv.request("GET", "/api/model", None, {"Authorization": "Bearer nope"})[0] for _ in range(12)]
        good = srv.request("GET", "/api/model", None, {"Authorization": "Bearer " + tok["ops"]})[0]
        check("10 wrong tokens, then 429 even for a good one from that address",
              codes[:10] == [401] * 10 and codes[10:] == [429, 429] and good == 429, (codes, good))
        st, _, _ = srv.json("GET", "/api/health")
        check("public routes still answer", st == 200, st)
    finally:
        srv.stop()
    trickle()


class Inotify:
    """Linux inotify through ctypes: every file created, written or moved in
    the watched directories (recursively added at start)."""

    IN_CREATE, IN_CLOSE_WRITE, IN_MOVED_TO, IN_MODIFY = 0x100, 0x8, 0x80, 0x2

    def __init__(self, dirs):
        import ctypes
        import ctypes.util
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        self.wd = {}
        for d in dirs:
            w = self.libc.inotify_add_watch(self.fd, d.encode(), self.IN_CREATE | self.IN_CLOSE_WRITE |
                                            self.IN_MOVED_TO | self.IN_MODIFY)
            self.wd[w] = d
        self.seen = set()

    def poll(self):
        import struct
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.seen
            i = 0
            while i + 16 <= len(buf):
                wd, mask, cookie, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace")
                self.seen.add(os.path.join(self.wd.get(wd, "?"), name))
                i += 16 + n

    def close(self):
        os.close(self.fd)


def trickle():
    """--request-timeout: an upload that trickles in (never idle long enough
    for the 30 s inactivity timeout) is cut; others are served meanwhile."""
    import socket
    srv = su.Server("--request-timeout", "2")
    try:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        t0, closed = time.time(), False
        while time.time() - t0 < 10:
            try:
                s.sendall(b"\0" * 16)
            except OSError:
                closed = True
                break
            s.settimeout(0.05)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.4)
        dt = time.time() - t0
        st, _, _ = srv.json("GET", "/api/health")
        check("--request-timeout 2: a trickling upload is cut after about 2 s (%.1f s)" % dt,
              closed and 1.5 < dt < 6, (closed, dt))
        check("others served meanwhile", st == 200, st)
        s.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
