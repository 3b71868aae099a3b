import test from 'ava';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DisposedError, nn, optim, torch } from '../../lib/index.js';
import { maxRelErr, randomArray, rng, values } from '../helpers/reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const STEPS = 20;

// Least squares on fixed data: loss = mean((X W^T + b - Y)^2), W [4, 3], b [4].
const problem = {
  X: chunk(randomArray(24, 1), 3),
  Y: chunk(randomArray(32, 2), 4),
  W0: chunk(randomArray(12, 3), 3),
  b0: randomArray(4, 4),
  steps: STEPS,
};

function chunk(values: number[], width: number): number[][] {
  return Array.from({ length: values.length / width }, (_, i) => values.slice(i * width, (i + 1) * width));
}

type Schedule =
  { kind: 'step'; stepSize: number; gamma: number } | { kind: 'warmupCosine'; warmupSteps: number; totalSteps: number };
interface Case {
  name: string;
  optimizer: 'SGD' | 'Adam' | 'AdamW';
  options: Record<string, unknown>;
  bGroup?: Record<string, unknown>;
  schedule?: Schedule;
}

const cases: Case[] = [
  { name: 'SGD', optimizer: 'SGD', options: { lr: 0.1 } },
  {
    name: 'SGD momentum, dampening, weight decay',
    optimizer: 'SGD',
    options: { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 },
  },
  { name: 'SGD Nesterov', optimizer: 'SGD', options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 } },
  {
    name: 'SGD with a parameter group of its own',
    optimizer: 'SGD',
    options: { lr: 0.05, momentum: 0.9 },
    bGroup: { lr: 0.2, momentum: 0 },
  },
  { name: 'Adam', optimizer: 'Adam', options: { lr: 0.01 } },
  {
    name: 'Adam amsgrad, L2 weight decay, betas',
    optimizer: 'Adam',
    options: { lr: 0.02, betas: [0.8, 0.99], weightDecay: 0.1, amsgrad: true },
  },
  { name: 'AdamW', optimizer: 'AdamW', options: { lr: 0.01, weightDecay: 0.1 } },
  {
    name: 'AdamW with a group of its own',
    optimizer: 'AdamW',
    options: { lr: 0.01 },
    bGroup: { weightDecay: 0, eps: 1e-6 },
  },
  {
    name: 'SGD under StepLR',
    optimizer: 'SGD',
    options: { lr: 0.1, momentum: 0.5 },
    schedule: { kind: 'step', stepSize: 5, gamma: 0.5 },
  },
  {
    name: 'Adam under WarmupCosineLR',
    optimizer: 'Adam',
    options: { lr: 0.05 },
    schedule: { kind: 'warmupCosine', warmupSteps: 5, totalSteps: 18 },
  },
];

type Opt = optim.SGD | optim.Adam | optim.AdamW;

const snake = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));

function pytorchTrajectories(): Record<string, number[][]> {
  const input = JSON.stringify({
    ...problem,
    cases: cases.map((c) => ({ ...c, options: snake(c.options), bGroup: c.bGroup && snake(c.bGroup) })),
  });
  return JSON.parse(
    execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'optim_reference.py')], {
      input,
      encoding: 'utf8',
    }),
  );
}

function makeOptimizer(c: Case, W: torch.Tensor, b: torch.Tensor): Opt {
  const params = c.bGroup ? [{ params: [W] }, { params: [b], ...c.bGroup }] : [W, b];
  const Class = { SGD: optim.SGD, Adam: optim.Adam, AdamW: optim.AdamW }[c.optimizer];
  return new Class(params as never, c.options as never);
}

function makeScheduler(s: Schedule | undefined, opt: Opt): optim.lrScheduler.LRScheduler | null {
  if (s?.kind === 'step') return new optim.lrScheduler.StepLR(opt, s);
  if (s?.kind === 'warmupCosine') return new optim.lrScheduler.WarmupCosineLR(opt, s);
  return null;
}

/** The same least-squares problem driven by our optimizers; returns [W, b] flattened after each step. */
function ourTrajectory(c: Case, steps: number, resumeAt?: number): number[][] {
  const X = torch.tensor(problem.X, { dtype: 'float32' });
  const Y = torch.tensor(problem.Y, { dtype: 'float32' });
  let W = torch.tensor(problem.W0, { dtype: 'float32' }).requiresGrad_();
  let b = torch.tensor(problem.b0, { dtype: 'float32' }).requiresGrad_();
  let opt = makeOptimizer(c, W, b);
  let sched = makeScheduler(c.schedule, opt);
  const out: number[][] = [];
  for (let i = 0; i < steps; i++) {
    if (i === resumeAt) [W, b, opt, sched] = resume(c, W, b, opt, sched);
    torch.tidy(() => {
      opt.zeroGrad();
      X.matmul(W.t()).add(b).sub(Y).pow(2).mean().backward();
      opt.step();
      sched?.step();
      out.push([...values(W), ...values(b)]);
    });
  }
  opt.dispose();
  [X, Y, W, b].forEach((t) => t.dispose());
  return out;
}

/** Continues a run in fresh objects from the old ones' state dicts, as a resumed training run would. */
function resume(c: Case, W: torch.Tensor, b: torch.Tensor, opt: Opt, sched: optim.lrScheduler.LRScheduler | null) {
  const [W2, b2] = [W.detach().clone().requiresGrad_(), b.detach().clone().requiresGrad_()];
  const opt2 = makeOptimizer(c, W2, b2);
  const sched2 = makeScheduler(c.schedule, opt2);
  torch.tidy(() => opt2.loadStateDict(opt.stateDict()));
  if (sched && sched2) sched2.loadStateDict(sched.stateDict());
  opt.dispose();
  W.dispose();
  b.dispose();
  return [W2, b2, opt2, sched2] as const;
}

const reference = pytorchTrajectories();

for (const c of cases) {
  test(`${c.name}: 20 steps follow PyTorch's trajectory`, (t) => {
    const ours = ourTrajectory(c, STEPS);
    t.is(ours.length, reference[c.name].length);
    // |ours - theirs| <= 1e-5 |theirs| + 1e-6 (allclose): PyTorch 2's Python Adam updates its first moment with lerp_,
    // LibTorch's C++ Adam with mul_ and add_; the one-ulp differences that makes are absolute, not relative, and a
    // weight passing near zero would fail a purely relative bound (1.7e-5 seen at |w| = 2e-4).
    ours.forEach((params, step) =>
      t.true(
        maxRelErr(params, reference[c.name][step], 0.1) < 1e-5,
        `step ${step + 1}: ${params} vs ${reference[c.name][step]}`,
      ),
    );
  });

  test(`${c.name}: resumed from state dicts after 10 steps, the run continues exactly`, (t) => {
    t.deepEqual(ourTrajectory(c, STEPS, 10), ourTrajectory(c, STEPS));
  });
}

// ---- LARS against its formula ---------------------------------------------------------------------------------------

interface LarsCase {
  weightDecay: number;
  trustCoefficient: number;
  eps: number;
  nesterov: boolean;
  momentum: number;
}

/** SimCLR's LARS on one parameter, in float64, written from the formula in lib/optim/lars.ts's header. */
function larsReference(
  p: number[],
  grads: (p: number[]) => number[],
  o: LarsCase & { lr: number; exclude: boolean },
  steps: number,
): number[][] {
  const v = p.map(() => 0);
  const norm = (x: number[]) => Math.sqrt(x.reduce((s, xi) => s + xi * xi, 0));
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    let g = grads(p);
    let trust = 1;
    if (!o.exclude) {
      g = g.map((gi, i) => gi + o.weightDecay * p[i]);
      const [w, gn] = [norm(p), norm(g)];
      if (w > 0 && gn > 0) trust = (o.trustCoefficient * w) / (gn + o.eps);
    }
    const scaled = g.map((gi) => o.lr * trust * gi);
    scaled.forEach((u, i) => {
      v[i] = o.momentum * v[i] + u;
    });
    p = p.map((pi, i) => pi - (o.nesterov ? o.momentum * v[i] + scaled[i] : v[i]));
    out.push(p);
  }
  return out;
}

const larsCases: LarsCase[] = [
  { weightDecay: 0, trustCoefficient: 1e-3, eps: 0, nesterov: false, momentum: 0.9 },
  { weightDecay: 1e-4, trustCoefficient: 0.02, eps: 1e-8, nesterov: false, momentum: 0.9 },
  { weightDecay: 1e-3, trustCoefficient: 0.01, eps: 0, nesterov: true, momentum: 0.8 },
];

for (const [k, o] of larsCases.entries()) {
  test(`LARS case ${k}: 20 steps follow the formula, adapted and excluded groups alike`, (t) => {
    // grad of sum(c * p^2 / 2 + sin(p)), per element: c * p + cos(p) (a fixed, non-linear problem)
    const c = randomArray(6, 10 + k, 0.5, 2);
    const grads = (p: number[]) => p.map((pi, i) => c[i] * pi + Math.cos(pi));
    const w0 = randomArray(6, 20 + k);
    const b0 = randomArray(3, 30 + k);
    const W = torch.tensor(chunk(w0, 3), { dtype: 'float32' }).requiresGrad_();
    const b = torch.tensor(b0, { dtype: 'float32' }).requiresGrad_();
    const cW = torch.tensor(chunk(c, 3), { dtype: 'float32' });
    const cb = torch.tensor(c.slice(0, 3), { dtype: 'float32' });
    const opt = new optim.LARS(optim.larsParamGroups([W, b]), { lr: 0.5, ...o });
    t.deepEqual(
      opt.paramGroups.map((g) => [g.params.length, g.exclude]),
      [
        [1, false],
        [1, true],
      ],
    );
    const expectW = larsReference(w0, grads, { ...o, lr: 0.5, exclude: false }, STEPS);
    const expectB = larsReference(
      b0,
      (p) => p.map((pi, i) => c[i] * pi + Math.cos(pi)),
      { ...o, lr: 0.5, exclude: true },
      STEPS,
    );
    for (let s = 0; s < STEPS; s++) {
      torch.tidy(() => {
        opt.zeroGrad();
        W.pow(2).mul(cW).div(2).add(W.sin()).sum().add(b.pow(2).mul(cb).div(2).add(b.sin()).sum()).backward();
        opt.step();
        // float32 against float64 over 20 steps: an element that shrinks towards zero carries ~1e-5 relative drift
        t.true(maxRelErr(values(W), expectW[s]) < 1e-4, `W at step ${s + 1}: ${values(W)} vs ${expectW[s]}`);
        t.true(maxRelErr(values(b), expectB[s]) < 1e-4, `b at step ${s + 1}`);
      });
    }
    opt.dispose();
    [W, b, cW, cb].forEach((x) => x.dispose());
  });
}

test('LARS leaves a zero weight unadapted (trust ratio 1) instead of dividing by zero', (t) => {
  const w = torch.zeros([2, 2]).requiresGrad_();
  const opt = new optim.LARS([w], { lr: 0.1, momentum: 0 });
  w.add(1).pow(2).sum().backward();
  opt.step();
  t.deepEqual(
    w.toArray(),
    [
      [-0.2, -0.2],
      [-0.2, -0.2],
    ].map((r) => r.map((x) => Math.fround(x))),
  );
  opt.dispose();
  w.dispose();
});

// ---- clipping, options, errors, lifetime ---------------------------------------------------------------------------

test('clipGradNorm_ scales all gradients jointly and returns the norm before clipping', (t) => {
  const a = torch.tensor([3, 0], { dtype: 'float32' }).requiresGrad_();
  const b = torch.tensor([0, 4], { dtype: 'float32' }).requiresGrad_();
  const unused = torch.ones([2]).requiresGrad_();
  a.mul(a).div(2).sum().add(b.mul(b).div(2).sum()).backward(); // grads: a, b themselves, joint norm 5
  t.is(nn.utils.clipGradNorm_([a, b, unused], 1), 5);
  t.true(maxRelErr(values(a.grad!), [0.6, 0]) < 1e-5);
  t.true(maxRelErr(values(b.grad!), [0, 0.8]) < 1e-5);
  // PyTorch's coefficient is maxNorm / (norm + 1e-6), so the clipped norm is a hair under 1 and b's gradient under 0.8
  t.true(Math.abs(nn.utils.clipGradNorm_([a, b], 10, { normType: Infinity }) - 0.8) < 1e-6);
  t.true(maxRelErr(values(b.grad!), [0, 0.8]) < 1e-5, 'below maxNorm nothing changes');
  t.throws(() => nn.utils.clipGradNorm_([a], 0), { code: 'ERR_MMSSL_ARG' });
  a.grad = torch.tensor([Infinity, 0], { dtype: 'float32' });
  t.throws(() => nn.utils.clipGradNorm_([a], 1, { errorIfNonfinite: true }), {
    code: 'ERR_MMSSL_TORCH',
    message: /non-finite/,
  });
  [a, b, unused].forEach((x) => x.dispose());
});

test('a scheduler sets the lr at construction and every step; getLastLr reports it', (t) => {
  const w = torch.zeros([1]).requiresGrad_();
  const opt = new optim.SGD([{ params: [w] }], { lr: 1 });
  const sched = new optim.lrScheduler.WarmupCosineLR(opt, {
    warmupSteps: 2,
    totalSteps: 4,
    warmupStartFactor: 0.5,
    minLr: 0.1,
  });
  const seen = [opt.paramGroups[0].lr];
  for (let i = 0; i < 5; i++) {
    sched.step();
    seen.push(opt.paramGroups[0].lr);
  }
  const expected = [0.5, 0.75, 1, 0.1 + (0.9 * (1 + Math.cos(Math.PI / 2))) / 2, 0.1, 0.1];
  t.true(maxRelErr(seen, expected, 1e-12) < 1e-12, `${seen}`);
  t.deepEqual(sched.getLastLr(), [0.1]);
  const constant = new optim.lrScheduler.ConstantLR(opt, { factor: 0.5, totalIters: 2 });
  t.deepEqual(
    [constant.getLastLr(), (constant.step(), constant.getLastLr()), (constant.step(), constant.getLastLr())],
    [[0.05], [0.05], [0.1]],
  );
  t.throws(() => new optim.lrScheduler.WarmupCosineLR(opt, { warmupSteps: 5, totalSteps: 3 }), {
    code: 'ERR_MMSSL_ARG',
    message: /totalSteps/,
  });
  t.throws(() => new optim.lrScheduler.StepLR(opt, { stepSize: 0 }), { code: 'ERR_MMSSL_ARG', message: /stepSize/ });
  t.throws(() => sched.loadStateDict({ last_epoch: 1, base_lrs: [1, 2] }), { code: 'ERR_MMSSL_STATE_DICT' });
  opt.dispose();
  w.dispose();
});

test('bad options say which option and group is wrong', (t) => {
  const w = torch.zeros([2]).requiresGrad_();
  t.throws(() => new optim.SGD([w], {} as never), { code: 'ERR_MMSSL_ARG', message: /SGD: lr must be/ });
  t.throws(() => new optim.SGD([w], { lr: -1 }), { code: 'ERR_MMSSL_ARG', message: /lr must be a finite number >= 0/ });
  t.throws(() => new optim.SGD([w], { lr: 0.1, nesterov: true }), { code: 'ERR_MMSSL_ARG', message: /nesterov/ });
  t.throws(() => new optim.Adam([w], { betas: [0.9, 1] }), { code: 'ERR_MMSSL_ARG', message: /betas\[1\]/ });
  t.throws(() => new optim.Adam([{ params: [w], weight_decay: 0.1 } as never]), {
    code: 'ERR_MMSSL_ARG',
    message: /paramGroups\[0\]\.weight_decay/,
  });
  t.throws(() => new optim.SGD([w, w], { lr: 0.1 }), { code: 'ERR_MMSSL_ARG', message: /more than once/ });
  t.throws(() => new optim.SGD([], { lr: 0.1 }), { code: 'ERR_MMSSL_ARG', message: /params/ });
  t.throws(() => new optim.SGD([w, 3 as never], { lr: 0.1 }), { code: 'ERR_MMSSL_ARG' });
  const opt = new optim.SGD([w], { lr: 0.1 });
  opt.paramGroups[0].lr = Number.NaN;
  t.throws(() => opt.step(), { code: 'ERR_MMSSL_ARG', message: /SGD: lr/ });
  opt.dispose();
  t.throws(() => opt.step(), { instanceOf: DisposedError, code: 'ERR_MMSSL_DISPOSED', message: /disposed/ });
  w.dispose();
});

test('loadStateDict refuses a state that does not fit, changing nothing', (t) => {
  const [w, b] = [torch.ones([2, 2]).requiresGrad_(), torch.ones([2]).requiresGrad_()];
  const opt = new optim.SGD([w, b], { lr: 0.1, momentum: 0.9 });
  w.sum().add(b.sum()).backward();
  opt.step();
  torch.tidy(() => {
    const sd = opt.stateDict();
    const other = new optim.SGD([{ params: [w] }, { params: [b] }], { lr: 0.1, momentum: 0.9 });
    t.throws(() => other.loadStateDict(sd), {
      code: 'ERR_MMSSL_STATE_DICT',
      message: /2 parameter groups|1 parameter groups/,
    });
    other.dispose();
    const wrongShape = { ...sd, state: { 0: { momentum_buffer: torch.zeros([3]) } } };
    t.throws(() => opt.loadStateDict(wrongShape), {
      code: 'ERR_MMSSL_TORCH',
      message: /momentum_buffer' has shape \[3\]/,
    });
    const lacking = {
      ...sd,
      param_groups: [{ ...sd.param_groups[0], momentum: undefined }].map(({ momentum: _m, ...g }) => g),
    };
    t.throws(() => opt.loadStateDict(lacking), { code: 'ERR_MMSSL_STATE_DICT', message: /lacks 'momentum'/ });
    t.deepEqual(opt.stateDict().state[0].momentum_buffer, sd.state[0].momentum_buffer, 'the state is unchanged');
  });
  opt.dispose();
  [w, b].forEach((x) => x.dispose());
});

test('optimizers leak no tensors: state lives until dispose, stateDict handles die with their scope', (t) => {
  const before = torch.memoryStats().tensors;
  const r = rng(5);
  const w = torch.tensor([r(), r(), r()], { dtype: 'float32' }).requiresGrad_();
  for (const opt of [
    new optim.Adam([w]),
    new optim.SGD([w], { lr: 0.1, momentum: 0.9 }),
    new optim.LARS([w], { lr: 0.1 }),
  ]) {
    for (let i = 0; i < 5; i++) {
      torch.tidy(() => {
        opt.zeroGrad();
        w.pow(2).sum().backward();
        opt.step();
        opt.stateDict();
      });
    }
    opt.dispose();
  }
  w.grad = null;
  w.dispose();
  t.is(torch.memoryStats().tensors, before);
});
