#!/usr/bin/env node
// Builds the native addon from source, against the LibTorch scripts/find-libtorch.mjs finds (a missing LibTorch stops
// here with the discovery's message):
//   node scripts/build.mjs                  cmake-js into build/Release/mmssl.node (npm run build:native)
//   node scripts/build.mjs --gyp [DIR]      node-gyp from binding.gyp in a scratch copy (DIR, default a temporary
//                                           folder), proving the second build path works (npm run build:gyp)
//   node scripts/build.mjs --prebuild [OUT] prebuildify (node-gyp, binding.gyp) in a scratch copy, stripped, into
//                                           OUT/prebuilds/<platform>-<arch>/mmssl.<flavour>.<libc>.node, OUT
//                                           defaulting to this package (npm run prebuild)
// <flavour> names the LibTorch linked (find-libtorch.mjs --flavour: torch-1_13-cpu, torch-2_6-cuda, ...);
// scripts/install.mjs picks the prebuild matching the LibTorch of the machine it installs on.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SETTINGS_FILE } from './find-libtorch.mjs';
import { PREBUILD_RECORD } from './install.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Resolved as Node resolves them: installed as a dependency, the build tools sit in the app's node_modules.
const require = createRequire(import.meta.url);
const jobs = String(availableParallelism());

function run(command, args, cwd = root) {
  const result = spawnSync(command, args, { cwd, stdio: 'inherit', env: { ...process.env, JOBS: jobs } });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

// Discovery runs once per build, in its own process, whose message and exit status stop the build when LibTorch is
// unusable: it writes DIR/libtorch.gypi, the settings both builds read (CMake's build folder, node-gyp's scratch copy).
function writeSettings(dir) {
  const found = spawnSync(process.execPath, [join(root, 'scripts', 'find-libtorch.mjs'), '--write', dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (found.status !== 0) process.exit(found.status ?? 1);
  return JSON.parse(readFileSync(join(dir, SETTINGS_FILE), 'utf8')).variables;
}

// The image libraries' headers (native/image.cc), looked for by the compiler the build uses: a missing one stops
// here with the packages to install, not with a compile error deep in the build.
function checkImageHeaders() {
  const compiler = process.env.CXX ?? 'c++';
  const source = '#include <cstdio>\n#include <jpeglib.h>\n#include <webp/decode.h>\n';
  const found = spawnSync(compiler, ['-E', '-x', 'c++', '-', '-o', '/dev/null'], { input: source, encoding: 'utf8' });
  if (found.error?.code === 'ENOENT') return; // no compiler: the build says so itself
  if (found.status === 0) return;
  console.error(
    `mmssl: the addon decodes GeoTIFFs' JPEG and WebP tiles with libjpeg-turbo and libwebp, whose headers ${compiler} ` +
      'does not find. Install them: apt-get install libjpeg-dev libwebp-dev (Debian, Ubuntu), dnf install ' +
      `libjpeg-turbo-devel libwebp-devel (Fedora, RHEL).\n${found.stderr.trim()}`,
  );
  process.exit(1);
}

// node-gyp downloads Node's headers unless told where they are: use npm's setting, else the headers that ship with
// the running Node (Debian's nodejs and the official tarballs both have <prefix>/include/node).
function nodedir() {
  const prefix = process.env.npm_config_nodedir ?? join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

// node-gyp rebuilds in place and deletes build/ first: it works on a copy, so cmake-js's build/ stays.
function gypWorkspace(dir) {
  mkdirSync(dir, { recursive: true });
  for (const entry of ['binding.gyp', 'package.json', 'native', 'scripts']) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  try {
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  } catch {
    /* already linked */
  }
  return dir;
}

function buildGyp(dir) {
  const headers = nodedir();
  run(
    process.execPath,
    [
      require.resolve('node-gyp/bin/node-gyp.js'),
      'rebuild',
      `--jobs=${jobs}`,
      ...(headers ? [`--nodedir=${headers}`] : []),
    ],
    dir,
  );
  console.log(`node-gyp build: ${join(dir, 'build', 'Release', 'mmssl.node')}`);
}

async function buildPrebuild(dir, flavour, out) {
  const prebuildify = require('prebuildify');
  const headers = nodedir();
  const options = {
    cwd: dir,
    out,
    name: `mmssl.${flavour}`,
    napi: true,
    strip: true,
    tagLibc: true,
    targets: [process.versions.node],
    nodeGyp: require.resolve('node-gyp/bin/node-gyp.js'),
  };
  process.env.JOBS = jobs;
  if (headers) process.env.npm_config_nodedir = headers;
  try {
    await new Promise((done, fail) => prebuildify(options, (error) => (error ? fail(error) : done())));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`prebuild: ${join(out, 'prebuilds', `${process.platform}-${process.arch}`)}/mmssl.${flavour}.*.node`);
}

function buildCmake(libtorch) {
  // CMake reconfigures by itself when libtorch.gypi changes (a configure dependency); the stamp tells setup.sh which
  // LibTorch the addon was built against.
  run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'build', '--parallel', jobs, '--log-level', 'warn']);
  writeFileSync(join(root, 'build', '.libtorch'), libtorch);
  // A build from source is the addon to load from now on, not a prebuild chosen at install.
  rmSync(join(root, PREBUILD_RECORD), { force: true });
}

const [mode, arg] = process.argv.slice(2);
checkImageHeaders();
if (mode === '--gyp') {
  const dir = gypWorkspace(arg ?? mkdtempSync(join(tmpdir(), 'mmssl-gyp-')));
  console.log(writeSettings(dir).mmssl_libtorch);
  buildGyp(dir);
} else if (mode === '--prebuild') {
  // prebuildify moves its output with rename(2): the scratch copy must be on the output's file system.
  const out = resolve(arg ?? root);
  mkdirSync(out, { recursive: true });
  const dir = gypWorkspace(mkdtempSync(join(out, '.prebuild-')));
  const { mmssl_libtorch, mmssl_flavour } = writeSettings(dir);
  console.log(mmssl_libtorch);
  await buildPrebuild(dir, mmssl_flavour, out);
} else {
  const { mmssl_libtorch } = writeSettings(join(root, 'build'));
  console.log(mmssl_libtorch);
  buildCmake(mmssl_libtorch);
}
