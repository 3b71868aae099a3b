import test, { type ExecutionContext } from 'ava';

import { loss, torch } from '../../lib/index.js';
import { randomBatch } from '../helpers/infonce.js';
import { maxRelErr, values } from '../helpers/reference.js';

/** V from 2 to 1024 (most small), d from 1 to 512: the ranges the issue asks for. */
const randomCase = (seed: number) => randomBatch(seed, { maxViews: 1023, maxDim: 511, skew: 3 });

type Case = ReturnType<typeof randomCase>;

/** The native loss and gradient on one float64 batch against the reference, within 1e-5 relative. */
function checkFloat64(t: ExecutionContext, c: Case, options: loss.InfoNCELossOptions, label: string): void {
  const expected = loss.infoNCEReference(c.z, c.shape, c.groups, c);
  torch.tidy(() => {
    const z = torch.tensor(c.z, { dtype: 'float64' }).reshape(c.shape).requiresGrad_();
    const value = loss.infoNCE(z, c.groups, { ...c, ...options });
    value.backward();
    const where = `${label} (V ${c.shape[0]}, d ${c.shape[1]}, strip ${c.stripRows})`;
    // (+1e-12: a batch of one location pair has loss exactly 0, and float64 leaves ~1e-16)
    t.true(
      Math.abs(value.item() - expected.loss) <= 1e-5 * Math.abs(expected.loss) + 1e-12,
      `${where}: loss ${value.item()} vs ${expected.loss}`,
    );
    t.true(maxRelErr(values(z.grad!), expected.grad, 1e-6) < 1e-5, `${where}: gradient`);
  });
}

test.serial(
  'native vs the TypeScript reference: loss and gradient within 1e-5 over 200 random batches (float64)',
  (t) => {
    const before = torch.memoryStats().tensors;
    const cases = Array.from({ length: 200 }, (_, seed) => randomCase(seed));
    const withSingles = cases.filter((c) =>
      c.groups.some((g) => c.groups.indexOf(g) === c.groups.lastIndexOf(g)),
    ).length;
    t.true(withSingles >= 30, `${withSingles} of 200 batches hold views without a positive (non-anchors)`);
    cases.forEach((c, seed) => checkFloat64(t, c, {}, `seed ${seed}`));
    t.is(torch.memoryStats().tensors, before);
  },
);

test('the device-generic ATen path (what CUDA runs) agrees with the reference on 40 batches', (t) => {
  for (let seed = 200; seed < 240; seed++) checkFloat64(t, randomCase(seed), { kernel: 'aten' }, `seed ${seed}, aten`);
});

for (const accumulateInFloat64 of [false, true]) {
  for (const kernel of ['auto', 'aten'] as const) {
    test(`float32 embeddings (${kernel} kernel, float${accumulateInFloat64 ? 64 : 32} accumulation): within 1e-5 of the float64 reference at tau = 0.05`, (t) => {
      for (let seed = 1000; seed < 1020; seed++) {
        const c = { ...randomCase(seed), temperature: 0.05 };
        const expected = loss.infoNCEReference(c.z, c.shape, c.groups, c);
        torch.tidy(() => {
          const z = torch.tensor(c.z, { dtype: 'float32' }).reshape(c.shape).requiresGrad_();
          const value = loss.infoNCE(z, c.groups, { ...c, accumulateInFloat64, kernel });
          value.backward();
          t.is(value.dtype, 'float32');
          t.true(
            Math.abs(value.item() - expected.loss) <= 1e-5 * Math.abs(expected.loss) + 1e-6,
            `seed ${seed}: ${value.item()} vs ${expected.loss}`,
          );
          const grad = values(z.grad!);
          const scale = Math.max(...expected.grad.map(Math.abs));
          const worst = Math.max(...grad.map((g, i) => Math.abs(g - expected.grad[i])));
          // (+1e-6: with one location pair the loss is constant 0 and the true gradient exactly 0)
          t.true(
            worst <= 1e-4 * scale + 1e-6,
            `seed ${seed} (V ${c.shape[0]}, d ${c.shape[1]}): gradient off by ${worst}, scale ${scale}`,
          );
        });
      }
    });
  }
}

test('float32 at V = 4096, tau = 0.05: the fused loops agree with a float64 run of the same embeddings', (t) => {
  torch.tidy(() => {
    torch.manualSeed(7);
    const z = torch.randn([4096, 64]);
    const groups = Array.from({ length: 4096 }, (_, i) => i >> 2);
    const exact = loss.infoNCE(z.to({ dtype: 'float64' }), groups, { temperature: 0.05 }).item();
    for (const accumulateInFloat64 of [false, true]) {
      const value = loss.infoNCE(z, groups, { temperature: 0.05, accumulateInFloat64 }).item();
      t.true(
        Math.abs(value - exact) <= 2e-6 * exact,
        `float${accumulateInFloat64 ? 64 : 32} accumulation: ${value} vs ${exact}`,
      );
    }
  });
});

test('the naive composition and the native loss agree', (t) => {
  const c = randomCase(11);
  torch.tidy(() => {
    const z = torch.tensor(c.z, { dtype: 'float64' }).reshape(c.shape);
    const naive = loss.infoNCENaive(z, torch.tensor(c.groups), { ...c, anchorMask: torch.tensor(c.anchorMask) }).item();
    const tiled = loss.infoNCE(z, torch.tensor(c.groups), { ...c, anchorMask: torch.tensor(c.anchorMask) }).item();
    t.true(Math.abs(naive - tiled) <= 1e-12 * Math.abs(naive) + 1e-14, `${naive} vs ${tiled}`);
  });
});

test('bad input says which view or option is wrong', (t) => {
  torch.tidy(() => {
    const z = torch.tensor(
      [
        [1, 0],
        [0, 1],
        [-1, 0],
      ],
      { dtype: 'float32' },
    );
    const err = (fn: () => unknown, message: RegExp) => t.throws(fn, { code: 'ERR_MMSSL_ARG', message });
    err(() => loss.infoNCE(z, [0, 0, 1]), /groups \(view 2\) must be shared by at least one other view/);
    err(() => loss.infoNCE(z, [0, 0, 1], { anchorMask: [false, false, false] }), /at least one anchor/);
    err(() => loss.infoNCE(z, [0, 0]), /groups must be one location id per view \(3\)/);
    err(() => loss.infoNCE(z, [0, 0, 0], { anchorMask: [true] }), /anchorMask must be one flag per view/);
    err(() => loss.infoNCE(z.reshape(6), [0, 0, 0]), /z must be a \[V, d\] tensor/);
    // Not finite in, not finite out: checking z on every call would read the device each step (the trainer reads
    // the loss at its log points and names the step).
    const nan = loss.infoNCE(
      torch.tensor(
        [
          [1, 0],
          [0, Number.NaN],
          [1, 1],
        ],
        { dtype: 'float32' },
      ),
      [0, 0, 0],
    );
    t.true(Number.isNaN(nan.item()));
    err(() => loss.infoNCE(z, [0, 0, 0], { temperature: 0 }), /temperature must be a finite number > 0/);
    err(() => loss.infoNCE(z, [0, 0, 0], { temperature: -1 }), /temperature/);
    err(() => loss.infoNCE(z, [0, 0, 0], { stripRows: 0 }), /stripRows must be a positive integer/);
    err(() => loss.infoNCE(z, [0, 0, 0], { kernel: 'cuda' as never }), /kernel must be one of/);
    err(() => loss.infoNCE(z, [0, 0, 0], { positives: 'all' as never }), /positives must be one of/);
  });
});
