#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine: system packages (when missing, as root or with password-less sudo), npm
# packages, the native addon and the TypeScript build. Each step runs only when its output is missing or older than its inputs, so a second run
# takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# libtorch-dev: LibTorch 1.13 CPU. libopenblas0-pthread: Debian's LibTorch calls the generic libblas.so.3, which is
# the reference BLAS (~5 GFLOP/s) unless an optimised one is installed (~200 GFLOP/s). libgloo-dev: headers for
# c10d's Gloo backend. python3-torch: PyTorch on the same LibTorch, the baseline of the benchmarks and tests;
# python3-numpy and python3-pil read the data fixtures independently in tests; gdal-bin and python3-gdal write the
# GeoTIFF test matrix and decode it as the reference. libjpeg-dev and libwebp-dev: the addon decodes TIFF's JPEG and
# WebP blocks with libjpeg-turbo and libwebp, as GDAL does.
# With LIBTORCH or LIBTORCH_USE_PYTORCH the LibTorch is the user's, and only the compilers are needed from Debian.
if [[ -n ${LIBTORCH:-} || ${LIBTORCH_USE_PYTORCH:-} == 1 ]]; then
  packages=(g++ cmake make libjpeg-dev libwebp-dev)
else
  packages=(g++ cmake make libjpeg-dev libwebp-dev libtorch-dev libgloo-dev libopenblas0-pthread python3-torch python3-torchvision python3-numpy python3-pil gdal-bin python3-gdal)
fi
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "mmssl setup: not a Debian system; make sure ${packages[*]} (or their equivalents) are installed" >&2
fi
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! sudo -n true 2>/dev/null; then
      echo "mmssl setup: missing system packages: ${missing[*]}" >&2
      echo "Install them with: sudo apt-get install -y ${missing[*]}   (then run this again)" >&2
      exit 1
    fi
    sudo=(sudo -n)
  fi
  echo "mmssl setup: installing ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# newer_than OUT IN...: true when OUT is missing or any IN (file or folder tree) is newer.
newer_than() {
  local out=$1; shift
  [[ ! -e $out ]] && return 0
  [[ -n $(find "$@" -newer "$out" -type f -print -quit 2>/dev/null) ]]
}

if newer_than node_modules/.package-lock.json package.json package-lock.json; then
  echo "mmssl setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
# The addon is rebuilt when its sources change, and when the LibTorch that discovery finds now is another one.
libtorch=$(node scripts/find-libtorch.mjs --report 2>/dev/null || echo "none")
if newer_than build/Release/mmssl.node native CMakeLists.txt scripts/find-libtorch.mjs ||
  [[ $(cat build/.libtorch 2>/dev/null) != "$libtorch" ]]; then
  echo "mmssl setup: building the native addon" >&2
  node scripts/build.mjs >&2
  touch build/Release/mmssl.node
fi
# A checkout runs its build from source: a prebuild that npm ci's install script chose (when prebuilds/ holds one
# for this LibTorch) could be older than the sources.
rm -f build/prebuild.json
if newer_than dist/.built lib test scripts tsconfig.json; then
  echo "mmssl setup: compiling TypeScript" >&2
  # (npm ci linked the bin before dist existed: the build makes it executable, so `npx mmssl` works)
  npm run --silent build:ts >&2
  touch dist/.built
fi
