#!/usr/bin/env bash
# The tests' Python environments under BUILD (default build/), from PyPI:
#   scripts/venv.sh [BUILD]         build/venv: Debian's python3 with its
#                                   packages visible, plus tests/requirements.txt
#   scripts/venv.sh [BUILD] keras   build/venv-keras: isolated (TensorFlow
#                                   brings numpy 2), tests/requirements-keras.txt
#   scripts/venv.sh [BUILD] dicom   build/venv-dicom: isolated (pydicom 3 with
#                                   its encoders), tests/requirements-dicom.txt
#   scripts/venv.sh [BUILD] gradcam build/venv-gradcam: Debian's python3 with its
#                                   packages (torch) visible, plus pytorch-grad-cam
#                                   installed without dependencies (they would
#                                   pull a second torch), tests/requirements-gradcam.txt
# Idempotent: a venv is rebuilt only when its requirements file changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
pip_opts=()
if [ "${2:-}" = keras ] || [ "${2:-}" = dicom ]; then
  venv=$build/venv-$2 req=$root/tests/requirements-$2.txt opts=()
elif [ "${2:-}" = gradcam ]; then
  venv=$build/venv-gradcam req=$root/tests/requirements-gradcam.txt opts=(--system-site-packages)
  pip_opts=(--no-deps)
else
  venv=$build/venv req=$root/tests/requirements.txt opts=(--system-site-packages)
fi
stamp=$venv/.requirements
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
  echo "venv: $venv up to date"
  exit 0
fi
echo "venv: creating $venv from $req"
rm -rf "$venv"
/usr/bin/python3 -m venv "${opts[@]}" "$venv"
if ! "$venv/bin/pip" install -q --disable-pip-version-check ${pip_opts[@]+"${pip_opts[@]}"} -r "$req"; then
  echo "venv: pip could not install $req (no PyPI access?); the tests that need it will fail" >&2
  rm -rf "$venv"
  exit 1
fi
cp "$req" "$stamp"
