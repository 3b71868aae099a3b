#!/usr/bin/env node
// Builds the native addon: `node scripts/build.mjs` with cmake-js into build/Release/mmssl.node, or
// `node scripts/build.mjs --gyp [DIR]` with node-gyp from binding.gyp in a scratch copy (DIR, default a temporary
// folder), to prove the second build path works. Both use scripts/find-libtorch.mjs; a missing LibTorch stops here
// with the discovery's message.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const jobs = String(availableParallelism());

function run(command, args, cwd = root) {
  const result = spawnSync(command, args, { cwd, stdio: 'inherit', env: { ...process.env, JOBS: jobs } });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

// node-gyp downloads Node's headers unless told where they are: use npm's setting, else the headers that ship with
// the running Node (Debian's nodejs and the official tarballs both have <prefix>/include/node).
function nodedir() {
  const prefix = process.env.npm_config_nodedir ?? join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

const found = spawnSync(process.execPath, [join(root, 'scripts', 'find-libtorch.mjs'), '--report'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (found.status !== 0) process.exit(found.status ?? 1);
const libtorch = found.stdout.trim();
console.log(libtorch);

if (process.argv[2] === '--gyp') {
  const dir = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'mmssl-gyp-'));
  mkdirSync(dir, { recursive: true });
  for (const entry of ['binding.gyp', 'package.json', 'native', 'scripts']) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  try { symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules')); } catch { /* already linked */ }
  run(process.execPath, [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', `--jobs=${jobs}`, ...nodedir()], dir);
  console.log(`node-gyp build: ${join(dir, 'build', 'Release', 'mmssl.node')}`);
} else {
  // CMake caches the LibTorch it configured with: when discovery now finds another one, configure afresh.
  const stamp = join(root, 'build', '.libtorch');
  const stale = !existsSync(stamp) || readFileSync(stamp, 'utf8') !== libtorch;
  run(process.execPath, [join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), stale ? 'rebuild' : 'build', '--parallel', jobs, '--log-level', 'warn']);
  writeFileSync(stamp, libtorch);
}
