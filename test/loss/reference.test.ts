import test from 'ava';

import { infoNCEReference } from '../../lib/loss/reference.js';
import { randomBatch } from '../helpers/infonce.js';
import { maxRelErr } from '../helpers/reference.js';

test('hand-computed: one positive per anchor, a Negative view only in the denominators', (t) => {
  // u1 = (1, 0), u2 = (0, 1), u3 = (-1, 0); tau = 1: s12 = 0, s13 = -1, s23 = 0. View 3 is not an anchor.
  // L1 = -(s12 - log(e^s12 + e^s13)) = log(1 + 1/e); L2 = -(s21 - log(e^s21 + e^s23)) = log 2.
  const expected = (Math.log(1 + Math.exp(-1)) + Math.log(2)) / 2;
  for (const positives of ['sum', 'mean'] as const) {
    const { loss } = infoNCEReference([1, 0, 0, 1, -1, 0], [3, 2], [0, 0, 1], {
      temperature: 1,
      positives,
      anchorMask: [true, true, false],
    });
    t.true(Math.abs(loss - expected) < 1e-15, `${positives}: ${loss} vs ${expected}`);
  }
});

test('hand-computed: two positives per anchor, summed or averaged', (t) => {
  // All three views share a location. lse1 = lse3 = log(1 + 1/e), lse2 = log 2.
  // L1 = w(1 + 2 lse1), L2 = w(2 log 2), L3 = w(1 + 2 lse3), with w = 1 (sum) or 1/2 (mean).
  const lse = Math.log(1 + Math.exp(-1));
  const unweighted = (2 * (1 + 2 * lse) + 2 * Math.log(2)) / 3;
  const z = [2, 0, 0, 3, -0.5, 0]; // normalised inside the loss: the scale of each row does not matter
  t.true(
    Math.abs(infoNCEReference(z, [3, 2], [7, 7, 7], { temperature: 1, positives: 'sum' }).loss - unweighted) < 1e-14,
  );
  t.true(
    Math.abs(infoNCEReference(z, [3, 2], [7, 7, 7], { temperature: 1, positives: 'mean' }).loss - unweighted / 2) <
      1e-14,
  );
});

const small = { maxViews: 10, maxDim: 6 };

test('the analytic gradient equals central finite differences over 60 random batches', (t) => {
  for (let seed = 0; seed < 60; seed++) {
    const c = randomBatch(seed, small);
    const { grad } = infoNCEReference(c.z, c.shape, c.groups, c);
    const h = 1e-6;
    const numeric = c.z.map((_, k) => {
      const plus = [...c.z];
      const minus = [...c.z];
      plus[k] += h;
      minus[k] -= h;
      return (
        (infoNCEReference(plus, c.shape, c.groups, c).loss - infoNCEReference(minus, c.shape, c.groups, c).loss) /
        (2 * h)
      );
    });
    t.true(maxRelErr(grad, numeric, 1e-4) < 1e-5, `seed ${seed}: ${[...grad]} vs ${numeric}`);
  }
});

test('the loss does not depend on the order of the views', (t) => {
  const c = randomBatch(99, small);
  const [v, d] = c.shape;
  const order = Array.from({ length: v }, (_, i) => v - 1 - i);
  const permuted = order.flatMap((i) => c.z.slice(i * d, (i + 1) * d));
  const options = { ...c, anchorMask: order.map((i) => c.anchorMask[i]) };
  const a = infoNCEReference(c.z, c.shape, c.groups, c).loss;
  const b = infoNCEReference(
    permuted,
    c.shape,
    order.map((i) => c.groups[i]),
    options,
  ).loss;
  t.true(Math.abs(a - b) < 1e-12 * Math.abs(a));
});

test('bad input says which view or option is wrong', (t) => {
  const z = [1, 0, 0, 1, -1, 0];
  const err = (fn: () => unknown, message: RegExp) => t.throws(fn, { code: 'ERR_MMSSL_ARG', message });
  err(() => infoNCEReference(z, [3, 2], [0, 0, 1]), /groups \(view 2\) must be shared by at least one other view/);
  err(() => infoNCEReference(z, [3, 2], [0, 0, 1], { anchorMask: [false, false, false] }), /at least one anchor/);
  err(() => infoNCEReference(z, [3, 2], [0, 0]), /groups must be one location id per view \(3\)/);
  err(() => infoNCEReference(z, [3, 2], [0, 0, 0], { anchorMask: [true] }), /anchorMask must be one flag per view/);
  err(() => infoNCEReference(z.slice(1), [3, 2], [0, 0, 0]), /z must be 6 values/);
  err(
    () => infoNCEReference([1, 0, Number.NaN, 1, -1, 0], [3, 2], [0, 0, 0]),
    /z \(view 1, component 0\) must be finite/,
  );
  err(() => infoNCEReference(z, [3, 2], [0, 0, 0], { temperature: 0 }), /temperature must be a finite number > 0/);
  err(() => infoNCEReference([0, 0, 0, 1, -1, 0], [3, 2], [0, 0, 0]), /view 0\) must be a non-zero embedding/);
  err(() => infoNCEReference(z, [3, 2], [0, 0, 0], { positives: 'all' as never }), /positives must be one of/);
});
