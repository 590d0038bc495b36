"""Helpers for the Python tests: the build's paths, check() (PASS/FAIL lines
and a failure count), run_tests() (the steps in one temporary directory, the
exit code); and for the `fxscreen serve` tests a real server on a free
loopback port (its own empty working and temporary directories, so the tests
can check that nothing was written to disk), HTTP to it, stopping it."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.abspath(os.path.join(BUILD, "fxscreen"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "models", "fxdemo.onnx")

failures = 0
prefix = ""  # put before every check's name (the ASan pass)


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + prefix + name + ("" if ok else ": " + str(detail)))
    sys.stdout.flush()
    if not ok:
        failures += 1
    return ok


def sanitizer_env(**extra):
    """The environment for the ASan+UBSan+LeakSanitizer CLI (build/asan/fxscreen):
    leaks reported, the first error fatal, with its stack."""
    return dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", **extra)


def chromium(width, height, mobile=False, args=(), logs=("browser",)):
    """Headless Chromium (Debian's chromium + chromium-driver) through Selenium at
    width x height, phone-emulated (pixel ratio 2, touch) when mobile; logs named
    are kept for get_log ("browser": the console, "performance": the network)."""
    import shutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=%d,%d" % (width, height)) + tuple(args):
        o.add_argument(a)
    if mobile:
        o.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": True}})
    o.set_capability("goog:loggingPrefs", {k: "ALL" for k in logs})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)


class Server:
    """fxscreen serve --listen 127.0.0.1:0 with extra arguments."""

    def __init__(self, *args, model=MODEL, binary=None, env_extra=None):
        self.cwd = tempfile.mkdtemp(prefix="fx_serve_cwd_")
        self.tmp = tempfile.mkdtemp(prefix="fx_serve_tmp_")
        env = dict(os.environ, TMPDIR=self.tmp,
                   ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:exitcode=86",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", **(env_extra or {}))
        self.err = open(os.path.join(tempfile.gettempdir(), "fx_serve_%d.log" % os.getpid()), "w+")
        self.p = subprocess.Popen([binary or FX, "serve", "--model", model, "--listen", "127.0.0.1:0"] + list(args),
                                  cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"https?://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.p.kill()
            self.err.seek(0)
            raise RuntimeError("serve did not start: %r %s" % (line, self.err.read()))
        self.port = int(m.group(1))

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = self.conn(timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        try:
            return st, h, json.loads(data)
        except ValueError:
            return st, h, data

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = None
        self.p.stdout.close()
        self.err.close()
        return rc

    def disk_clean(self):
        """Names of files the server left in its working or temporary directory."""
        left = []
        for d in (self.cwd, self.tmp):
            for root, _, files in os.walk(d):
                left += [os.path.join(root, f) for f in files]
        return left


def multipart(fields):
    """fields: list of (name, filename or None, bytes) -> (body, content type)."""
    b = "fxb" + uuid.uuid4().hex
    out = b""
    for name, fn, data in fields:
        out += b"--" + b.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name + ('; filename="%s"' % fn if fn else "")
        out += ("Content-Disposition: %s\r\n" % disp).encode()
        if fn:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + b.encode() + b"--\r\n"
    return out, "multipart/form-data; boundary=" + b


def synth(out, n, size=512, bits=16, fmt="png", seed=1):
    subprocess.run([FX, "synth", "--out", out, "-n", str(n), "--size", str(size), "--bits", str(bits),
                    "--format", fmt, "--seed", str(seed)], check=True, capture_output=True)
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith((".png", ".tif", ".tiff")))


def run_tests(prefix, *steps):
    """Runs each step(work) in one fresh temporary directory, removed after;
    prints the failure count and returns the exit code."""
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        for step in steps:
            step(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s)" % failures)
    return 1 if failures else 0
