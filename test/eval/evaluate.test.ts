// mmssl evaluate's parts: modality subsets and modality dropout (never all of a sample's modalities), the missing
// token in the classifier, cross-modal retrieval of a pre-training run beside random initialisation (against ranks
// counted in TypeScript from the run's own embeddings), and accuracy per modality subset of a fine-tuned run.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { torch } from '../../lib/index.js';
import { Random } from '../../lib/data/random.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { FusionClassifier } from '../../lib/nn/models/multimodal.js';
import { peekWeights } from '../../lib/io/checkpoint.js';
import { resolveFinetuneConfig, resolvePretrainConfig } from '../../lib/config/index.js';
import { evaluateRun, formatEvaluation, nonEmptySubsets } from '../../lib/eval/evaluate.js';
import { dropMask, finetune } from '../../lib/train/finetune.js';
import { pretrain } from '../../lib/train/pretrain.js';
import { loadRun } from '../../lib/runs/load.js';
import { DataLoader } from '../../lib/data/loader.js';
import { openPath } from '../../lib/data/open.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-evaluate-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const small = { alexnetHidden: 32, threads: 1, workers: 1, seed: 2, batchSize: 8 };
const run = join(scratch, 'run');
const ready = synthesize({ out: data, perClass: 6, seed: 4, holdout: { val: 0.34, test: 0.17 }, defects: false }).then(
  () =>
    pretrain({
      config: resolvePretrainConfig(small, {
        data,
        modalities: ['s1', 's2'],
        epochs: 2,
        hiddenDim: 32,
        embeddingDim: 16,
        optimizer: { name: 'adam', lr: 1e-3 },
        knn: { every: 0 },
      }),
      out: run,
    }),
);

test('every non-empty subset of the modalities, larger first', (t) => {
  t.deepEqual(nonEmptySubsets(['s1', 's2', 'naip']), [
    ['s1', 's2', 'naip'],
    ['s1', 's2'],
    ['s1', 'naip'],
    ['s2', 'naip'],
    ['s1'],
    ['s2'],
    ['naip'],
  ]);
  t.deepEqual(nonEmptySubsets(['s2']), [['s2']]);
});

test('modality dropout never drops all of a sample, drops each modality at about p, and none at p = 0', (t) => {
  const random = new Random(1);
  for (const [modalities, p] of [
    [2, 0.9],
    [3, 0.95],
    [2, 0.3],
  ] as const) {
    const mask = dropMask(random, 4000, modalities, p);
    t.true(
      mask.every((row) => row.some((dropped) => !dropped)),
      `${modalities} modalities at p = ${p}`,
    );
    if (p === 0.3) {
      const rate = mask.flat().filter(Boolean).length / mask.flat().length;
      t.true(Math.abs(rate - (0.3 - 0.3 ** 2 / 2)) < 0.02, `rate ${rate}`); // minus half the all-dropped rows (0.09), un-dropped once
    }
  }
  t.false(dropMask(random, 100, 3, 0).flat().some(Boolean));
});

test("the missing token: zeros by default, a learned vector that trains when dropped; a subset's logits are the token's", (t) => {
  torch.tidy(() => {
    torch.manualSeed(0);
    const spec = { modalities: { s1: 2, s2: 4 }, numClasses: 6, alexnetHidden: 16 };
    const zero = new FusionClassifier(spec).eval();
    const x = { s1: torch.randn([3, 2, 64, 64]), s2: torch.randn([3, 4, 64, 64]) };
    const f2 = zero.backbones.get('s2')!.features(x.s2);
    const expected = zero.classifier.forward(torch.zeros([3, zero.backbones.get('s1')!.featureDim]), f2);
    t.true(zero.forward({ s2: x.s2 }, { absent: ['s1'] }).allclose(expected));
    t.throws(() => zero.forward({ s2: x.s2 }), {
      message: /a batch for each of s1, s2 \(or options\.absent naming what is missing\)/,
    });
    t.false([...zero.stateDict().keys()].some((k) => k.startsWith('missing.')));

    const learned = new FusionClassifier({ ...spec, missingToken: 'learned' }).train();
    t.deepEqual(
      [...learned.stateDict().keys()].filter((k) => k.startsWith('missing.')),
      ['missing.s1', 'missing.s2'],
    );
    const dropped = torch.tensor([
      [true, false],
      [false, false],
      [true, false],
    ]);
    learned.forward(x, { dropped }).sum().backward();
    t.true(
      (learned.missing!.forward('s1').grad!.abs().sum().item() as number) > 0,
      'the dropped modality token receives gradient',
    );
    t.is(learned.missing!.forward('s2').grad?.abs().sum().item() ?? 0, 0, 'a token never used does not');
  });
});

test.serial(
  "retrieval of a pre-training run, beside random initialisation, from the run's own embeddings",
  async (t) => {
    await ready;
    const e = await evaluateRun({ init: run, data, split: 'val', batchSize: 8, workers: 1 });
    t.is(e.kind, 'pretrain');
    for (const table of [e.retrieval!.pretrained, e.retrieval!.random]) {
      t.deepEqual(Object.keys(table.crossModal), ['s1->s2', 's2->s1']);
      t.deepEqual(Object.keys(table.views), ['s1', 's2']);
      for (const r of [...Object.values(table.crossModal), ...Object.values(table.views)]) {
        t.is(r.count, e.locations);
        t.true(r.recall[1] <= r.recall[5] && r.recall[5] <= r.recall[10] && r.recall[10] <= 1);
        t.true(r.medianRank >= 1 && r.medianRank <= e.locations);
      }
    }
    // s1 -> s2 by hand: the run's projections, cosine similarities and ranks counted in TypeScript
    const loaded = await loadRun(run);
    const dataset = await openPath(data);
    await using loader = new DataLoader(dataset, {
      modalities: ['s1', 's2'],
      batchSize: 8,
      splits: ['val'],
      shuffle: false,
      normalization: loaded.normalization,
      workers: 1,
      onBadSample: 'skip',
    });
    const z: Record<string, number[][]> = { s1: [], s2: [] };
    for await (const batch of loader.epoch(0)) {
      using b = batch;
      torch.tidy(() =>
        torch.noGrad(() => {
          for (const m of ['s1', 's2'])
            z[m].push(
              ...(loaded.project!(
                m,
                b.views[m][0].contiguous({ memoryFormat: loaded.memoryFormat }),
              ).toArray() as number[][]),
            );
        }),
      );
    }
    loaded.dispose();
    const cos = (a: number[], b: number[]) =>
      a.reduce((s, v, i) => s + v * b[i], 0) / (Math.hypot(...a) * Math.hypot(...b));
    const ranks = z.s1.map((q, i) => 1 + z.s2.filter((g) => cos(q, g) > cos(q, z.s2[i]) + 1e-9).length);
    t.is(e.retrieval!.pretrained.crossModal['s1->s2'].recall[5], ranks.filter((r) => r <= 5).length / ranks.length);
    t.regex(formatEvaluation(e), /s1 -> s2 .*\|.*\n.*s2 -> s1/);
  },
);

test.serial(
  'a fine-tuned run: accuracy for every subset of its modalities, all of them as its own test report',
  async (t) => {
    await ready;
    const out = join(scratch, 'ft');
    const result = await finetune({
      config: resolveFinetuneConfig(small, {
        data,
        init: run,
        modalities: ['s1', 's2'],
        epochs: 2,
        modalityDropout: 0.5,
        optimizer: { name: 'adam', lr: 1e-3 },
      }),
      out,
    });
    const { metadata } = await peekWeights(join(out, 'model.safetensors'));
    t.is(metadata.missingToken, 'learned');
    const e = await evaluateRun({ init: out, data, split: 'test', batchSize: 8, workers: 1 });
    t.deepEqual(
      e.subsets!.map((s) => s.modalities.join('+')),
      ['s1+s2', 's1', 's2'],
    );
    t.is(e.subsets![0].accuracy, result.test.accuracy);
    t.is(e.subsets![0].report.total, result.test.total);
  },
);

test.serial(
  "bf16-mixed inference: a loaded run's outputs in float32 within bfloat16's tolerance of float32's; evaluateRun at that precision",
  async (t) => {
    await ready;
    const full = await loadRun(run);
    const low = await loadRun(run, { precision: 'bf16-mixed' });
    try {
      torch.tidy(() => {
        torch.manualSeed(1);
        const x = torch.randn([8, 4, 72, 72]).contiguous({ memoryFormat: full.memoryFormat });
        for (const f of ['features', 'project'] as const) {
          const [a, b] = [full[f]!('s2', x), low[f]!('s2', x)];
          t.is(b.dtype, 'float32');
          const error = (b.sub(a).norm().item() as number) / (a.norm().item() as number);
          t.true(error > 0 && error < 0.03, `${f}: relative error ${error}`);
        }
      });
    } finally {
      full.dispose();
      low.dispose();
    }
    const e = await evaluateRun({ init: run, data, split: 'val', batchSize: 8, workers: 1, precision: 'bf16-mixed' });
    t.is(e.kind, 'pretrain');
    t.true(e.retrieval!.pretrained.crossModal['s1->s2'].recall[10] > 0);
    await t.throwsAsync(loadRun(run, { precision: '8-mixed' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /precision/,
    });
  },
);

test('modality dropout settings are checked', (t) => {
  t.throws(() => resolveFinetuneConfig({ data, modalities: ['s1', 's2'], modalityDropout: 1 }), {
    message: /modalityDropout must be a probability in \[0, 1\)/,
  });
  t.throws(() => resolveFinetuneConfig({ data, modalities: ['s2'], modalityDropout: 0.2 }), {
    message: /modalityDropout must be 0 with one modality/,
  });
  t.throws(() => resolveFinetuneConfig({ data, modalities: ['s1', 's2'], missingToken: 'mean' }), {
    message: /missingToken/,
  });
});
