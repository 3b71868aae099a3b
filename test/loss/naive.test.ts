import test from 'ava';

import { loss, torch } from '../../lib/index.js';
import { randomBatch } from '../helpers/infonce.js';
import { maxRelErr, values } from '../helpers/reference.js';

test('the naive composition agrees with the TypeScript reference, loss and gradient, over 40 random batches', (t) => {
  const before = torch.memoryStats().tensors;
  for (let seed = 0; seed < 40; seed++) {
    const c = randomBatch(seed, { maxViews: 64, maxDim: 32 });
    const expected = loss.infoNCEReference(c.z, c.shape, c.groups, c);
    torch.tidy(() => {
      const z = torch.tensor(c.z, { dtype: 'float64' }).reshape(c.shape).requiresGrad_();
      const value = loss.infoNCENaive(z, torch.tensor(c.groups), { ...c, anchorMask: torch.tensor(c.anchorMask) });
      value.backward();
      t.true(
        Math.abs(value.item() - expected.loss) <= 1e-10 * Math.abs(expected.loss),
        `seed ${seed}: loss ${value.item()} vs ${expected.loss}`,
      );
      // (with d = 1 and normalisation the true gradient is exactly 0, and float64 leaves ~1e-14: hence the atol)
      t.true(maxRelErr(values(z.grad!), expected.grad, 1e-6) < 1e-6, `seed ${seed}: gradient`);
    });
  }
  t.is(torch.memoryStats().tensors, before);
});
