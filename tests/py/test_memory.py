#!/usr/bin/env python3
"""Peak memory of `fxscreen prep` stays flat as the archive grows.

Runs prep on SMALL and LARGE synthetic sets (defaults 300 and 3000 images;
`make check-long` uses 1000 and 10000) and compares peak RSS (ru_maxrss of
the child, from wait4).  Flat means: the large run's peak is within 10% + 4 MB
of the small run's peak, while it holds 10x the images."""
import os
import resource
import subprocess
import sys
import tempfile

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.join(BUILD, "fxscreen")
SMALL = int(os.environ.get("FX_MEM_SMALL", "300"))
LARGE = int(os.environ.get("FX_MEM_LARGE", "3000"))


def peak_rss_kb(args):
    p = subprocess.Popen([FX] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    p.stderr.close()
    return os.waitstatus_to_exitcode(status), ru.ru_maxrss, err


def main():
    if not os.path.exists(FX):
        print("SKIP test_memory: %s not built" % FX)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="fx_mem_")
    images = os.path.join(tmp, "img")
    rc = subprocess.run([FX, "synth", "--out", images, "--n", str(LARGE), "--size", "96",
                         "--bits", "8", "--seed", "5"], capture_output=True).returncode
    if rc != 0:
        print("FAIL synth_for_memory_test: exit %d" % rc)
        sys.exit(1)
    names = sorted(f for f in os.listdir(images) if f.endswith(".png"))
    small_list = os.path.join(tmp, "small.txt")
    large_list = os.path.join(tmp, "large.txt")
    open(small_list, "w").write("\n".join(os.path.join(images, n) for n in names[:SMALL]) + "\n")
    open(large_list, "w").write("\n".join(os.path.join(images, n) for n in names) + "\n")
    cfg = ["--threads", "2", "--batch", "8", "--quiet"]
    rc1, small, e1 = peak_rss_kb(["prep", small_list, "--out", os.path.join(tmp, "o1")] + cfg)
    rc2, large, e2 = peak_rss_kb(["prep", large_list, "--out", os.path.join(tmp, "o2")] + cfg)
    ok = rc1 == 0 and rc2 == 0 and large <= small * 1.10 + 4096
    print(("PASS" if ok else "FAIL") + " peak_rss_flat_%d_vs_%d: %d kB vs %d kB%s" % (
        SMALL, LARGE, small, large, "" if ok else " " + e1 + e2))
    subprocess.run(["rm", "-rf", tmp])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
