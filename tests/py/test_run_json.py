#!/usr/bin/env python3
"""run.json, read and written through cJSON: what `fxscreen run` writes
parses with Python's json (an independent reader) with every documented key
and type; the same content re-serialised differently (indentation, key
order) resumes; damaged or edited files (not JSON, truncated, a wrong type,
a missing model, no sources, an unknown method or device) stop --resume
with exit 2 and the message naming the file."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.abspath(os.path.join(BUILD, "fxscreen"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "models", "fxdemo.onnx")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
    sys.stdout.flush()
    if not ok:
        failures += 1


def run(args):
    p = subprocess.run([FX] + args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


KEYS = {"fxscreen_version": str, "model": str, "config": (str, type(None)), "cwd": str,
        "sources": list, "batch": int, "threads": int, "method": (str, type(None)),
        "layer": (str, type(None)), "threshold": (float, int, type(None)), "overlays": int,
        "device": str, "precision": str, "model_sha256": str, "effective_config": str,
        "overlay_size": int, "streams": int, "prep_device": str}


def main():
    if not os.path.exists(FX):
        print("SKIP test_run_json: %s not built" % FX)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="fxrj")
    imgs, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    rc, _, err = run(["synth", "--out", imgs, "--n", "3", "--size", "128"])
    check("synth", rc == 0, err)
    rc, _, err = run(["run", "--model", MODEL, "--out", out, "--quiet", "--threshold", "0.3",
                      "--method", "layercam", "--batch", "2", imgs])
    check("run", rc == 0, err)
    path = os.path.join(out, "run.json")
    with open(path) as f:
        rj = json.load(f)
    check("run.json has exactly the documented keys", set(rj) == set(KEYS), sorted(rj))
    check("run.json types", all(isinstance(rj.get(k), t) for k, t in KEYS.items()),
          {k: type(v).__name__ for k, v in rj.items()})
    check("run.json values", rj["threshold"] == 0.3 and rj["method"] == "layercam" and
          rj["batch"] == 2 and rj["sources"] == [imgs], rj)
    good = dict(rj)

    # Same content, other layout: a JSON reader, not a format matcher.
    with open(path, "w") as f:
        json.dump(dict(reversed(list(good.items()))), f, indent=1)
    rc, _, err = run(["run", "--resume", out, "--quiet"])
    check("resume after re-serialising run.json", rc == 0, err)

    bad = {
        "not JSON": "model: x\n",
        "truncated": json.dumps(good)[:-20],
        "batch as a string": json.dumps(dict(good, batch="2")),
        "batch out of range": json.dumps(dict(good, batch=0)),
        "no model": json.dumps({k: v for k, v in good.items() if k != "model"}),
        "no sources": json.dumps(dict(good, sources=[])),
        "a source not a string": json.dumps(dict(good, sources=[3])),
        "unknown method": json.dumps(dict(good, method="smoothgrad")),
        "unknown device": json.dumps(dict(good, device="tpu")),
        "threshold over 1": json.dumps(dict(good, threshold=2.5)),
        "negative overlay_size": json.dumps(dict(good, overlay_size=-4)),
        "a shard out of range": json.dumps(dict(good, shard={"index": 4, "count": 4, "inputs": 3,
                                                             "inputs_sha256": "0" * 64})),
        "a shard without its list's hash": json.dumps(dict(good, shard={"index": 0, "count": 2,
                                                                        "inputs": 3})),
    }
    for name, text in bad.items():
        with open(path, "w") as f:
            f.write(text)
        rc, _, err = run(["run", "--resume", out, "--quiet"])
        check("resume refuses run.json with %s" % name,
              rc == 2 and "run.json: not a run.json written by `fxscreen run`" in err, (rc, err))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
