#!/usr/bin/env node
// npm's install script: use a prebuilt addon when one matches this machine's LibTorch, else build from source.
//
// Each prebuild in prebuilds/<platform>-<arch>/ is named by the LibTorch it links (scripts/build.mjs --prebuild). The
// ones whose flavour matches the LibTorch that discovery finds (or, when none is found, as with a runtime-only
// LibTorch package without headers, every one, CUDA first) are loaded in a child process, which also checks that the
// LibTorch loaded there is the version the prebuild was built against. The first that passes is recorded in
// build/prebuild.json, which lib/native.ts loads. Otherwise scripts/build.mjs builds from source, and when there is
// neither a usable prebuild nor a LibTorch to build against, the install stops with what was tried and the fixes.
// MMSSL_BUILD_FROM_SOURCE=1 (or npm's --build-from-source) skips the prebuilds.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FIXES, LibTorchNotFound, findLibTorch, flavourTag } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the chosen prebuild is recorded, relative to the package: { addon, flavour, libtorch }. */
export const PREBUILD_RECORD = join('build', 'prebuild.json');

const PREBUILD_NAME = /^mmssl\.(torch-[\w-]+)(\.\w+)*\.node$/;

/** The prebuilds shipped for this platform, each with the flavour its name gives. */
export function listPrebuilds(packageRoot = root, platform = process.platform, arch = process.arch) {
  const dir = join(packageRoot, 'prebuilds', `${platform}-${arch}`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const match = PREBUILD_NAME.exec(name);
      return match ? [{ file: join(dir, name), flavour: match[1] }] : [];
    });
}

/**
 * The prebuilds worth trying, in order: those matching the LibTorch found, or, when none was found, all of them,
 * CUDA first (a CUDA prebuild loads only where CUDA's libraries are, and is then the better one).
 */
export function prebuildsToTry(prebuilds, torch) {
  if (torch) return prebuilds.filter((p) => p.flavour === flavourTag(torch));
  const cuda = (p) => (p.flavour.includes('-cuda') ? 0 : 1);
  return [...prebuilds].sort((a, b) => cuda(a) - cuda(b));
}

const majorMinor = (version) => version.split('.').slice(0, 2).join('.');

/**
 * Loads `file` in a child process: { loaded } with the LibTorch it runs on ({ version, cuda }) when it loads against
 * the LibTorch it was built for, else { error } saying why not.
 */
export function probe(file) {
  const script = `const v = require(${JSON.stringify(file)}).version(); process.stdout.write(JSON.stringify(v));`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (child.status !== 0) {
    const line = child.stderr.split('\n').find((l) => /Error|error:/.test(l)) ?? `exit status ${child.status}`;
    return { error: line.trim() };
  }
  const { built, runtime, cuda } = JSON.parse(child.stdout);
  return majorMinor(built) === majorMinor(runtime)
    ? { loaded: { version: runtime, cuda } }
    : { error: `built against LibTorch ${built}, but LibTorch ${runtime} loaded` };
}

function describe(torch) {
  return `LibTorch ${torch.version} ${torch.cuda ? 'CUDA' : 'CPU'} from ${torch.source}`;
}

function buildFromSource() {
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
  process.exit(build.status ?? 1);
}

function fail(message) {
  process.stderr.write(`mmssl: ${message}\n${FIXES.replace('npm run build:native', 'npm rebuild mmssl')}\n`);
  process.exit(1);
}

function main() {
  const fromSource = process.env.MMSSL_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
  let torch = null;
  let notFound = null;
  try {
    torch = findLibTorch();
  } catch (e) {
    if (!(e instanceof LibTorchNotFound)) throw e;
    // A LibTorch named by LIBTORCH or LIBTORCH_USE_PYTORCH must be usable: never guess past what the user said.
    if (process.env.LIBTORCH || process.env.LIBTORCH_USE_PYTORCH === '1' || fromSource) fail(e.message);
    notFound = e.message;
  }
  rmSync(join(root, PREBUILD_RECORD), { force: true });
  const prebuilds = listPrebuilds();
  const tried = [];
  for (const { file, flavour } of fromSource ? [] : prebuildsToTry(prebuilds, torch)) {
    const { loaded, error } = probe(file);
    if (error) {
      tried.push(`${relative(root, file)}: ${error}`);
      continue;
    }
    mkdirSync(join(root, 'build'), { recursive: true });
    const libtorch = torch ? describe(torch) : describe({ ...loaded, source: 'the dynamic loader (no headers found)' });
    const record = { addon: relative(root, file), flavour, libtorch };
    writeFileSync(join(root, PREBUILD_RECORD), `${JSON.stringify(record, null, 2)}\n`);
    console.log(`mmssl: using the prebuilt addon ${record.addon} (${record.libtorch}); no compiler needed`);
    return;
  }
  const triedText = tried.length ? ` Tried:\n  - ${tried.join('\n  - ')}` : '';
  if (torch) {
    const shipped = prebuilds.map((p) => p.flavour).join(', ') || 'none';
    console.log(
      `mmssl: ${
        fromSource
          ? 'building from source as asked'
          : `no usable prebuilt addon for ${describe(torch)} ` +
            `on ${process.platform}-${process.arch} (prebuilt: ${shipped}); building from source`
      }.${triedText}`,
    );
    buildFromSource();
  }
  fail(
    `${notFound}\nNo prebuilt addon could be used instead${
      prebuilds.length ? '.' : ' (none ships for ' + `${process.platform}-${process.arch}).`
    }${triedText}`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
