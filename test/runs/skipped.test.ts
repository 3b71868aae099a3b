import test from 'ava';

import { describeSkipped } from '../../lib/runs/skipped.js';

const sample = (id: string, phase: string) => ({ id, phase, message: `${id}/s1.npy: missing` });

test('describeSkipped counts and names distinct samples: one skipped in the statistics and in training is one', (t) => {
  t.is(describeSkipped([sample('a', 'stats'), sample('a', 'train')]), '1 sample skipped: a (a/s1.npy: missing)');
  const many = ['a', 'b', 'c', 'd', 'e'].flatMap((id) => [sample(id, 'stats'), sample(id, 'train')]);
  t.is(
    describeSkipped(many),
    '5 samples skipped: a (a/s1.npy: missing); b (b/s1.npy: missing); c (c/s1.npy: missing); and 2 more',
  );
  t.is(describeSkipped(many, 1), '5 samples skipped: a (a/s1.npy: missing); and 4 more');
});
