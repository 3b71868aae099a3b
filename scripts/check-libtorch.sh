#!/usr/bin/env bash
# npm run check:libtorch [-- cpu|cuda ...]: builds and tests this checkout against the LibTorch builds Debian 12 does
# not have, in Debian 13 roots made with debootstrap (cached, rebuilt when missing or when their package list changes):
#   cpu   LibTorch 2.6 CPU: the addon built with cmake-js and as a prebuild (node-gyp), then the whole ava suite
#         against it.
#   cuda  LibTorch 2.6 CUDA: the addon built with cmake-js and as a prebuild (node-gyp), every CUDA-guarded source
#         compiled in; checks that it links torch_cuda and c10_cuda and holds our CUDA code. It cannot run here (no
#         GPU, and cuDNN is a stand-in package, see below), and the output says so.
# The checkout (with the node_modules and dist/ set up on the host: no registry is needed inside) is bind-mounted at
# /mmssl; builds go to build/debian13-<flavour>/, prebuilds to prebuilds/linux-x64/mmssl.torch-2_6-<flavour>.*. Results are TAP lines on stdout ("ok"/"not ok", ava's lines tagged
# with the flavour); progress goes to stderr. Needs root and debootstrap; without them it says so and exits 2.
#
# Variables: MMSSL_ROOTS (where the roots live, default /var/cache/mmssl/debian13), MMSSL_DEBIAN_MIRROR (default: the
# Debian mirror apt already uses).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
flavours=("$@")
(($#)) || flavours=(cpu cuda)
roots=${MMSSL_ROOTS:-/var/cache/mmssl/debian13}
suite=trixie

say() { echo "check:libtorch: $*" >&2; }
fail_setup() { say "$*"; exit 2; }

# ---- prerequisites ----------------------------------------------------------------------------------------------

[[ $(id -u) -eq 0 ]] || fail_setup "needs root (debootstrap, chroot and bind mounts). Run: sudo npm run check:libtorch"
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap and equivs"
  apt-get install -y -qq --no-install-recommends debootstrap equivs >/dev/null ||
    fail_setup "debootstrap is missing and could not be installed. Run: apt-get install debootstrap equivs"
fi
command -v equivs-build >/dev/null || apt-get install -y -qq --no-install-recommends equivs >/dev/null ||
  fail_setup "equivs is missing and could not be installed. Run: apt-get install equivs"
for f in "${flavours[@]}"; do
  [[ $f == cpu || $f == cuda ]] || fail_setup "unknown flavour '$f': expected cpu and/or cuda"
done
bash scripts/setup.sh >&2   # host node_modules and dist/, which the roots use as they are

# The Debian mirror apt already uses (deb822 or one-line sources), so the roots need no other network access.
mirror() {
  [[ -n ${MMSSL_DEBIAN_MIRROR:-} ]] && { echo "$MMSSL_DEBIAN_MIRROR"; return; }
  local uri
  uri=$(grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^[:space:]]+' |
    grep -v -- '-security' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# ---- roots ------------------------------------------------------------------------------------------------------

# Packages per flavour. CUDA: libtorch-cuda-dev (contrib) and nvidia-cuda-toolkit (non-free). nvidia-cudnn downloads
# cuDNN from NVIDIA while it configures, which fails without that network access; a stand-in package (equivs) keeps
# apt consistent, and LibTorch's own files install regardless. Gloo's headers: libgloo-dev, or libgloo-cuda-dev for
# the CUDA LibTorch (they conflict); NCCL's: libnccl-dev. python3-gdal: the GeoTIFF matrix tests write and decode with GDAL.
# libjpeg-dev and libwebp-dev: the addon's JPEG and WebP decoding.
packages_cpu="g++ cmake make binutils libjpeg-dev libwebp-dev nodejs libnode-dev python3 libtorch-dev libgloo-dev python3-torch python3-torchvision python3-gdal"
packages_cuda="g++ cmake make binutils libjpeg-dev libwebp-dev nodejs libnode-dev python3 libtorch-cuda-dev libgloo-cuda-dev libnccl-dev nvidia-cuda-toolkit"

mounted_under() { findmnt -rn -o TARGET | grep -q "^$1\(/\|$\)"; }

remove_root() {
  mounted_under "$1" && fail_setup "refusing to delete $1: something is still mounted under it (see findmnt)"
  rm -rf --one-file-system "$1"
}

make_base() {
  [[ -f $roots/base/.mmssl-ready ]] && return
  local tmp=$roots/base.tmp
  remove_root "$tmp"; mkdir -p "$roots"
  say "debootstrap Debian 13 ($suite) from $(mirror) into $roots/base"
  debootstrap --variant=minbase --components=main,contrib,non-free,non-free-firmware "$suite" "$tmp" "$(mirror)" >&2
  touch "$tmp/.mmssl-ready"
  remove_root "$roots/base"; mv "$tmp" "$roots/base"
}

cudnn_standin() {
  local dir; dir=$(mktemp -d)
  cat >"$dir/nvidia-cudnn.ctl" <<'EOF'
Section: misc
Priority: optional
Standards-Version: 3.9.2
Package: nvidia-cudnn
Version: 9.0.0.312~cuda12+mmssl1
Maintainer: mmssl build check <mmssl@localhost>
Architecture: all
Description: stand-in for nvidia-cudnn in a build-only root
 nvidia-cudnn downloads cuDNN from NVIDIA at install time. This stand-in lets libtorch-cuda-2.6 install for build
 and link checks; programs that load LibTorch's CUDA libraries need the real cuDNN.
EOF
  (cd "$dir" && equivs-build nvidia-cudnn.ctl >/dev/null 2>&1) || fail_setup "equivs-build of the nvidia-cudnn stand-in failed"
  echo "$dir"/nvidia-cudnn_*.deb
}

# make_root FLAVOUR: reuse the root when its marker names the same packages, else rebuild it from the base.
make_root() {
  local flavour=$1 root=$roots/$1 wanted_var=packages_$1
  local wanted=${!wanted_var}
  [[ -f $root/.mmssl-ready && $(cat "$root/.mmssl-ready") == "$wanted" ]] && return
  make_base
  local tmp=$root.tmp
  remove_root "$tmp"
  say "preparing the $flavour root: $wanted"
  cp -a "$roots/base" "$tmp"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  [[ $flavour == cuda ]] && cp "$(cudnn_standin)" "$tmp/tmp/nvidia-cudnn-standin.deb"
  mount_root "$tmp"
  # shellcheck disable=SC2086
  in_root "$tmp" bash -c "apt-get update -qq && { [[ ! -f /tmp/nvidia-cudnn-standin.deb ]] || dpkg -i /tmp/nvidia-cudnn-standin.deb >/dev/null; } &&
    apt-get install -y -qq --no-install-recommends $wanted >/dev/null && apt-get clean" >&2
  unmount_root "$tmp"
  echo "$wanted" >"$tmp/.mmssl-ready"
  remove_root "$root"; mv "$tmp" "$root"
}

mount_root() {
  mkdir -p "$1/mmssl"
  mount -t proc proc "$1/proc"
  mount --rbind /dev "$1/dev"; mount --make-rslave "$1/dev"
  mount --bind "$checkout" "$1/mmssl"
  active_mounts+=("$1")
}

unmount_root() {
  umount "$1/mmssl" 2>/dev/null || true
  umount -R "$1/dev" 2>/dev/null || true
  umount "$1/proc" 2>/dev/null || true
  local kept=()
  for m in "${active_mounts[@]}"; do [[ $m == "$1" ]] || kept+=("$m"); done
  active_mounts=("${kept[@]}")
}

active_mounts=()
trap 'for m in "${active_mounts[@]}"; do unmount_root "$m"; done' EXIT

# in_root ROOT COMMAND...: runs in the root with a clean environment, in the checkout.
in_root() {
  local root=$1; shift
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive JOBS="$(nproc)" bash -c 'cd /mmssl 2>/dev/null || cd /; exec "$@"' _ "$@"
}

# ---- checks -----------------------------------------------------------------------------------------------------

source scripts/tap.sh

build_cmake() { # build_cmake ROOT FLAVOUR: discovery writes the build folder's settings (libtorch.gypi), then cmake-js
  in_root "$1" node scripts/find-libtorch.mjs --write "build/debian13-$2" &&
    in_root "$1" node node_modules/cmake-js/bin/cmake-js build -O "build/debian13-$2" --parallel "$(nproc)" --log-level warn
}
# The prebuild (prebuildify, node-gyp, binding.gyp) lands in the checkout's prebuilds/, so a package packed afterwards
# ships it beside the host's (npm run prebuild).
build_prebuild() { in_root "$1" node scripts/build.mjs --prebuild; }
prebuild_of() { echo "prebuilds/linux-x64/mmssl.torch-2_6-$1.glibc.node"; }
smoke() { # smoke ROOT ADDON: load the addon and compute with it
  in_root "$1" env MMSSL_ADDON="$2" node --input-type=module -e '
    const { torch } = await import("./dist/lib/index.js");
    const y = torch.tensor([1, 2, 3]).mul(2).sum().item();
    if (y !== 12) throw new Error(`expected 12, got ${y}`);
    console.error(`${process.env.MMSSL_ADDON}: LibTorch ${torch.version().runtime}, 2 * (1 + 2 + 3) = ${y}`);'
}

# The 2.6 addon on this Debian 12 host (LibTorch 1.13): the load must fail, and say that LibTorch is what is missing.
cross_load() { # cross_load ADDON (a host path)
  local out; out=$(MMSSL_ADDON="$1" node --input-type=module -e 'await import("./dist/lib/index.js")' 2>&1 || true)
  echo "$out" | grep -E 'LoadError|^  - ' | head -n 3
  grep -qE 'lib(torch|c10)[a-z_]*\.so\.2\.6.*part of LibTorch|built against LibTorch 2\.6' <<<"$out"
}

check_cpu() {
  local root=$roots/cpu tag="[LibTorch 2.6 CPU]" addon=/mmssl/build/debian13-cpu/Release/mmssl.node
  mount_root "$root"
  check "$tag cmake-js build" build_cmake "$root" cpu
  check "$tag prebuild with node-gyp from binding.gyp" build_prebuild "$root"
  check "$tag prebuild loads and computes" smoke "$root" "/mmssl/$(prebuild_of cpu)"
  check "$tag cmake-js build and prebuild export the same symbols" same_exports "${addon#/mmssl/}" "$(prebuild_of cpu)"
  check "$tag addon loaded on this host's LibTorch 1.13 is refused with the reason" cross_load "$checkout${addon#/mmssl}"
  if [[ -f $root$addon ]]; then
    say "running the ava suite against LibTorch 2.6"
    local tap; tap=$(mktemp)
    in_root "$root" env MMSSL_ADDON="$addon" node node_modules/ava/entrypoints/cli.mjs --tap >"$tap" || true
    sed -nE "s/^(not ok|ok) ([0-9]+) - /\1 \2 - $tag /p" "$tap"
    awk '/^not ok/ { show = 1 } /^ok/ { show = 0 } show' "$tap" >&2   # what each failure said
    passed=$((passed + $(grep -cE '^ok [0-9]+' "$tap" || true) - $(grep -cE '^ok [0-9]+ .*# SKIP' "$tap" || true)))
    failed=$((failed + $(grep -cE '^not ok [0-9]+' "$tap" || true)))
    grep -qE '^# fail 0$' "$tap" || grep -qE '^not ok' "$tap" || result FAIL "$tag ava suite ran to its end"
    rm -f "$tap"
  fi
  unmount_root "$root"
}

# The CUDA addon's dynamic section must name torch_cuda and c10_cuda (the --no-as-needed pitfall), and every export
# of native/cuda/*.cc must be compiled in.
linkage() { # linkage ADDON (a host path)
  local needed; needed=$(readelf -d "$1" | grep NEEDED)
  echo "$needed"
  grep -q 'libtorch_cuda\.so' <<<"$needed" && grep -q 'libc10_cuda\.so' <<<"$needed"
}
cuda_exports() {
  local names symbols missing=()
  names=$(grep -hoE 'MMSSL_[A-Z_]*OP\("[A-Za-z0-9]+"|\{"[A-Za-z0-9]+", ' native/cuda/*.cc | grep -oE '"[A-Za-z0-9]+"' | tr -d '"')
  for n in $names; do grep -qaw "$n" "$1" || missing+=("$n"); done
  symbols=$(nm -DC "$1")   # the dynamic symbols: prebuilds are stripped   # captured first: grep -q closing the pipe early would fail the pipeline under pipefail
  grep -q 'T mmssl::initCuda' <<<"$symbols" || missing+=("mmssl::initCuda")
  echo "CUDA exports: $(echo $names)${missing:+; missing: ${missing[*]}}"
  ((${#missing[@]} == 0))
}
# Without cuDNN (and a GPU) the CUDA LibTorch cannot load; the loader must say which library is missing and why.
load_diagnosis() { # load_diagnosis ROOT ADDON
  local out; out=$(in_root "$1" env MMSSL_ADDON="$2" node --input-type=module -e 'await import("./dist/lib/index.js")' 2>&1 || true)
  echo "$out" | grep -E 'LoadError|libcudnn|CUDA' | head -n 3
  grep -q 'libcudnn' <<<"$out" && grep -q 'cuDNN' <<<"$out"
}

check_cuda() {
  local root=$roots/cuda tag="[LibTorch 2.6 CUDA]" addon=build/debian13-cuda/Release/mmssl.node
  mount_root "$root"
  check "$tag cmake-js build with native/cuda/*.cc" build_cmake "$root" cuda
  check "$tag cmake-js addon links torch_cuda and c10_cuda" linkage "$addon"
  check "$tag cmake-js addon holds every CUDA export" cuda_exports "$addon"
  check "$tag prebuild with node-gyp from binding.gyp" build_prebuild "$root"
  check "$tag prebuild links torch_cuda and c10_cuda" linkage "$(prebuild_of cuda)"
  check "$tag prebuild holds every CUDA export" cuda_exports "$(prebuild_of cuda)"
  check "$tag cmake-js build and prebuild export the same symbols" same_exports "$addon" "$(prebuild_of cuda)"
  check "$tag loading without cuDNN fails with a LoadError that names it" load_diagnosis "$root" "/mmssl/$addon"
  echo "# $tag not run: this machine has no GPU, and the root's nvidia-cudnn is a stand-in, so LibTorch's CUDA" \
    "libraries cannot load here. On a GPU machine: LIBTORCH=/path/to/libtorch-cuda npm test (see the README)."
  unmount_root "$root"
}

for f in "${flavours[@]}"; do make_root "$f"; done
for f in "${flavours[@]}"; do "check_$f"; done
echo "# check:libtorch: $passed passed, $failed failed"
((failed == 0))
