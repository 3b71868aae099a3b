#!/usr/bin/env node
// The folders, relative to the checkout, of the named packages and everything they depend on (dependencies and
// optional ones, resolved as Node resolves them from each package's folder): what scripts/check-gpu.sh bundles.
//   node scripts/check-gpu-closure.mjs NAME...
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

function resolveFrom(dir, name) {
  for (let d = dir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (d === dirname(d)) return undefined;
  }
}

const seen = new Set();
function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const { dependencies, optionalDependencies } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const name of Object.keys({ ...dependencies, ...optionalDependencies })) {
    const found = resolveFrom(dir, name);
    if (found) visit(found);
  }
}

for (const name of process.argv.slice(2)) {
  const found = resolveFrom(process.cwd(), name);
  if (!found) throw new Error(`check-gpu-closure: ${name} is not installed (run npm ci)`);
  visit(found);
}
// A package nested in another's node_modules is inside that folder already.
const folders = [...seen].sort();
console.log(
  folders
    .filter((f) => !folders.some((p) => p !== f && f.startsWith(`${p}/`)))
    .map((f) => relative(process.cwd(), f))
    .join('\n'),
);
