// Data parallelism on c10d/Gloo over loopback, 2 processes (test/fixtures/ddp-worker.ts): collectives against
// hand-computed values; the loss with global negatives and synchronised BatchNorm against one process on the whole
// batch (float64, so any gap is a bug, not rounding), and so is a pre-training step with accumulate; a rank that dies or hangs ends the other with a clear error.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { distributed, loss, nn, optim, torch } from '../../lib/index.js';
import { shardOf } from '../../lib/data/loader.js';
import { freePort } from '../../lib/distributed/launch.js';
import { disposeStep, pretrainStep } from '../../lib/train/pretrain.js';
import { batchOf, globalViews, layout, smallModel, stepOptions } from '../helpers/pretrain-batch.js';

const worker = new URL('../fixtures/ddp-worker.js', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-ddp-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

interface RankRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  result?: Record<string, unknown>;
  stderr: string;
}

/** Runs the scenario on 2 ranks; when `until` is 0, rank 1 is killed once rank 0 has exited. */
async function runRanks(scenario: string, env: Record<string, string> = {}, until?: 0): Promise<RankRun[]> {
  const port = String(await freePort());
  const runs = [0, 1].map((rank) => {
    const out = join(scratch, `${scenario}-${port}-${rank}.json`);
    const child = spawn(process.execPath, [worker, scenario, out], {
      env: {
        ...process.env,
        ...env,
        RANK: String(rank),
        WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: port,
        MMSSL_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const done = new Promise<RankRun>((resolve) =>
      child.on('exit', (code, signal) => {
        let result: Record<string, unknown> | undefined;
        try {
          result = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
        } catch {
          result = undefined;
        }
        resolve({ code, signal, result, stderr });
      }),
    );
    return { child, done };
  });
  if (until === 0) void runs[0].done.then(() => runs[1].child.kill('SIGKILL'));
  return Promise.all(runs.map((r) => r.done));
}

const close = (
  t: { true: (v: boolean, m?: string) => void },
  actual: number[],
  expected: number[],
  what: string,
  tol = 1e-9,
) => {
  // (reduce, not Math.max(...): a parameter's gradient has more elements than a call takes arguments)
  const scale = expected.reduce((m, e) => Math.max(m, Math.abs(e)), 1e-12);
  const worst = expected.reduce((m, e, i) => Math.max(m, Math.abs(actual[i] - e)), 0);
  t.true(
    actual.length === expected.length && worst <= tol * scale,
    `${what}: worst difference ${worst} at scale ${scale}`,
  );
};
const values = (x: torch.Tensor) => Array.from(x.contiguous().toTypedArray() as Float64Array, Number);

test('the environment configures the group as torchrun does; bad values name the variable', (t) => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, {
      RANK: '3',
      WORLD_SIZE: '4',
      LOCAL_RANK: '1',
      MASTER_ADDR: '10.0.0.2',
      MASTER_PORT: '29999',
    });
    const o = distributed.resolveGroupOptions();
    t.like(o, { rank: 3, worldSize: 4, localRank: 1, masterAddr: '10.0.0.2', masterPort: 29999, timeoutMs: 1_800_000 });
    t.like(distributed.resolveGroupOptions({ rank: 0, masterPort: 1234 }), { rank: 0, worldSize: 4, masterPort: 1234 });
    process.env.RANK = '4';
    t.throws(() => distributed.resolveGroupOptions(), { code: 'ERR_MMSSL_ARG', message: /rank.*\[0, 4\)/ });
    process.env.RANK = 'x';
    t.throws(() => distributed.resolveGroupOptions(), { message: /\$RANK/ });
    process.env.RANK = '0';
    t.throws(() => distributed.resolveGroupOptions({ masterPort: 70000 }), { message: /masterPort/ });
  } finally {
    for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test("the shard is PyTorch's DistributedSampler's: padded with the order's start, every worldSize-th from rank", (t) => {
  const order = [5, 2, 8, 0, 9, 1, 7, 3, 6, 4];
  // torch.utils.data.DistributedSampler(shuffle=False) over this order, 3 replicas: total 12, padded with 5, 2
  t.deepEqual(shardOf(order, { rank: 0, worldSize: 3 }), [5, 0, 7, 4]);
  t.deepEqual(shardOf(order, { rank: 1, worldSize: 3 }), [2, 9, 3, 5]);
  t.deepEqual(shardOf(order, { rank: 2, worldSize: 3 }), [8, 1, 6, 2]);
  t.deepEqual(shardOf(order, { rank: 0, worldSize: 1 }), order);
});

test('collectives on 2 processes: all-reduce (sum, mean, max, channels-last), broadcast, all-gather, barrier', async (t) => {
  const runs = await runRanks('collectives');
  for (const [rank, run] of runs.entries()) {
    t.is(run.code, 0, run.stderr);
    t.like(
      run.result,
      { sum: [3, 30], mean: [1.5, 4], max: [1, 0], broadcast: [8, 8, 8], gathered: [0, 0.5, 1, 1.5], shape: [2, 2] },
      `rank ${rank}`,
    );
    t.deepEqual(
      run.result!.cl,
      Array.from({ length: 16 }, (_, i) => 3 * i),
      `rank ${rank}: channels-last`,
    );
  }
});

for (const [sizes, k] of [
  [[3, 3], 2],
  [[4, 2], 3], // rank 1 has fewer locations than chunks: as many chunks as locations
] as const) {
  test(`accumulate ${k} on 2 ranks of ${sizes.join(' and ')} locations: the averaged gradients are one process's whole batch (global negatives across ranks and chunks)`, async (t) => {
    const negative = [false, true, false, false, false, true];
    const runs = await runRanks('accumulate', {
      TEST_SIZES: JSON.stringify(sizes),
      TEST_NEGATIVE: JSON.stringify(negative),
      TEST_ACCUMULATE: String(k),
    });
    using model = smallModel().eval();
    using optimizer = new optim.SGD(model.parameters(), { lr: 0 });
    disposeStep(pretrainStep(model, batchOf(globalViews(negative.length), negative), layout, optimizer, stepOptions));
    const expected = model.parameters().map((p) => (p.grad === null ? null : values(p.grad)));
    t.true(expected.filter((g) => g !== null).length > 10);
    for (const [rank, run] of runs.entries()) {
      t.is(run.code, 0, run.stderr);
      const grads = (run.result as { grads: (number[] | null)[] }).grads;
      t.is(grads.length, expected.length);
      grads.forEach((g, i) => {
        if (g === null || expected[i] === null) t.is(g, expected[i], `rank ${rank}, parameter ${i}`);
        else close(t, g, expected[i], `rank ${rank}, parameter ${i}`);
      });
    }
  });
}

test('barrier and broadcast wait off the JS thread: timers keep firing on the rank that waits; a parameter is broadcast in place', async (t) => {
  const runs = await runRanks('waiting');
  const [, waiting] = runs;
  runs.forEach((run) => t.is(run.code, 0, run.stderr));
  const r = waiting.result as Record<'barrier' | 'broadcast', { ticks: number; ms: number }> & { parameter: number[] };
  for (const what of ['barrier', 'broadcast'] as const) {
    t.true(r[what].ms >= 800, `rank 1 waited for rank 0 in ${what}: ${r[what].ms} ms`);
    t.true(r[what].ticks >= r[what].ms / 20 / 4, `${what}: ${r[what].ticks} ticks in ${r[what].ms} ms`);
  }
  t.deepEqual(
    runs.map((run) => (run.result as { parameter: number[] }).parameter),
    [0, 1].map(() => Array.from({ length: 24 }, (_, i) => i)),
  );
});

for (const [name, sizes, negative, singles] of [
  ['equal shares', [4, 4], [false, true, false, false, false, false, true, false], 0],
  ['uneven shares, and a rank holding only Negatives', [3, 2], [false, false, true, true, true], 0],
  ['Negatives seen once on every rank', [3, 2], [false, true, false, false, false], 2],
] as const) {
  test(`global negatives (${name}): the ranks' mean loss, z gradients and averaged parameter gradients are one process's on the whole batch`, async (t) => {
    const runs = await runRanks('loss', {
      TEST_SIZES: JSON.stringify(sizes),
      TEST_NEGATIVE: JSON.stringify(negative),
      TEST_SINGLES: String(singles),
    });
    runs.forEach((r) => t.is(r.code, 0, r.stderr));
    // one process: the whole batch, ordered as the ranks gathered it (rank 0's rows, then rank 1's)
    const views = 3,
      total = sizes[0] + sizes[1];
    torch.manualSeed(7);
    const x = torch.randn([views * total + 2 * singles, 5], { dtype: 'float64' });
    const linear = new nn.Linear(5, 6).to({ dtype: 'float64' });
    const index = runs.flatMap((r) => r.result!.index as number[]);
    const z = linear.forward(x.indexSelect(0, torch.tensor(index, { dtype: 'int64' })));
    z.retainGrad();
    const rankRows = sizes.map((n) => views * n + singles);
    const ids = sizes.flatMap((n, r) =>
      Array.from({ length: rankRows[r] }, (_, i) => 100 * r + (i < views * n ? i % n : i)),
    );
    const mask = sizes.flatMap((n, r) =>
      Array.from({ length: rankRows[r] }, (_, i) => i < views * n && !negative[r * sizes[0] + (i % n)]),
    );
    const l = loss.infoNCE(z, ids, { temperature: 0.3, anchorMask: mask });
    l.backward();
    t.true(Number.isFinite(l.item() as number), `the one-process loss is finite: ${l.item()}`);
    for (const [rank, run] of runs.entries()) {
      close(t, [run.result!.loss as number], [l.item() as number], `rank ${rank} loss`);
      // DDP's convention: a rank's z gradient is worldSize times its share; averaging the parameter gradients makes it exact
      const rows = values(z.grad!.narrow(0, rank * rankRows[0], rankRows[rank])).map((g) => 2 * g);
      close(t, run.result!.zGrad as number[], rows, `rank ${rank} z gradient`);
      close(t, run.result!.weightGrad as number[], values(linear.weight.grad!), `rank ${rank} weight gradient`);
      close(t, run.result!.biasGrad as number[], values(linear.bias!.grad!), `rank ${rank} bias gradient`);
    }
  });
}

test("synchronised BatchNorm (1d, 2d, uneven shares): outputs, gradients and running statistics are one BatchNorm's on the whole batch", async (t) => {
  const sizes = [5, 3];
  const runs = await runRanks('syncbn', { TEST_SIZES: JSON.stringify(sizes) });
  runs.forEach((r) => t.is(r.code, 0, r.stderr));
  for (const shape of [
    [8, 3],
    [8, 3, 4, 5],
  ]) {
    torch.manualSeed(11);
    const x = torch.randn(shape, { dtype: 'float64' }).mul(2).add(1).requiresGrad_(),
      c = torch.randn(shape, { dtype: 'float64' });
    const bn = (shape.length === 2 ? new nn.BatchNorm1d(3) : new nn.BatchNorm2d(3)).to({ dtype: 'float64' });
    torch.noGrad(() => {
      bn.weight!.copy_(torch.tensor([0.5, 2, -1], { dtype: 'float64' }));
      bn.bias!.copy_(torch.tensor([0.1, 0, 3], { dtype: 'float64' }));
    });
    const y = bn.forward(x);
    y.mul(c).sum().backward();
    for (const [rank, run] of runs.entries()) {
      const r = (run.result as Record<string, Record<string, number[]>>)[`${shape.length}d`];
      const start = rank === 0 ? 0 : sizes[0];
      close(t, r.y, values(y.detach().narrow(0, start, sizes[rank])), `${shape.length}d rank ${rank} output`);
      close(
        t,
        r.xGrad,
        values(x.grad!.narrow(0, start, sizes[rank])).map((g) => 2 * g),
        `${shape.length}d rank ${rank} input gradient (x worldSize)`,
      );
      close(t, r.weightGrad, values(bn.weight!.grad!), `${shape.length}d rank ${rank} weight gradient`);
      close(t, r.biasGrad, values(bn.bias!.grad!), `${shape.length}d rank ${rank} bias gradient`);
      close(t, r.runningMean, values(bn.runningMean!), `${shape.length}d rank ${rank} running mean`);
      close(t, r.runningVar, values(bn.runningVar!), `${shape.length}d rank ${rank} running variance (unbiased)`);
    }
  }
});

test('a rank that dies ends the other with a DistributedError at once; one that hangs, at the timeout', async (t) => {
  const killed = await runRanks('kill', { TEST_TIMEOUT_MS: '20000' });
  t.is(killed[1].signal, 'SIGKILL');
  t.is(killed[0].code, 0, killed[0].stderr);
  const k = killed[0].result as { error: { name: string; code: string; message: string }; elapsedMs: number };
  t.like(k.error, { name: 'DistributedError', code: 'ERR_MMSSL_DIST' });
  t.regex(k.error.message, /rank 0 of 2: allReduce failed/);
  t.true(k.elapsedMs < 20000, `ended after ${k.elapsedMs} ms`);

  const hung = await runRanks('hang', { TEST_TIMEOUT_MS: '3000' }, 0);
  const h = hung[0].result as { error: { name: string; message: string }; elapsedMs: number };
  t.is(h.error.name, 'DistributedError', hung[0].stderr);
  t.regex(h.error.message, /did not arrive within 3000 ms/);
  t.true(h.elapsedMs >= 2500 && h.elapsedMs < 15000, `ended after ${h.elapsedMs} ms`);
});

test('a group that cannot form says where it waited; NCCL without CUDA and unknown backends are refused; collectives after destroy() say so', async (t) => {
  const port = await freePort();
  await t.throwsAsync(distributed.initProcessGroup({ rank: 1, worldSize: 2, masterPort: port, timeoutMs: 1500 }), {
    code: 'ERR_MMSSL_DIST',
    message: new RegExp(`rendezvous at 127\\.0\\.0\\.1:${port} failed within 1500 ms`),
  });
  if (!torch.cuda.isAvailable()) {
    await t.throwsAsync(
      distributed.initProcessGroup({
        backend: 'nccl',
        rank: 0,
        worldSize: 1,
        masterPort: await freePort(),
        timeoutMs: 5000,
      }),
      { code: 'ERR_MMSSL_DIST', message: /NCCL needs a LibTorch with CUDA|no NCCL/ },
    );
  }
  t.throws(() => distributed.resolveGroupOptions({ backend: 'mpi' as 'gloo' }), {
    code: 'ERR_MMSSL_ARG',
    message: /backend/,
  });
  const solo = await distributed.initProcessGroup({
    rank: 0,
    worldSize: 1,
    masterPort: await freePort(),
    timeoutMs: 5000,
  });
  const x = torch.tensor([2, 3], { dtype: 'float64' });
  await solo.allReduce(x);
  t.deepEqual(values(x), [2, 3]);
  solo.destroy();
  await t.throwsAsync(solo.allReduce(x), { code: 'ERR_MMSSL_DIST', message: /destroyed/ });
  await t.throwsAsync(solo.barrier(), { code: 'ERR_MMSSL_DIST', message: /destroyed/ });
});
