// Which views are positives of which: the layout of a pre-training batch, written out by hand for small cases.
import test from 'ava';

import { anchorRows, modalityRows, viewGroups, viewLayout } from '../../lib/train/views.js';

test('with augmentations: two views per modality, T = 2 x modalities, rows modality by modality, view by view', (t) => {
  const layout = viewLayout(['s1', 's2', 'naip'], true);
  t.deepEqual(layout, { modalities: ['s1', 's2', 'naip'], views: 2, perLocation: 6 });
  // N = 2: rows s1v0(a, b) s1v1(a, b) s2v0(a, b) s2v1(a, b) naipv0(a, b) naipv1(a, b)
  t.deepEqual(viewGroups(layout, 2), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  t.deepEqual(modalityRows(layout, 's1', 2), [0, 4]);
  t.deepEqual(modalityRows(layout, 'naip', 2), [8, 12]);
});

test('a single modality with augmentations: its second view is the only positive', (t) => {
  const layout = viewLayout(['naip'], true);
  t.is(layout.perLocation, 2);
  const groups = viewGroups(layout, 3);
  t.deepEqual(groups, [0, 1, 2, 0, 1, 2]);
  // positives of row 1 (location 1, view 0): row 4 only
  t.deepEqual(
    groups.flatMap((g, row) => (g === groups[1] && row !== 1 ? [row] : [])),
    [4],
  );
});

test('without augmentations: one view per modality, the other modalities are the positives', (t) => {
  const layout = viewLayout(['s1', 'naip'], false);
  t.deepEqual(layout, { modalities: ['s1', 'naip'], views: 1, perLocation: 2 });
  t.deepEqual(viewGroups(layout, 3), [0, 1, 2, 0, 1, 2]);
  t.deepEqual(modalityRows(layout, 'naip', 3), [3, 6]);
});

test('Negatives are anchors of nothing, in every view of every modality', (t) => {
  const layout = viewLayout(['s1', 's2'], true);
  // locations: a (class), b (Negative), c (class)
  t.deepEqual(anchorRows(layout, [false, true, false]), [
    true,
    false,
    true,
    true,
    false,
    true,
    true,
    false,
    true,
    true,
    false,
    true,
  ]);
  t.deepEqual(anchorRows(viewLayout(['s1', 's2'], false), [true, true]), [false, false, false, false]);
});

test('a single modality without augmentations, no modality, or one twice are refused with the reason', (t) => {
  t.throws(() => viewLayout(['s2'], false), {
    code: 'ERR_MMSSL_ARG',
    message: /pre-training s2 alone needs augmentations: without them a location has one view and no positive/,
  });
  t.throws(() => viewLayout([], true), { code: 'ERR_MMSSL_ARG', message: /modalities/ });
  t.throws(() => viewLayout(['s1', 's1'], true), { code: 'ERR_MMSSL_ARG', message: /distinct/ });
  t.throws(() => modalityRows(viewLayout(['s1', 's2'], true), 'naip', 4), {
    code: 'ERR_MMSSL_ARG',
    message: /one of s1, s2/,
  });
});
