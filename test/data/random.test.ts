import test from 'ava';

import { data } from '../../lib/index.js';

const { Random } = data;

test('a seed gives one stream; fork(key) depends on (seed, key) only and leaves the parent where it was', (t) => {
  const a = new Random(42),
    b = new Random(42);
  const first = Array.from({ length: 5 }, () => a.nextUint32());
  t.deepEqual(
    first,
    Array.from({ length: 5 }, () => b.nextUint32()),
  );
  t.notDeepEqual(
    first,
    Array.from({ length: 5 }, () => new Random(43).nextUint32()),
  );
  const before = new Random(7),
    forked = before.fork(3).random();
  t.is(new Random(7).fork(3).random(), forked);
  t.is(before.random(), new Random(7).random(), 'forking does not advance the parent');
  t.not(new Random(7).fork(3).random(), new Random(7).fork(4).random());
  t.not(new Random(7).fork(3).random(), new Random(8).fork(3).random());
});

test('uniform, integer, normal and Bernoulli draws have the moments they should (5 sigma over 200,000 draws)', (t) => {
  const random = new Random(1);
  const n = 200000;
  let sum = 0,
    sumSq = 0,
    normalSum = 0,
    normalSq = 0,
    heads = 0;
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < n; i++) {
    const u = random.random();
    t.true(u >= 0 && u < 1);
    sum += u;
    sumSq += u * u;
    counts[random.int(7)]++;
    const z = random.normal();
    normalSum += z;
    normalSq += z * z;
    heads += Number(random.bernoulli(0.3));
  }
  t.true(Math.abs(sum / n - 0.5) < 5 * Math.sqrt(1 / 12 / n), `uniform mean ${sum / n}`);
  t.true(Math.abs(sumSq / n - 1 / 3) < 5 * Math.sqrt(4 / 45 / n), `uniform second moment ${sumSq / n}`);
  for (const c of counts) t.true(Math.abs(c - n / 7) < 5 * Math.sqrt((n * 6) / 49), `int(7) count ${c}`);
  t.true(Math.abs(normalSum / n) < 5 / Math.sqrt(n), `normal mean ${normalSum / n}`);
  t.true(Math.abs(normalSq / n - 1) < 5 * Math.sqrt(2 / n), `normal variance ${normalSq / n}`);
  t.true(Math.abs(heads - 0.3 * n) < 5 * Math.sqrt(n * 0.21), `${heads} heads at p = 0.3`);
});

test('shuffle is a permutation, and every position is reached', (t) => {
  const random = new Random(5);
  const firstPlace = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const order = random.shuffle([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    t.deepEqual(
      [...order].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    firstPlace.add(order[0]);
  }
  t.is(firstPlace.size, 10);
});
