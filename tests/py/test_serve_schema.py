#!/usr/bin/env python3
"""schemathesis (PyPI, build/venv) against `fxscreen serve`'s own
/openapi.json, signed in and over TLS: every operation, /api and /v2, with
generated and mutated requests, stateful sequences through the documented
links (predict -> results), and every check schemathesis has but one:
no server error, status codes, content types, headers and bodies as
documented, Allow on 405, auth not ignored, invalid data rejected.  The one
left out, positive_data_acceptance, expects any schema-valid body to be
accepted, and a schema cannot say "a decodable radiograph": random bytes
are rightly refused with 415/422.

Then the same fuzzing, for server errors only, against the build under
AddressSanitizer and UBSan, which must exit 0.  /metrics must count no 5xx
but 503 (busy) from either run."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402

ST = os.path.join(os.path.dirname(sys.executable), "schemathesis")
SEED = "20261203"  # fixed: a failure is replayed by running the test again


def schemathesis(work, url, token, checks, examples, cert=None):
    cfg = os.path.join(work, "schemathesis.toml")
    with open(cfg, "w") as f:  # the path parameters of the one model served
        f.write('[parameters]\n"path.model" = "fxdemo"\n"path.version" = "1"\n')
    cmd = [ST, "--config-file", cfg, "run", url + "/openapi.json", "-H", "Authorization: Bearer " + token,
           "--checks", checks, "--max-examples", str(examples), "--seed", SEED, "--generation-database", "none",
           "--workers", "1",  # one thread: hypothesis's AST cache is not thread-safe on Python 3.11
           "--report", "junit", "--report-junit-path", os.path.join(work, "junit.xml")]
    if checks == "all":
        cmd += ["--exclude-checks", "positive_data_acceptance"]
    if cert:
        cmd += ["--tls-verify", cert]
    p = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    out = p.stdout + p.stderr
    k = out.find("=== FAILURES") if "=== FAILURES" in out else out.find("=== ERRORS")
    out = out[k:] if k >= 0 else out[-3000:]  # what went wrong, for the FAIL line
    m = re.search(r"(\d+) generated, (\d+) passed", out)
    return p.returncode, (int(m.group(1)), int(m.group(2))) if m else (0, 0), out


def server_errors(srv, conn=None):
    """5xx answers other than 503, from /metrics."""
    try:
        c = conn or srv.conn()
        c.request("GET", "/metrics", headers={"Authorization": "Bearer " + srv.token})
        text = c.getresponse().read().decode()
        c.close()
    except OSError as e:  # the server is gone
        return "no answer: %s" % e
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("fxscreen_http_requests_total{") and re.search(r'status="5\d\d"', line)
               and 'status="503"' not in line)


def main():
    if not os.path.exists(ST):
        print("FAIL schemathesis installed in %s (run `make deps` to make build/venv)" % ST)
        return 1
    return su.run_tests("fx_serve_schema_", body)


def body(work):
    tokens = os.path.join(work, "tokens.yaml")
    p = subprocess.run([su.FX, "serve", "token", "add", "ops", "--role", "admin", "--file", tokens],
                       capture_output=True, text=True)
    token = p.stdout.strip()
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True)
    check("an admin token and a certificate", token and p.returncode == 0, p.stderr[-200:])

    srv = su.Server("--auth", tokens, "--tls-cert", cert, "--tls-key", key)
    srv.token = token
    import http.client
    import ssl
    tls = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=60,
                                      context=ssl.create_default_context(cafile=cert))
    rc, (gen, passed), out = schemathesis(work, "https://127.0.0.1:%d" % srv.port, token, "all", 40, cert)
    check("schemathesis, every check but positive_data_acceptance, signed in over TLS: exit 0", rc == 0,
          out[:3000])
    check("schemathesis generated and passed at least 500 requests", gen >= 500 and passed == gen, (gen, passed))
    junit = open(os.path.join(work, "junit.xml")).read() if os.path.exists(os.path.join(work, "junit.xml")) else ""
    ops = len(re.findall(r"<testcase ", junit))
    check("every operation of /openapi.json tested (junit: 20 test cases)",
          ops == 20 and "<failure" not in junit and "<error" not in junit, (ops, junit[:300]))
    errs = server_errors(srv, tls)
    check("/metrics: no 5xx but 503 during the run", errs == 0, errs)
    check("SIGTERM: exit 0", srv.stop() == 0)

    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    if not os.path.exists(asan):
        print("SKIP asan pass: %s not built (make test builds it)" % asan)
        return
    su.prefix = "asan: "
    srv = su.Server("--auth", tokens, binary=asan)
    srv.token = token
    rc, (gen, passed), out = schemathesis(work, "http://127.0.0.1:%d" % srv.port, token, "not_a_server_error", 25)
    check("schemathesis, no server error: exit 0", rc == 0 and gen > 0, out[:3000])
    errs = server_errors(srv)
    check("/metrics: no 5xx but 503", errs == 0, errs)
    check("exit 0 (no sanitizer report)", srv.stop() == 0)


if __name__ == "__main__":
    sys.exit(main())
