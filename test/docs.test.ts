/**
 * The documentation: the README stays short and its library example runs; every relative link of README.md and docs/
 * resolves; the generated reference pages are what the code renders now (run `npm run docs` after changing an option,
 * a command or a TSDoc comment).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import test from 'ava';
import ts from 'typescript';

import { REFERENCE_PAGES } from '../scripts/docs/reference.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const markdown = (dir: string): string[] =>
  readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdown(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
  );

test('the README is a short manual (at most 10 KB) and links the guides and references', (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  t.true(Buffer.byteLength(readme) <= 10 * 1024, `${Buffer.byteLength(readme)} bytes`);
  for (const page of [
    'docs/concepts.md',
    'docs/reference/cli.md',
    'docs/reference/config.md',
    'docs/guides/training.md',
  ])
    t.true(readme.includes(`](${page})`), page);
});

test("the README's library example runs as it is written", (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(code, 'the README has a TypeScript example');
  const js = ts.transpileModule(
    code!.replace(/from 'mmssl'/g, `from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/lib/index.js')).href)}`),
    { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } },
  ).outputText;
  const dir = mkdtempSync(join(tmpdir(), 'mmssl-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'example.mjs'), js);
  const out = execFileSync(process.execPath, [join(dir, 'example.mjs')], { encoding: 'utf8', timeout: 120_000 });
  t.regex(out, /^loss \d+\.\d+/m);
});

test('every relative link of README.md and docs/ resolves to a file', (t) => {
  const pages = ['README.md', ...markdown('docs')];
  t.true(pages.length >= 10, `${pages.length} pages`);
  const broken: string[] = [];
  for (const page of pages) {
    const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      if (!existsSync(resolve(ROOT, dirname(page), target))) broken.push(`${page}: ${target}`);
    }
  }
  t.deepEqual(broken, []);
});

test('docs/api, the API reference, is what TypeDoc generates from the TSDoc comments now, without a warning (npm run docs)', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'mmssl-api-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  execFileSync(
    process.execPath,
    // typedoc.json treats warnings (a public signature naming an undocumented type) as errors: this throws on them.
    [join(ROOT, 'node_modules/typedoc/bin/typedoc'), '--out', out, '--logLevel', 'Warn'],
    { cwd: ROOT, encoding: 'utf8', timeout: 240_000 },
  );
  const files = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .sort();
  const expected = files(out);
  t.true(expected.length > 50, `${expected.length} pages generated`);
  t.deepEqual(files(join(ROOT, 'docs/api')), expected, 'the same pages');
  const stale = expected.filter(
    (f) => readFileSync(join(out, f), 'utf8') !== readFileSync(join(ROOT, 'docs/api', f), 'utf8'),
  );
  t.deepEqual(stale, [], 'stale pages: run npm run docs');
});

for (const [path, render] of Object.entries(REFERENCE_PAGES)) {
  test(`${path} is up to date (npm run docs)`, (t) => {
    t.is(readFileSync(join(ROOT, path), 'utf8'), render(), `${path} is stale: run npm run docs`);
  });
}
