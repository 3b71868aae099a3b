import test from 'ava';

import { loss, torch } from '../../lib/index.js';
import { maxRelErr, randomArray, rng, values } from '../helpers/reference.js';

/** A random batch as in test/loss/reference.test.ts, but larger: V up to 64, d up to 32. */
function randomCase(seed: number) {
  const r = rng(seed);
  const v = 2 + Math.floor(r() * 63);
  const d = 1 + Math.floor(r() * 32);
  const locations = 1 + Math.floor(r() * Math.floor(v / 2));
  const groups = Array.from({ length: v }, (_, i) => (i < 2 * locations ? i % locations : Math.floor(r() * locations)));
  const anchorMask = groups.map(() => r() < 0.8);
  anchorMask[0] = true;
  return { z: randomArray(v * d, seed + 1), shape: [v, d] as [number, number], groups, anchorMask,
    temperature: 0.05 + r() * 0.95, positives: r() < 0.5 ? 'sum' as const : 'mean' as const, normalize: r() < 0.7 };
}

test('the naive composition agrees with the TypeScript reference, loss and gradient, over 40 random batches', (t) => {
  const before = torch.memoryStats().tensors;
  for (let seed = 0; seed < 40; seed++) {
    const c = randomCase(seed);
    const expected = loss.infoNCEReference(c.z, c.shape, c.groups, c);
    torch.tidy(() => {
      const z = torch.tensor(c.z, { dtype: 'float64' }).reshape(c.shape).requiresGrad_();
      const value = loss.infoNCENaive(z, torch.tensor(c.groups), { ...c, anchorMask: torch.tensor(c.anchorMask) });
      value.backward();
      t.true(Math.abs(value.item() - expected.loss) <= 1e-10 * Math.abs(expected.loss), `seed ${seed}: loss ${value.item()} vs ${expected.loss}`);
      // (with d = 1 and normalisation the true gradient is exactly 0, and float64 leaves ~1e-14: hence the atol)
      t.true(maxRelErr(values(z.grad!), expected.grad, 1e-6) < 1e-6, `seed ${seed}: gradient`);
    });
  }
  t.is(torch.memoryStats().tensors, before);
});
