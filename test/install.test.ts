// The install's choice between prebuilt addons and a build from source (scripts/install.mjs): prebuild names, which
// prebuilds are tried for which LibTorch, and the child-process probe. The whole path, from npm pack to a folder
// with no compiler, is scripts/check-package.sh (npm run check:package, run by CI).
import test from 'ava';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { torch } from '../lib/index.js';

interface Torch {
  version: string;
  cuda: boolean;
  cxx11abi?: boolean;
}
interface Prebuild {
  file: string;
  flavour: string;
}
const root = new URL('../..', import.meta.url).pathname;
const { flavourTag } = (await import(join(root, 'scripts', 'find-libtorch.mjs'))) as { flavourTag(t: Torch): string };
const { listPrebuilds, prebuildsToTry, probe } = (await import(join(root, 'scripts', 'install.mjs'))) as {
  listPrebuilds(packageRoot: string, platform: string, arch: string): Prebuild[];
  prebuildsToTry(prebuilds: Prebuild[], torch: Torch | null): Prebuild[];
  probe(file: string): { loaded?: { version: string; cuda: boolean }; error?: string };
};

test('a prebuild is tagged by what binary compatibility depends on: LibTorch major.minor, CPU or CUDA, the old ABI', (t) => {
  t.is(flavourTag({ version: '1.13.1', cuda: false, cxx11abi: true }), 'torch-1_13-cpu');
  t.is(flavourTag({ version: '2.6.0', cuda: true, cxx11abi: true }), 'torch-2_6-cuda');
  t.is(flavourTag({ version: '2.5.1', cuda: false, cxx11abi: false }), 'torch-2_5-cpu-abi0');
  t.is(flavourTag({ version: '2.6.0', cuda: false }), 'torch-2_6-cpu'); // ABI unknown: the default one
});

function packageWith(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmssl-prebuilds-'));
  mkdirSync(join(dir, 'prebuilds', 'linux-x64'), { recursive: true });
  for (const name of names) writeFileSync(join(dir, 'prebuilds', 'linux-x64', name), '');
  return dir;
}

test('the prebuilds of a platform are read from their names; other files are ignored', (t) => {
  const dir = packageWith(
    'mmssl.torch-2_6-cuda.glibc.node',
    'mmssl.torch-1_13-cpu.glibc.node',
    'node.napi.node',
    'README',
  );
  t.deepEqual(
    listPrebuilds(dir, 'linux', 'x64').map((p) => p.flavour),
    ['torch-1_13-cpu', 'torch-2_6-cuda'],
  );
  t.deepEqual(listPrebuilds(dir, 'linux', 'arm64'), []);
});

test('only the prebuild matching the LibTorch found is tried; without one found, all are, CUDA first', (t) => {
  const dir = packageWith(
    'mmssl.torch-1_13-cpu.glibc.node',
    'mmssl.torch-2_6-cpu.glibc.node',
    'mmssl.torch-2_6-cuda.glibc.node',
  );
  const all = listPrebuilds(dir, 'linux', 'x64');
  const flavours = (torchFound: Torch | null) => prebuildsToTry(all, torchFound).map((p) => p.flavour);
  t.deepEqual(flavours({ version: '2.6.0', cuda: false, cxx11abi: true }), ['torch-2_6-cpu']);
  t.deepEqual(flavours({ version: '2.6.0', cuda: true, cxx11abi: true }), ['torch-2_6-cuda']);
  t.deepEqual(flavours({ version: '2.6.0', cuda: false, cxx11abi: false }), []); // a pip torch: old ABI, build
  t.deepEqual(flavours({ version: '2.7.0', cuda: false, cxx11abi: true }), []);
  t.deepEqual(flavours(null), ['torch-2_6-cuda', 'torch-1_13-cpu', 'torch-2_6-cpu']);
});

test('the probe accepts the addon this process runs on, and says why a broken file cannot load', (t) => {
  const { runtime, cuda } = torch.version();
  t.deepEqual(probe(torch.version().addon), { loaded: { version: runtime, cuda } });
  const dir = packageWith('mmssl.torch-1_13-cpu.glibc.node');
  const { loaded, error } = probe(join(dir, 'prebuilds', 'linux-x64', 'mmssl.torch-1_13-cpu.glibc.node'));
  t.is(loaded, undefined);
  t.regex(error ?? '', /too short|invalid ELF/);
});
