// Live tensors must not grow at all over 10,000 tidy() iterations, and the resident set must stay flat once the
// allocators have warmed up: over the second 5,000 iterations it may not grow by 5 MiB (a leak of 1 KiB per iteration
// would grow it by 5; the smallest tensor of the loop is 9 KiB). The loop runs in a child process so other test files
// cannot move its RSS.
import test from 'ava';
import { execFileSync } from 'node:child_process';

const loop = new URL('../fixtures/leak-loop.js', import.meta.url).pathname;

test('10,000 tidy iterations of forward+backward leave live tensors and RSS flat', (t) => {
  const { before, halfway, after } = JSON.parse(execFileSync(process.execPath, [loop, '10000'], { encoding: 'utf8' }));
  t.is(after.tensors, before.tensors);
  const growth = (after.rss - halfway.rss) / 2 ** 20;
  t.true(
    growth < 5,
    `RSS grew by ${growth.toFixed(1)} MiB over the second 5,000 iterations (${((halfway.rss - before.rss) / 2 ** 20).toFixed(1)} MiB over the first)`,
  );
});
