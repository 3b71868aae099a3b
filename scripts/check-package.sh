#!/usr/bin/env bash
# npm run check:package: the package as a user gets it. Makes this machine's prebuild (npm run prebuild: prebuildify,
# node-gyp, binding.gyp) unless it exists, packs the package (npm pack), installs the tarball in an empty folder with
# every compiler replaced by a stand-in that records being called and fails, and uses it there: the install must take
# the prebuild without compiling. Then the other install paths: a LibTorch with no matching prebuild falls back to
# building from source, a LIBTORCH that is not a LibTorch stops with the fixes, and an install that skipped its
# scripts says how to finish. Results are TAP lines on stdout; details go to stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/tap.sh

flavour=$(node scripts/find-libtorch.mjs --flavour) || exit 1
prebuild=$(ls prebuilds/"$(node -p 'process.platform + "-" + process.arch')"/mmssl."$flavour".*.node 2>/dev/null | head -n1)
if [[ -z $prebuild ]]; then
  check "npm run prebuild makes the $flavour prebuild" npm run --silent prebuild
  prebuild=$(ls prebuilds/*/mmssl."$flavour".*.node 2>/dev/null | head -n1)
fi
[[ -n $prebuild ]] || { echo "not ok - no $flavour prebuild to pack"; echo "# check:package: $passed passed, $((failed + 1)) failed"; exit 1; }
check "the cmake-js build and the $flavour prebuild (node-gyp) export the same symbols" same_exports build/Release/mmssl.node "$prebuild"

# ---- pack -------------------------------------------------------------------------------------------------------

tarball_lists() { # what the tarball must and must not hold (every prebuild made here, check:libtorch's too)
  local list; list=$(tar -tzf "$tarball")
  local missing=()
  for f in dist/lib/index.js dist/lib/serve/index.js dist/lib/cli/main.js scripts/install.mjs scripts/build.mjs \
    scripts/find-libtorch.mjs CMakeLists.txt binding.gyp native/tensor.cc prebuilds/*/*.node; do
    grep -qx "package/$f" <<<"$list" || missing+=("$f")
  done
  echo "tarball: $(wc -l <<<"$list") files, $(du -h "$tarball" | cut -f1); prebuilds: $(grep -o 'prebuilds/.*' <<<"$list" | tr '\n' ' ')"
  ((${#missing[@]} == 0)) || { echo "missing: ${missing[*]}"; return 1; }
  ! grep -qE '^package/(dist/test|dist/scripts|test|build|node_modules)/' <<<"$list"
}
pack() { tarball=$work/$(npm pack --silent --pack-destination "$work" | tail -n1); [[ -f $tarball ]]; }
check "npm pack makes a tarball" pack
check "the tarball holds the compiled library, the sources, the install scripts and the prebuilds, no tests" tarball_lists

# ---- install in an empty folder, compilers replaced by stand-ins -------------------------------------------------

shims=$work/shims
mkdir -p "$shims"
for tool in cc gcc g++ c++ cmake make ninja; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$tool" "$work/compilers.log" >"$shims/$tool"
  chmod +x "$shims/$tool"
done
app=$work/app
mkdir -p "$app"
(cd "$app" && npm init -y >/dev/null)
in_app() { (cd "$app" && env PATH="$shims:$PATH" "$@"); }
no_compiler_ran() { [[ ! -s $work/compilers.log ]] || { cat "$work/compilers.log"; return 1; }; }

install_log=$work/install.log
install() { in_app npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$tarball" >"$install_log" 2>&1; local s=$?; cat "$install_log"; return $s; }
check "npm install of the tarball succeeds with no compiler on PATH" install
check "the install took the $flavour prebuild and compiled nothing" \
  bash -c "grep -q 'using the prebuilt addon prebuilds/.*$flavour' '$install_log' && [[ ! -e '$app/node_modules/mmssl/build/Release' ]] && $(declare -f no_compiler_ran); no_compiler_ran"

use() {
  in_app node --input-type=module -e '
    import { torch, nn } from "mmssl";
    const x = torch.tensor([[1, 2], [3, 4]]);
    const y = x.matmul(x).sum().item();   // [[7, 10], [15, 22]]
    if (y !== 54) throw new Error(`expected 54, got ${y}`);
    torch.manualSeed(0);
    const f = nn.models.resnet18({ numClasses: 6 });
    const out = f.forward(torch.randn([1, 3, 64, 64]));
    if (out.shape.join() !== "1,6") throw new Error(`resnet18 output ${out.shape}`);
    const { addon, runtime } = torch.version();
    if (!addon.includes("/prebuilds/")) throw new Error(`loaded ${addon}, not the prebuild`);
    await import("mmssl/serve");
    console.log(`used ${addon} on LibTorch ${runtime}: matmul sum ${y}, resnet18 ${out.shape}`);'
}
check "the installed package computes with the prebuild (tensors, a ResNet18, the serve entry point)" use
check "npx mmssl runs in the installed folder" in_app npx --no-install mmssl --version

# ---- the other install paths --------------------------------------------------------------------------------------

# A LibTorch with no matching prebuild (here a stand-in claiming version 9.9): the install says so and builds from
# source, which the stand-in compilers let us see start (and fail).
fake=$work/libtorch-9.9
mkdir -p "$fake/share/cmake/Torch" "$fake/lib" "$fake/include/torch"
echo 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")' >"$fake/share/cmake/Torch/TorchConfig.cmake"
touch "$fake/lib/libtorch.so"
printf '#define TORCH_VERSION_MAJOR 9\n#define TORCH_VERSION_MINOR 9\n#define TORCH_VERSION_PATCH 0\n' >"$fake/include/torch/version.h"
falls_back() {
  local out; out=$(in_app env LIBTORCH="$fake" npm rebuild mmssl --foreground-scripts 2>&1)
  echo "$out" | grep -E 'mmssl:|prebuilt' | head -n 3
  grep -q 'no usable prebuilt addon for LibTorch 9.9.0 CPU from LIBTORCH .*building from source' <<<"$out" && [[ -s $work/compilers.log ]]
  local built=$?
  rm -f "$work/compilers.log"   # this path was meant to compile; the last check is about the others
  return $built
}
check "with a LibTorch no prebuild matches, the install falls back to building from source" falls_back

refuses() {
  local out; out=$(in_app env LIBTORCH=/nonexistent/libtorch npm rebuild mmssl --foreground-scripts 2>&1)
  echo "$out" | grep -E 'mmssl:' | head -n 2
  grep -q 'LIBTORCH points to /nonexistent/libtorch, which is not a usable LibTorch' <<<"$out" &&
    grep -q 'npm rebuild mmssl' <<<"$out" && ! grep -q 'using the prebuilt' <<<"$out"
}
check "a LIBTORCH that is not a LibTorch stops the install with the fixes" refuses

# As after npm install --ignore-scripts (or pnpm, which skips dependencies' scripts): nothing chosen, nothing built.
finishes() {
  rm -rf "$app/node_modules/mmssl/build"
  local out; out=$(in_app node --input-type=module -e 'await import("mmssl")' 2>&1)
  echo "$out" | grep -E 'LoadError|rebuild' | head -n 2
  grep -q 'npm rebuild mmssl' <<<"$out" || return 1
  in_app npm rebuild mmssl --foreground-scripts 2>&1 | grep 'using the prebuilt addon' && use
}
check "an install that skipped its scripts says to run npm rebuild mmssl, which then takes the prebuild" finishes

# LibTorch's runtime libraries without its headers (Debian's libtorch1.13 without libtorch-dev, as in a service's
# image): discovery finds nothing, and the install takes the prebuild that loads. The headers are hidden in a private
# mount namespace, which needs root and unshare.
headerless() {
  local hidden=() d
  for d in /usr/lib/*/cmake/Torch /usr/local/share/cmake/Torch /usr/share/cmake/Torch; do [[ -d $d ]] && hidden+=("$d"); done
  local out; out=$(cd "$app" && unshare -m bash -c 'for d; do mount -t tmpfs none "$d"; done; npm rebuild mmssl --foreground-scripts' _ "${hidden[@]}" 2>&1)
  echo "$out" | grep -E 'mmssl:' | head -n 2
  grep -q "using the prebuilt addon prebuilds/.*$flavour.*from the dynamic loader" <<<"$out" && use
}
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
  check "with LibTorch's libraries but not its headers, the install takes the prebuild that loads" headerless
else
  echo "ok - with LibTorch's libraries but not its headers, the install takes the prebuild that loads # SKIP needs root and unshare to hide the headers"
fi
check "no compiler ran on the prebuild paths" no_compiler_ran

echo "# check:package: $passed passed, $failed failed"
((failed == 0))
