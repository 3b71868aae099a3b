// GradCache (accumulate: K): in float64, with dropout and BatchNorm in train mode, the chunked step's parameter
// gradients equal those of one batch whose encoders see the same chunks with the graph kept (the reference below,
// written independently: chunk outputs reordered by slicing, not by an index), for every K from 1 to the batch size,
// uneven chunks and Negatives included; BatchNorm's running statistics end as that batch leaves them.
import test from 'ava';

import { infoNCE } from '../../lib/loss/infonce.js';
import type { MultiModalModel } from '../../lib/nn/models/multimodal.js';
import { SGD } from '../../lib/optim/sgd.js';
import { noGrad } from '../../lib/torch/autograd.js';
import { cat } from '../../lib/torch/creation.js';
import { manualSeed } from '../../lib/torch/runtime.js';
import { tidy } from '../../lib/torch/scope.js';
import type { Tensor } from '../../lib/torch/tensor.js';
import { chunkRanges, embedViews, pretrainStep } from '../../lib/train/pretrain.js';
import { anchorRows, viewGroups } from '../../lib/train/views.js';
import { batchOf, globalViews, layout, smallModel, stepOptions as options } from '../helpers/pretrain-batch.js';

const N = 7; // odd: uneven chunks
const negative = [false, true, false, false, true, false, false];

function setUp() {
  const model = smallModel();
  const views = globalViews(N);
  return { model, batch: batchOf(views, negative), views };
}

/** The gradients and BatchNorm buffers after one batch whose encoders see `chunks` in turn, graphs kept. */
function reference(model: MultiModalModel, views: Record<string, Tensor[]>, chunks: [number, number][]) {
  return tidy(() => {
    model.zeroGrad();
    const outputs = chunks.map(([start, end]) =>
      embedViews(
        model,
        {
          views: {
            s2: views.s2.map((v) => v.narrow(0, start, end - start)),
            naip: views.naip.map((v) => v.narrow(0, start, end - start)),
          },
        },
        layout,
        options,
      ),
    );
    // Chunk c's block (m * views + v) holds its locations' rows of that view: the batch's order is by block, then chunk.
    const blocks = Array.from({ length: layout.perLocation }, (_, block) =>
      cat(outputs.map((z, c) => z.narrow(0, block * (chunks[c][1] - chunks[c][0]), chunks[c][1] - chunks[c][0]))),
    );
    infoNCE(cat(blocks), viewGroups(layout, N), {
      temperature: options.temperature,
      anchorMask: anchorRows(layout, negative),
    }).backward();
    return [...model.parameters().map((p) => p.grad), ...model.buffers().map((b) => b.clone())];
  });
}

for (const k of [1, 2, 3, N]) {
  test(`accumulate ${k}: the gradients of the batch whose BatchNorm sees the same chunks (float64, dropout on, within 1e-9)`, (t) => {
    const { model, batch, views } = setUp();
    using optimizer = new SGD(model.parameters(), { lr: 0 });
    const initial = model.buffers().map((b) => b.clone());
    const chunks = chunkRanges(N, k);
    t.is(chunks.length, k);
    t.deepEqual(
      chunks
        .flat()
        .filter((_, i) => i % 2 === 0)
        .concat(N),
      [...chunks.map(([s]) => s), N],
    );
    manualSeed(11);
    tidy(() => void pretrainStep(model, batch, layout, optimizer, { ...options, accumulate: k }));
    const ours = [...model.parameters().map((p) => p.grad), ...model.buffers().map((b) => b.clone())];
    noGrad(() => model.buffers().forEach((b, i) => b.copy_(initial[i])));
    manualSeed(11);
    const theirs = reference(model, views, chunks);
    t.is(ours.length, theirs.length);
    // Parameters the loss does not reach (the fine-tuning head) have no gradient in either.
    t.deepEqual(
      ours.map((g) => g === null),
      theirs.map((g) => g === null),
    );
    t.true(ours.some((g) => g !== null));
    tidy(() => {
      let worst = 0;
      ours.forEach((a, i) => {
        const b = theirs[i];
        if (a === null || b === null) return;
        const error = (a.sub(b).abs().max().item() as number) / Math.max(1, b.abs().max().item() as number);
        worst = Math.max(worst, error);
      });
      t.true(worst <= 1e-9, `largest difference ${worst}`);
      const moved = model.parameters().some((p) => p.grad !== null && (p.grad.abs().sum().item() as number) > 0);
      t.true(moved, 'gradients reach the parameters');
    });
    [...ours, ...theirs, ...initial, ...Object.values(views).flat()].forEach((x) => x?.dispose());
    model.dispose();
  });
}

test('chunkRanges: k contiguous, even chunks covering n; never more chunks than locations', (t) => {
  t.deepEqual(chunkRanges(7, 3), [
    [0, 2],
    [2, 4],
    [4, 7],
  ]);
  t.deepEqual(chunkRanges(2, 5), [
    [0, 1],
    [1, 2],
  ]);
  t.deepEqual(chunkRanges(4, 1), [[0, 4]]);
});
