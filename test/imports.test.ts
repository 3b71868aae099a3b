/**
 * What loads with what: the static imports of the compiled package (dist/lib, where type-only imports are gone and
 * dynamic `import()`s stay lazy). No cycle between lib's folders; `import 'mmssl'` does not load the report's
 * renderers; `mmssl/serve` (its entry and its worker) does not load the training stack.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';
import ts from 'typescript';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../lib');

/** A module's static imports: files of the package (absolute paths) and packages (their names). */
function staticImports(file: string): { files: string[]; packages: string[] } {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const specifiers = source.statements.flatMap((s) =>
    (ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) &&
    s.moduleSpecifier &&
    ts.isStringLiteral(s.moduleSpecifier)
      ? [s.moduleSpecifier.text]
      : [],
  );
  const files = specifiers.filter((m) => m.startsWith('.')).map((m) => resolve(dirname(file), m));
  const packages = specifiers
    .filter((m) => !m.startsWith('.') && !m.startsWith('node:'))
    .map((m) => (m.startsWith('@') ? m.split('/').slice(0, 2) : m.split('/').slice(0, 1)).join('/'));
  return { files, packages };
}

/** Every file and package loaded with `entries`. */
function closure(...entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>(),
    packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const found = staticImports(file);
    found.packages.forEach((p) => packages.add(p));
    found.files.forEach(visit);
  };
  entries.map((e) => join(LIB, e)).forEach(visit);
  return { files, packages };
}

const folderOf = (file: string) => dirname(relative(LIB, file)).split('/')[0];
const libFiles = (dir = LIB): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? libFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
  );

test("no cycle between lib's folders (the entry points index.ts and cli/ aside)", (t) => {
  const edges = new Map<string, Set<string>>();
  const files = libFiles().filter((f) => relative(LIB, f) !== 'index.js' && folderOf(f) !== 'cli');
  t.true(files.length > 50, `the compiled package is found (${files.length} files in ${LIB})`);
  for (const file of files) {
    for (const imported of staticImports(file).files) {
      const [from, to] = [folderOf(file), folderOf(imported)];
      if (from !== to && from !== '.' && to !== '.') (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
    }
  }
  t.true(edges.size > 5, 'folders import one another');
  const cycles: string[] = [];
  const walk = (folder: string, path: string[]) => {
    if (path.includes(folder)) return void cycles.push([...path.slice(path.indexOf(folder)), folder].join(' -> '));
    for (const next of edges.get(folder) ?? []) walk(next, [...path, folder]);
  };
  for (const folder of edges.keys()) walk(folder, []);
  t.deepEqual([...new Set(cycles)], []);
});

test("import 'mmssl' loads neither vega, vega-lite nor umap-js (they load with the first report)", (t) => {
  const { files, packages } = closure('index.js');
  t.true(files.has(join(LIB, 'report/build.js')), 'the report namespace is part of the package');
  t.true(packages.has('commander') || packages.has('geotiff'), `packages are found: ${[...packages].join(', ')}`);
  t.deepEqual(
    [...packages].filter((p) => ['vega', 'vega-lite', 'umap-js'].includes(p)),
    [],
  );
});

test('mmssl/serve (its entry and its inference worker) does not load training, experiments, the report or the optimizers', (t) => {
  const { files } = closure('serve/index.js', 'serve/worker.js');
  t.true(files.has(join(LIB, 'runs/load.js')), 'serving loads runs');
  const loaded = [...files]
    .map((f) => relative(LIB, f))
    .filter((f) => ['train', 'experiments', 'report', 'optim', 'loss', 'distributed'].includes(folderOf(join(LIB, f))));
  t.deepEqual(loaded, []);
});
