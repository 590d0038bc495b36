#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need.
# Idempotent: does nothing when every package is already installed.
# Not root: prints the exact command to run instead.
set -euo pipefail
pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev
  libpng-dev libtiff-dev libhdf5-dev libyaml-dev zlib1g-dev
  libjpeg-dev libdeflate-dev liblzma-dev libzstd-dev libwebp-dev libjbig-dev liblerc-dev libaec-dev
  libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libspng-dev libcjson-dev
  libmicrohttpd-dev libssl-dev libgdcm-dev libarchive-dev libsuitesparse-dev libopenjp2-7-dev libjpeg62-turbo-dev
  libpng-tools libtiff-tools hdf5-tools
  python3 python3-numpy python3-pil python3-h5py python3-tifffile python3-matplotlib python3-pandas
  python3-torch python3-torchvision python3-onnx python3-sklearn
  python3-jsonschema python3-selenium chromium chromium-driver
  python3-pydicom python3-gdcm dcmtk libgdcm-tools zip zstd xz-utils imagemagick openssl curl
  python3-yaml slurm-wlm slurm-client munge fonts-dejavu-core
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing: ${missing[*]}" >&2
  echo "deps: run as root:  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
