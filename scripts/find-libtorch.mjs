#!/usr/bin/env node
// The one LibTorch discovery and the one set of build settings. Order: LIBTORCH (a LibTorch folder, e.g. the
// official zip), LIBTORCH_USE_PYTORCH=1 (the libtorch inside the installed Python torch), then the system one
// (Debian's libtorch-dev). scripts/build.mjs runs it once per build with --write DIR, and both builds read the file it
// writes (DIR/libtorch.gypi, in node-gyp's format, which is JSON: CMakeLists.txt reads it from its build folder,
// binding.gyp includes it from the scratch copy node-gyp builds in): the same sources, include folders, defines,
// compiler flags and libraries for cmake-js and node-gyp.
//
//   node scripts/find-libtorch.mjs --write [DIR, default build] | --json | --report | --flavour
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The file both builds read: in CMake's build folder, and beside binding.gyp for node-gyp. */
export const SETTINGS_FILE = 'libtorch.gypi';

// Both builds' compiler flags, beside what each tool adds for any Node addon (-fPIC; node-gyp's defines for Node's
// own headers, which the addon reaches only through N-API). binding.gyp removes node-gyp's -fno-exceptions,
// -fno-rtti, -Wextra and -fno-omit-frame-pointer, CMakeLists.txt CMake's Release flags, so these are all there is.
const COMPILE_FLAGS = [
  '-std=c++17',
  '-O3',
  '-pthread',
  '-fexceptions',
  '-frtti',
  '-fopenmp-simd',
  '-Wall',
  '-Wno-unused-parameter',
];
const ADDON_DEFINES = ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED', 'NDEBUG'];

export const FIXES = `Fix it with one of:
  - Debian/Ubuntu: sudo apt-get install libtorch-dev   (or run: npm run setup)
  - the official LibTorch zip (CPU or CUDA): unzip it and set LIBTORCH=/path/to/libtorch
  - a pip-installed torch: set LIBTORCH_USE_PYTORCH=1 (and PYTHON=/path/to/python if it is not python3)
then rebuild with: npm run build:native`;

export class LibTorchNotFound extends Error {}

// Debian's multiarch tuple, from Node's arch: no compiler is asked, since installing a prebuild needs none.
function multiarch() {
  const tuples = {
    x64: 'x86_64-linux-gnu',
    arm64: 'aarch64-linux-gnu',
    ppc64: 'powerpc64le-linux-gnu',
    s390x: 's390x-linux-gnu',
  };
  return tuples[process.arch] ?? `${process.arch}-linux-gnu`;
}

function readVersion(includeDirs) {
  for (const dir of includeDirs) {
    const file = join(dir, 'torch', 'version.h');
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const part = (name) => text.match(new RegExp(`#define TORCH_VERSION_${name} (\\d+)`))?.[1];
    return `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  }
  return 'unknown';
}

// A LibTorch laid out as the official zip and pip wheels are: include/, lib/, share/cmake/Torch.
function fromPrefix(prefix, source) {
  const cmakeDir = join(prefix, 'share', 'cmake', 'Torch');
  const libDir = join(prefix, 'lib');
  const looked = [join(cmakeDir, 'TorchConfig.cmake'), join(libDir, 'libtorch.so')];
  const missing = looked.filter((f) => !existsSync(f));
  if (missing.length) {
    throw new LibTorchNotFound(
      `${source} points to ${prefix}, which is not a usable LibTorch: missing ${missing.join(', ')}.`,
    );
  }
  const includeDirs = [join(prefix, 'include'), join(prefix, 'include', 'torch', 'csrc', 'api', 'include')];
  return { source, prefix, cmakeDir, libDir, includeDirs };
}

function fromPython() {
  const python = process.env.PYTHON || 'python3';
  let info;
  try {
    info = JSON.parse(
      execFileSync(
        python,
        [
          '-c',
          'import json, os, torch; print(json.dumps({"path": os.path.dirname(torch.__file__), "abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}))',
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
  } catch (e) {
    throw new LibTorchNotFound(
      `LIBTORCH_USE_PYTORCH=1, but '${python} -c "import torch"' failed: ${String(e.stderr || e.message).trim()}`,
    );
  }
  return { ...fromPrefix(info.path, `LIBTORCH_USE_PYTORCH (${python})`), cxx11abi: info.abi };
}

function fromSystem() {
  const arch = multiarch();
  const candidates = [`/usr/lib/${arch}/cmake/Torch`, '/usr/local/share/cmake/Torch', '/usr/share/cmake/Torch'];
  const cmakeDir = candidates.find((d) => existsSync(join(d, 'TorchConfig.cmake')));
  if (!cmakeDir) {
    throw new LibTorchNotFound(
      `No LibTorch found: LIBTORCH and LIBTORCH_USE_PYTORCH are unset, and no system LibTorch ` +
        `(TorchConfig.cmake) is in ${candidates.join(', ')}.`,
    );
  }
  const libDir = cmakeDir.startsWith('/usr/lib/') ? `/usr/lib/${arch}` : join(cmakeDir, '..', '..', '..', 'lib');
  const prefix = cmakeDir.startsWith('/usr/lib/') ? '/usr' : join(cmakeDir, '..', '..', '..');
  const includeDirs = [join(prefix, 'include'), join(prefix, 'include', 'torch', 'csrc', 'api', 'include')];
  return { source: 'system', prefix, cmakeDir, libDir, includeDirs };
}

// The libstdc++ ABI LibTorch was built with, as its TorchConfig.cmake tells dependants (pip wheels before 2.7 and
// the "pre-cxx11" zips use the old one); undefined when the file does not say.
function readCxx11Abi(cmakeDir) {
  const flag = readFileSync(join(cmakeDir, 'TorchConfig.cmake'), 'utf8').match(/_GLIBCXX_USE_CXX11_ABI=([01])/)?.[1];
  return flag === undefined ? undefined : flag === '1';
}

export function findLibTorch(env = process.env) {
  const found = env.LIBTORCH
    ? fromPrefix(env.LIBTORCH, 'LIBTORCH')
    : env.LIBTORCH_USE_PYTORCH === '1'
      ? fromPython()
      : fromSystem();
  const cuda = existsSync(join(found.libDir, 'libtorch_cuda.so'));
  const cudaHome = env.CUDA_HOME || env.CUDA_PATH || '/usr/local/cuda';
  const cudaIncludes = cuda && existsSync(join(cudaHome, 'include')) ? [join(cudaHome, 'include')] : [];
  return {
    cxx11abi: readCxx11Abi(found.cmakeDir),
    ...found,
    includeDirs: [...found.includeDirs, ...cudaIncludes],
    version: readVersion(found.includeDirs),
    cuda,
  };
}

/**
 * What a prebuilt addon is tagged with: the LibTorch it links, as far as binary compatibility goes (major.minor,
 * CPU or CUDA, and the old libstdc++ ABI when LibTorch uses it), e.g. torch-1_13-cpu or torch-2_6-cuda. No dots:
 * node-gyp-build reads dot-separated tags in prebuild names and ignores ones it does not know, like this one.
 */
export function flavourTag({ version, cuda, cxx11abi }) {
  const [major, minor] = version.split('.');
  return `torch-${major}_${minor}-${cuda ? 'cuda' : 'cpu'}${cxx11abi === false ? '-abi0' : ''}`;
}

// One line on the LibTorch found: what build logs and the CMake stamp of the configured LibTorch show.
export function describeLibTorch(torch) {
  return `LibTorch ${torch.version} (${torch.cuda ? 'CUDA' : 'CPU'}) from ${torch.source}: ${torch.libDir}`;
}

// The addon's sources: every native/*.cc, and native/cuda/*.cc only against a CUDA LibTorch.
export function nativeSources(torch) {
  const list = (dir) =>
    readdirSync(join(root, dir))
      .filter((f) => f.endsWith('.cc'))
      .sort()
      .map((f) => `${dir}/${f}`);
  return [...list('native'), ...(torch.cuda ? list('native/cuda') : [])];
}

// Linker inputs for node-gyp; CMake gets the same from TorchConfig.cmake. torch_cuda must be linked with
// --no-as-needed: nothing references it by symbol, so the linker would drop it and the CUDA kernels never register.
export function linkFlags(torch) {
  const cudaLibs = torch.cuda ? ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : [];
  return [`-L${torch.libDir}`, `-Wl,-rpath,${torch.libDir}`, '-ltorch', '-ltorch_cpu', '-lc10', ...cudaLibs];
}

// libjpeg-turbo and libwebp, which decode TIFF's JPEG and WebP blocks (native/image.cc) as GDAL's libtiff does.
const IMAGE_LIBRARIES = ['-ljpeg', '-lwebp'];

// What LibTorch's CMake targets tell dependants to define (USE_DISTRIBUTED, USE_C10D_GLOO, ...: they change what
// its headers declare), read from Caffe2Targets.cmake for torch_cpu, and torch_cuda against a CUDA LibTorch. Values
// that are generator expressions only forward another target's, already read.
function torchTargetDefines(torch) {
  const file = join(torch.cmakeDir, '..', 'Caffe2', 'Caffe2Targets.cmake');
  if (!existsSync(file)) return [];
  const targets = ['torch_cpu', ...(torch.cuda ? ['torch_cuda'] : [])];
  const blocks = readFileSync(file, 'utf8').split('set_target_properties(').slice(1);
  return blocks.flatMap((block) => {
    const value = block.match(/INTERFACE_COMPILE_DEFINITIONS "([^"]*)"/)?.[1];
    if (!targets.includes(block.split(/\s/, 1)[0]) || !value || value.includes('$<')) return [];
    return value.split(';');
  });
}

export function defines(torch) {
  const abi = torch.cxx11abi === undefined ? [] : [`_GLIBCXX_USE_CXX11_ABI=${torch.cxx11abi ? 1 : 0}`];
  return [...ADDON_DEFINES, ...abi, ...torchTargetDefines(torch), ...(torch.cuda ? ['MMSSL_WITH_CUDA'] : [])];
}

/**
 * Both builds' settings, as node-gyp's target_defaults (binding.gyp includes the file; CMakeLists.txt reads the same
 * keys): sources relative to the package (the file's folder, for both), include folders absolute.
 */
export function buildSettings(torch) {
  const addonApi = dirname(createRequire(join(root, 'package.json')).resolve('node-addon-api/package.json'));
  return {
    variables: { mmssl_libtorch: describeLibTorch(torch), mmssl_flavour: flavourTag(torch) },
    target_defaults: {
      sources: nativeSources(torch),
      include_dirs: [addonApi, ...torch.includeDirs],
      defines: defines(torch),
      cflags_cc: COMPILE_FLAGS,
      libraries: [...linkFlags(torch), ...IMAGE_LIBRARIES],
    },
  };
}

// Writes DIR/libtorch.gypi whole (a build never reads half a file).
function writeSettings(dir, torch) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, SETTINGS_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(buildSettings(torch), null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  return describeLibTorch(torch);
}

function main(flag) {
  let torch;
  try {
    torch = findLibTorch();
  } catch (e) {
    if (!(e instanceof LibTorchNotFound)) throw e;
    process.stderr.write(`mmssl: ${e.message}\n${FIXES}\n`);
    process.exit(1);
  }
  const outputs = {
    '--write': () => writeSettings(process.argv[3] ?? join(root, 'build'), torch),
    '--json': () => JSON.stringify(torch, null, 2),
    '--flavour': () => flavourTag(torch),
    '--report': () => describeLibTorch(torch),
  };
  const out = outputs[flag ?? '--report'];
  if (!out) {
    process.stderr.write(`usage: find-libtorch.mjs ${Object.keys(outputs).join(' | ')}\n`);
    process.exit(2);
  }
  process.stdout.write(`${out()}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv[2]);
