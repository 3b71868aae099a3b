// Loading and building fail with messages that say what was looked for, where, and how to fix it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LoadError } from '../lib/index.js';
import { diagnose, loadAddon, versionMismatch } from '../lib/native.js';

const root = new URL('../..', import.meta.url).pathname;

test('a missing or broken addon file lists every candidate and the build command', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmssl-load-'));
  const broken = join(dir, 'broken.node');
  writeFileSync(broken, 'not an ELF file');
  const error = t.throws(() => loadAddon([join(dir, 'missing.node'), broken]), { instanceOf: LoadError });
  t.regex(error!.message, /missing\.node: not found/);
  t.regex(error!.message, /broken\.node: .*(invalid ELF|too short)/);
  t.regex(error!.message, /npm run build:native/);
  t.regex(error!.message, /LIBTORCH/);
});

test('a LibTorch library missing at run time is named, with the fixes', (t) => {
  const message = diagnose(
    '/x/mmssl.node',
    new Error('libtorch_cpu.so.1.13: cannot open shared object file: No such file or directory'),
  );
  t.regex(message, /libtorch_cpu\.so\.1\.13 \(part of LibTorch or its dependencies\) cannot be found at run time/);
  t.regex(message, /apt-get install libtorch-dev/);
  t.regex(diagnose('/x/mmssl.node', new Error('undefined symbol: _ZN3c105Error')), /Rebuild it against that LibTorch/);
  const cudnn = diagnose(
    '/x/mmssl.node',
    new Error('libcudnn.so.9: cannot open shared object file: No such file or directory'),
  );
  t.regex(
    cudnn,
    /built against a CUDA LibTorch, which needs the CUDA runtime and cuDNN at run time, and libcudnn\.so\.9 cannot be found/,
  );
});

test('a LibTorch of another minor version at run time is refused, naming both versions and the fix', (t) => {
  t.is(versionMismatch('1.13.1', '1.13.0'), null);
  t.is(versionMismatch('2.6.0', '2.6.1'), null);
  const message = versionMismatch('2.6.0', '1.13.1');
  t.regex(message!, /built against LibTorch 2\.6\.0 but LibTorch 1\.13\.1 was loaded at run time/);
  t.regex(message!, /npm run build:native, with LIBTORCH or LIBTORCH_USE_PYTORCH/);
  t.truthy(versionMismatch('2.5.1', '2.6.0'));
});

function discovery(env: Record<string, string>, ...args: string[]) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIBTORCH')));
  return spawnSync(process.execPath, [join(root, 'scripts', 'find-libtorch.mjs'), ...args], {
    env: { ...clean, ...env },
    encoding: 'utf8',
  });
}

test('LibTorch discovery reports the system LibTorch by default', (t) => {
  const out = discovery({}, '--json');
  t.is(out.status, 0, out.stderr);
  const found = JSON.parse(out.stdout);
  t.is(found.source, 'system');
  t.regex(found.version, /^\d+\.\d+\.\d+$/);
});

test("discovery writes both builds' settings: every native source, LibTorch's own defines, one set of flags", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmssl-settings-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = discovery({}, '--write', dir);
  t.is(out.status, 0, out.stderr);
  const settings = JSON.parse(readFileSync(join(dir, 'libtorch.gypi'), 'utf8'));
  const { sources, include_dirs, defines, cflags_cc, libraries } = settings.target_defaults;
  const expected = readdirSync(join(root, 'native')).filter((f) => f.endsWith('.cc'));
  t.true(expected.length > 0);
  t.deepEqual(
    sources,
    expected.sort().map((f) => `native/${f}`),
    'CPU LibTorch: native/*.cc without native/cuda',
  );
  t.true(
    include_dirs.every((d: string) => existsSync(d)),
    include_dirs.join(', '),
  );
  // Debian's torch_cpu target asks for these; a build without them sees other declarations in LibTorch's headers.
  for (const d of ['USE_DISTRIBUTED', 'USE_C10D_GLOO', 'NDEBUG', 'NAPI_VERSION=8']) t.true(defines.includes(d), d);
  t.deepEqual(
    cflags_cc.filter((f: string) => /^-O|^-std=/.test(f)),
    ['-std=c++17', '-O3'],
  );
  t.true(libraries.includes('-ltorch'));
  t.regex(settings.variables.mmssl_flavour, /^torch-\d+_\d+-cpu/);
});

test('a LIBTORCH folder that is not a LibTorch fails with what is missing and the fixes', (t) => {
  const out = discovery({ LIBTORCH: '/nonexistent/libtorch' });
  t.is(out.status, 1);
  t.regex(
    out.stderr,
    /LIBTORCH points to \/nonexistent\/libtorch, which is not a usable LibTorch: missing .*TorchConfig\.cmake/,
  );
  t.regex(out.stderr, /apt-get install libtorch-dev/);
  t.regex(out.stderr, /LIBTORCH_USE_PYTORCH=1/);
});

test('LIBTORCH_USE_PYTORCH with a Python lacking torch says so', (t) => {
  const out = discovery({ LIBTORCH_USE_PYTORCH: '1', PYTHON: '/bin/false' });
  t.is(out.status, 1);
  t.regex(out.stderr, /LIBTORCH_USE_PYTORCH=1, but '\/bin\/false -c "import torch"' failed/);
});

test('the build stops before compiling when LibTorch is unusable', (t) => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIBTORCH')));
  const out = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], {
    env: { ...clean, LIBTORCH: '/nonexistent' },
    encoding: 'utf8',
  });
  t.not(out.status, 0);
  t.regex(out.stderr, /not a usable LibTorch/);
});
