// 10,000 iterations of a realistic op chain (a small forward and backward pass) under tidy(): live tensors must not
// grow at all, and the resident set must stay flat once allocators have warmed up.
import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import { gc } from '../helpers/gc.js';

const F = nn.functional;

test('10,000 tidy iterations of forward+backward leave live tensors and RSS flat', (t) => {
  const w = torch.keep(torch.randn([8, 4, 3, 3]).mul(0.1).requiresGrad_());
  const lin = torch.keep(torch.randn([6, 8]).mul(0.1).requiresGrad_());
  const step = () => torch.tidy(() => {
    const x = torch.randn([4, 4, 12, 12]);
    const h = F.maxPool2d(F.conv2d(x, w, null, { padding: 1 }).relu(), 2);
    const logits = F.linear(F.adaptiveAvgPool2d(h, 1).flatten(1), lin);
    const loss = F.crossEntropy(logits, torch.randint(0, 6, [4]));
    loss.backward();
    torch.noGrad(() => {
      w.sub_(w.grad!.mul(0.01));
      lin.sub_(lin.grad!.mul(0.01));
    });
    torch.zeroGrad([w, lin]);
    return loss.item() as number;
  });
  for (let i = 0; i < 500; i++) step();
  gc();
  const tensorsBefore = torch.memoryStats().tensors;
  const rssBefore = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) step();
  gc();
  const rssGrowth = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  t.is(torch.memoryStats().tensors, tensorsBefore);
  t.true(rssGrowth < 20, `RSS grew by ${rssGrowth.toFixed(1)} MiB over 10,000 iterations`);
  w.dispose();
  lin.dispose();
});
