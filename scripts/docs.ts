/** `npm run docs`: writes the generated reference pages (scripts/docs/reference.ts) and the API reference (TypeDoc). */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import { REFERENCE_PAGES } from './docs/reference.js';

for (const [path, render] of Object.entries(REFERENCE_PAGES)) {
  writeFileSync(path, render());
  console.log(path);
}
// TypeDoc with typedoc.json: docs/api from the TSDoc comments of the package's two entry points
execFileSync(process.execPath, ['node_modules/typedoc/bin/typedoc'], { stdio: 'inherit' }); // (not npx: absent in some roots)
console.log('docs/api');
