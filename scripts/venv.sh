#!/usr/bin/env bash
# The tests' Python: a venv under BUILD (default build/venv) on Debian's
# python3, with its packages visible, plus tests/requirements.txt from PyPI.
# Idempotent: rebuilt only when tests/requirements.txt changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/build}/venv
req=$root/tests/requirements.txt
stamp=$venv/.requirements
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
  echo "venv: $venv up to date"
  exit 0
fi
echo "venv: creating $venv from $req"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
if ! "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"; then
  echo "venv: pip could not install $req (no PyPI access?); the tests that need it will fail" >&2
  rm -rf "$venv"
  exit 1
fi
cp "$req" "$stamp"
