// Live tensors must not grow at all over 10,000 tidy() iterations, and the resident set must stay flat once the
// allocators have warmed up. The loop runs in a child process so other test files cannot move its RSS.
import test from 'ava';
import { execFileSync } from 'node:child_process';

const loop = new URL('../fixtures/leak-loop.js', import.meta.url).pathname;

test('10,000 tidy iterations of forward+backward leave live tensors and RSS flat', (t) => {
  const { before, after } = JSON.parse(execFileSync(process.execPath, [loop, '10000'], { encoding: 'utf8' }));
  t.is(after.tensors, before.tensors);
  const growth = (after.rss - before.rss) / 2 ** 20;
  t.true(growth < 10, `RSS grew by ${growth.toFixed(1)} MiB over 10,000 iterations`);
});
