import test from 'ava';
import { createHash } from 'node:crypto';

import { nn, torch } from '../../lib/index.js';
import { maxRelErr, values } from '../helpers/reference.js';
import { pytorchReference } from './torchvision_reference.js';

const { alexnet, resnet18, ResNet } = nn.models;
const { tidy } = torch;
const live = () => torch.memoryStats().tensors;
const sha256 = (t: torch.Tensor) => createHash('sha256').update(new Uint8Array(t.toTypedArray().buffer)).digest('hex');
const countParameters = (m: nn.Module) => m.parameters().reduce((n, p) => n + p.numel(), 0);

const factories = { alexnet, resnet18 };
const torchvisionTotals = { alexnet: 61_100_840, resnet18: 11_689_512 };

// The configurations are test/fixtures/torchvision_reference.py's MODELS: the script decides what is tested.
const pytorch = await pytorchReference('models');

for (const [name, c] of Object.entries(pytorch.info)) {
  const expected = (key: string) => pytorch.values.get(`${name}/${key}`)!;
  test.serial(
    `${name}: torchvision's keys, shapes, parameter count and seeded weights; outputs, features, input gradients and statistics in eval and train mode`,
    (t) => {
      torch.manualSeed(c.seed);
      const model = factories[c.model]({ inChannels: c.inChannels, numClasses: c.numClasses });
      const state = model.stateDict();
      t.deepEqual(
        [...state].map(([k, v]) => [k, [...v.shape], v.dtype]),
        c.keys,
      );
      t.is(countParameters(model), c.numParameters);
      if (c.inChannels === 3 && c.numClasses === 1000)
        t.is(c.numParameters, torchvisionTotals[c.model], "torchvision's own configuration");
      t.deepEqual(
        [...state].filter(([k, v]) => sha256(v) !== c.sha256[k]).map(([k]) => k),
        [],
        "every tensor has torchvision's bytes",
      );
      tidy(() => {
        torch.manualSeed(c.seed + 1);
        const x = torch.randn([2, c.inChannels, c.size, c.size]);
        const cotangent = torch.randn([2, c.numClasses]);
        t.is(sha256(x), c.inputSha256, 'the same input');
        for (const mode of ['eval', 'train'] as const) {
          model.train(mode === 'train');
          const xg = x.clone().requiresGrad_();
          torch.manualSeed(c.seed + 2); // AlexNet's dropout masks in train mode: the same draws as PyTorch's
          const out = model.forward(xg);
          out.mul(cotangent).sum().backward();
          const errors = {
            out: maxRelErr(values(out), expected(`${mode}/out`)),
            inputGrad: maxRelErr(values(xg.grad!), expected(`${mode}/inputGrad`)),
          };
          t.true(errors.out < 1e-4 && errors.inputGrad < 1e-4, `${mode}: ${JSON.stringify(errors)}`);
          if (mode === 'eval') {
            const features = torch.noGrad(() => model.features(x));
            t.deepEqual(features.shape, [2, model.featureDim]);
            t.true(
              maxRelErr(values(features), expected('eval/features')) < 1e-4,
              'features(x) is the input of the last Linear layer',
            );
          }
        }
        const buffers = model.namedBuffers();
        const theirs = [...pytorch.values.keys()]
          .filter((k) => k.startsWith(`${name}/buffers/`))
          .map((k) => k.slice(`${name}/buffers/`.length));
        t.deepEqual(buffers.map(([k]) => k).sort(), theirs.sort());
        const worst = Math.max(0, ...buffers.map(([k, b]) => maxRelErr(values(b), expected(`buffers/${k}`))));
        t.true(worst < 1e-4, `running statistics after the train-mode forward: ${worst}`);
      });
      model.dispose();
    },
  );
}

test.serial("ResNet zeroInitResidual starts every block's last BatchNorm at weight 0", (t) => {
  const model = resnet18({ inChannels: 1, numClasses: 2, zeroInitResidual: true });
  const bnWeights = model.namedParameters().filter(([k]) => /bn\d\.weight$|downsample\.1\.weight$/.test(k));
  t.is(bnWeights.length, 20);
  for (const [k, w] of bnWeights) t.deepEqual(new Set(values(w)), new Set([k.endsWith('bn2.weight') ? 0 : 1]), k);
  model.dispose();
});

test.serial('bad options and inputs are rejected with ERR_MMSSL_ARG before anything is allocated', (t) => {
  const before = live();
  t.throws(() => alexnet({ inChannels: 0 }), {
    code: 'ERR_MMSSL_ARG',
    message: /AlexNet: inChannels must be a positive integer/,
  });
  t.throws(() => alexnet({ numClasses: 1.5 }), { code: 'ERR_MMSSL_ARG' });
  t.throws(() => alexnet({ dropout: 2 }), { code: 'ERR_MMSSL_ARG', message: /Dropout: p must be a probability/ });
  t.throws(() => alexnet(3 as never), { code: 'ERR_MMSSL_ARG' });
  t.throws(() => resnet18({ zeroInitResidual: 'yes' as never }), { code: 'ERR_MMSSL_ARG' });
  t.throws(() => resnet18({ inChannels: -1 }), { code: 'ERR_MMSSL_ARG' });
  t.throws(() => new ResNet([2, 2, 2]), {
    code: 'ERR_MMSSL_ARG',
    message: /ResNet: layers must be an array of 4 block counts/,
  });
  t.throws(() => new ResNet([2, 2, 0, 2]), { code: 'ERR_MMSSL_ARG', message: /layers\[2\]/ });
  t.is(live(), before);
  const model = resnet18({ inChannels: 4, numClasses: 3 });
  tidy(() => {
    t.throws(() => model.forward(torch.ones([1, 3, 64, 64])), {
      code: 'ERR_MMSSL_ARG',
      message: /Conv2d: input must be a \[N, 4, H, W\] tensor, got a float32 tensor of shape \[1, 3, 64, 64\] on cpu/,
    });
    t.throws(() => model.features(torch.ones([4, 64, 64])), { code: 'ERR_MMSSL_ARG' });
  });
  model.dispose();
  t.is(live(), before);
});

test.serial('a training step leaves only the parameters and buffers; dispose() frees them all', (t) => {
  const before = live();
  const models = [alexnet({ inChannels: 2, numClasses: 7 }), resnet18({ inChannels: 2, numClasses: 7 })];
  const held = models.map((m) => m.parameters().length + m.buffers().length);
  for (const model of models) {
    tidy(() => {
      model.zeroGrad();
      model
        .forward(torch.randn([2, 2, 72, 72]))
        .sum()
        .backward();
    });
  }
  t.is(live(), before + held[0] + held[1]);
  t.deepEqual(held, [16, 62 + 60]);
  for (const model of models) model.dispose();
  t.is(live(), before);
});
