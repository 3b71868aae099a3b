// Mixed precision: autocast scopes (per thread, nested, restored), and the gradient scaler against PyTorch's rule on an
// injected sequence of finite and non-finite gradients (and against PyTorch's GradScaler itself where the Python
// torch has one for CPU, as in the LibTorch 2.6 root).
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';

import { ArgumentError } from '../../lib/errors.js';
import { conv2d } from '../../lib/nn/functional.js';
import { SGD } from '../../lib/optim/sgd.js';
import { autocast, GradScaler, withPrecision } from '../../lib/torch/amp.js';
import { full, randn, tensor } from '../../lib/torch/creation.js';
import { version } from '../../lib/torch/runtime.js';
import { tidy } from '../../lib/torch/scope.js';

const [major, minor] = version().runtime.split('.').map(Number);
const cpuHalf = major > 2 || (major === 2 && minor >= 3);

test('autocast runs matrix products and convolutions in bfloat16 inside its scope, float32 outside; scopes nest', (t) => {
  tidy(() => {
    const a = randn([8, 8]),
      x = randn([1, 3, 8, 8]),
      w = randn([4, 3, 3, 3]);
    t.is(a.mm(a).dtype, 'float32');
    autocast({ device: 'cpu' }, () => {
      t.is(a.mm(a).dtype, 'bfloat16');
      t.is(conv2d(x, w).dtype, 'bfloat16');
      t.is(a.add(1).dtype, 'float32', 'pointwise ops keep their dtype');
      autocast({ device: 'cpu', enabled: false }, () =>
        t.is(a.mm(a).dtype, 'bfloat16', 'disabled: the outer scope holds'),
      );
      autocast({ device: 'cpu' }, () => t.is(a.mm(a).dtype, 'bfloat16'));
      t.is(a.mm(a).dtype, 'bfloat16', 'an inner scope ends without ending the outer');
    });
    t.is(a.mm(a).dtype, 'float32', 'the state before the scope is back');
    t.is(
      withPrecision('32', 'cpu', () => a.mm(a).dtype),
      'float32',
    );
    t.is(
      withPrecision('bf16-mixed', 'cpu', () => a.mm(a).dtype),
      'bfloat16',
    );
    // the gradient flows back to float32 leaves through the casts
    const p = randn([8, 8]).requiresGrad_();
    autocast({ device: 'cpu' }, () => p.mm(p).to({ dtype: 'float32' }).sum()).backward();
    t.is(p.grad?.dtype, 'float32');
  });
});

test('autocast: a throwing fn still ends the scope; a Promise, a bad dtype or device is refused', (t) => {
  tidy(() => {
    const a = randn([4, 4]);
    t.throws(() =>
      autocast({ device: 'cpu' }, () => {
        throw new Error('inside');
      }),
    );
    t.is(a.mm(a).dtype, 'float32');
    t.throws(() => autocast({ device: 'cpu' }, () => Promise.resolve(1)), {
      instanceOf: ArgumentError,
      message: /synchronous/,
    });
    t.is(a.mm(a).dtype, 'float32');
    t.throws(() => autocast({ device: 'cpu', dtype: 'float64' as never }, () => 1), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => autocast({ device: 'gpu' as never }, () => 1), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => withPrecision('fp8' as never, 'cpu', () => 1), { code: 'ERR_MMSSL_ARG', message: /precision/ });
  });
});

test(`float16 autocast on CPU: ${cpuHalf ? 'runs (LibTorch 2.3 on)' : 'refused with the alternative (LibTorch 1.13)'}`, (t) => {
  tidy(() => {
    const a = randn([4, 4]);
    if (cpuHalf)
      t.is(
        autocast({ device: 'cpu', dtype: 'float16' }, () => a.mm(a).dtype),
        'float16',
      );
    else
      t.throws(() => autocast({ device: 'cpu', dtype: 'float16' }, () => a.mm(a)), {
        code: 'ERR_MMSSL_ARG',
        message: /float16 on CPU needs LibTorch 2\.3 .*bf16-mixed/,
      });
    t.is(a.mm(a).dtype, 'float32');
  });
});

/** Each step's gradient of a 3-element parameter: finite, or holding an infinity or a NaN. */
const GRADS: number[][] = [
  [1, 2, 3],
  [1, Infinity, 3],
  [0.5, 0.5, 0.5],
  [1, 1, 1],
  [2, 2, 2],
  [NaN, 1, 1],
  [1, -1, 1],
  [3, 3, 3],
  [1, 2, 1],
  [-Infinity, 0, 0],
  [1, 1, 1],
  [2, 1, 2],
];
const OPTIONS = { initScale: 1024, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3 };

/** PyTorch's rule (torch/amp/grad_scaler.py and the _amp_update_scale_ kernel), transcribed. */
function reference(): { scales: number[]; stepped: boolean[]; params: number[][] } {
  let scale = OPTIONS.initScale,
    tracker = 0;
  let p = [1, 1, 1];
  const scales: number[] = [],
    stepped: boolean[] = [],
    params: number[][] = [];
  for (const g of GRADS) {
    const scaled = g.map((x) => x * scale); // backward of scale * (g . p)
    const unscaled = scaled.map((x) => Math.fround(x * Math.fround(1 / scale)));
    const found = unscaled.some((x) => !Number.isFinite(x));
    if (!found) p = p.map((x, i) => Math.fround(x - Math.fround(0.1 * unscaled[i])));
    if (found) [scale, tracker] = [scale * OPTIONS.backoffFactor, 0];
    else if (tracker + 1 === OPTIONS.growthInterval) [scale, tracker] = [scale * OPTIONS.growthFactor, 0];
    else tracker++;
    scales.push(scale);
    stepped.push(!found);
    params.push(p);
  }
  return { scales, stepped, params };
}

/** Parameters step by step within float32 rounding (the SGD update's own rounding differs by an ulp between kernels). */
function closeParams(t: ExecutionContext, got: number[][], expected: number[][]): void {
  t.is(got.length, expected.length);
  got.forEach((p, i) =>
    p.forEach((x, j) =>
      t.true(Math.abs(x - expected[i][j]) <= 1e-6, `step ${i}, element ${j}: ${x} vs ${expected[i][j]}`),
    ),
  );
}

/** Ours over the same sequence: loss = g . p, scaled, backward, step, update. */
function ours(from?: { state: ReturnType<GradScaler['stateDict']>; p: number[]; at: number }) {
  const p = tensor(from?.p ?? [1, 1, 1], { dtype: 'float32' }).requiresGrad_();
  using optimizer = new SGD([p], { lr: 0.1 });
  using scaler = new GradScaler('cpu', OPTIONS);
  if (from) scaler.loadStateDict(from.state);
  const scales: number[] = [],
    stepped: boolean[] = [],
    params: number[][] = [],
    states: ReturnType<GradScaler['stateDict']>[] = [];
  for (const g of GRADS.slice(from?.at ?? 0)) {
    tidy(() => {
      optimizer.zeroGrad();
      scaler.scale(tensor(g, { dtype: 'float32' }).mul(p).sum()).backward();
      stepped.push(scaler.step(optimizer));
      scaler.update();
    });
    scales.push(scaler.getScale());
    params.push(Array.from(p.toTypedArray() as Float32Array));
    states.push(scaler.stateDict());
  }
  p.dispose();
  return { scales, stepped, params, states };
}

test("GradScaler follows PyTorch's rule on injected inf/NaN gradients: skipped steps, back-off, growth", (t) => {
  const expected = reference(),
    got = ours();
  t.true(expected.stepped.includes(false) && expected.scales.some((s, i) => i > 0 && s > expected.scales[i - 1]));
  t.deepEqual(got.stepped, expected.stepped);
  t.deepEqual(got.scales, expected.scales);
  closeParams(t, got.params, expected.params);
});

test('GradScaler resumed from its stateDict mid-run continues bit for bit', (t) => {
  const whole = ours();
  const at = 4;
  const resumed = ours({ state: whole.states[at - 1], p: whole.params[at - 1], at });
  t.deepEqual(resumed.scales, whole.scales.slice(at));
  t.deepEqual(resumed.params, whole.params.slice(at));
  t.deepEqual(resumed.states, whole.states.slice(at));
});

const PYTORCH = `
import json, sys, torch
if not hasattr(torch.amp, "GradScaler"):
    print(json.dumps(None)); sys.exit()
o = json.loads(sys.argv[1])
p = torch.nn.Parameter(torch.ones(3))
opt = torch.optim.SGD([p], lr=0.1)
s = torch.amp.GradScaler("cpu", init_scale=o["initScale"], growth_factor=o["growthFactor"],
                         backoff_factor=o["backoffFactor"], growth_interval=o["growthInterval"])
out = {"scales": [], "params": []}
for g in o["grads"]:
    opt.zero_grad()
    s.scale((torch.tensor([float(x) for x in g]) * p).sum()).backward()
    s.step(opt); s.update()
    out["scales"].append(s.get_scale()); out["params"].append(p.detach().tolist())
print(json.dumps(out))
`;

test('GradScaler equals PyTorch\'s GradScaler("cpu") where Python\'s torch has one (2.3 on)', (t) => {
  // JSON has no NaN or Infinity: non-finite numbers travel as the strings Python's float() reads.
  const args = JSON.stringify({ ...OPTIONS, grads: GRADS }, (_, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
  );
  const run = spawnSync('/usr/bin/python3', ['-c', PYTORCH, args], {
    encoding: 'utf8',
  });
  t.is(run.status, 0, run.stderr);
  const theirs = JSON.parse(run.stdout.replaceAll('NaN', 'null').replaceAll('Infinity', '1e999')) as {
    scales: number[];
    params: number[][];
  } | null;
  const got = ours();
  if (theirs === null) {
    t.log("this Python torch has no CPU GradScaler (1.13): compared with PyTorch's rule only (the test above)");
    t.deepEqual(got.scales, reference().scales);
    return;
  }
  t.deepEqual(got.scales, theirs.scales);
  closeParams(t, got.params, theirs.params);
});

test('GradScaler: bad options and misuse are refused; disabled it passes through', (t) => {
  t.throws(() => new GradScaler('cpu', { growthFactor: 1 }), { code: 'ERR_MMSSL_ARG', message: /growthFactor/ });
  t.throws(() => new GradScaler('cpu', { backoffFactor: 1 }), { code: 'ERR_MMSSL_ARG', message: /backoffFactor/ });
  t.throws(() => new GradScaler('cpu', { growthInterval: 0 }), { code: 'ERR_MMSSL_ARG', message: /growthInterval/ });
  t.throws(() => new GradScaler('cpu', { initScale: Infinity }), { code: 'ERR_MMSSL_ARG', message: /initScale/ });
  tidy(() => {
    const p = full([2], 1, { dtype: 'float32' }).requiresGrad_();
    using optimizer = new SGD([p], { lr: 0.1 });
    using scaler = new GradScaler('cpu');
    t.throws(() => scaler.update(), { code: 'ERR_MMSSL_ARG', message: /no optimizer was unscaled/ });
    scaler.scale(p.sum()).backward();
    scaler.unscale_(optimizer);
    t.throws(() => scaler.unscale_(optimizer), { code: 'ERR_MMSSL_ARG', message: /already called/ });
    t.true(scaler.step(optimizer));
    scaler.update();
    t.throws(() => scaler.loadStateDict({ ...scaler.stateDict(), growth_interval: 5 }), { message: /growth_interval/ });
    using off = new GradScaler('cpu', { enabled: false });
    const loss = p.sum();
    t.is(off.scale(loss), loss);
    t.is(off.getScale(), 1);
  });
});
