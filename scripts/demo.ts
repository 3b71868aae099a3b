/**
 * `npm run demo`: the tensor and autograd core end to end, until the pre-training pipeline exists. A small MLP
 * learns to separate two interleaved spirals with plain SGD: forward with nn.functional, backward with autograd,
 * parameter updates in place under noGrad, every step inside tidy() so that native memory stays flat.
 */
import { nn, torch } from '../lib/index.js';

const F = nn.functional;
const STEPS = 500, POINTS = 256, HIDDEN = 64, LR = 0.3;

/** Two spirals in the plane, labels 0 and 1, with a little noise. */
function spirals(n: number): { x: torch.Tensor; y: torch.Tensor } {
  return torch.tidy(() => {
    const t = torch.linspace(0.5, 2 * Math.PI, n).reshape([n, 1]);
    const arm = torch.cat([t.mul(t.cos()), t.mul(t.sin())], 1).div(2 * Math.PI);
    const x = torch.cat([arm, arm.neg()], 0).add(torch.randn([2 * n, 2]).mul(0.02));
    const y = torch.cat([torch.zeros([n], { dtype: 'int64' }), torch.ones([n], { dtype: 'int64' })]);
    return { x, y };
  });
}

/** Kaiming-uniform weights (PyTorch's nn.Linear default), leaves that require grad. */
function linearParams(inFeatures: number, outFeatures: number): torch.Tensor[] {
  const bound = 1 / Math.sqrt(inFeatures);
  return [
    torch.empty([outFeatures, inFeatures]).uniform_(-bound, bound).requiresGrad_(),
    torch.empty([outFeatures]).uniform_(-bound, bound).requiresGrad_(),
  ];
}

function forward(params: torch.Tensor[], x: torch.Tensor): torch.Tensor {
  const [w1, b1, w2, b2, w3, b3] = params as [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor];
  return F.linear(F.linear(F.linear(x, w1, b1).relu(), w2, b2).relu(), w3, b3);
}

function accuracy(params: torch.Tensor[], x: torch.Tensor, y: torch.Tensor): number {
  return torch.tidy(() => torch.noGrad(() => forward(params, x).argmax(1).eq(y).float().mean().item() as number));
}

torch.manualSeed(0);
console.log(`mmssl demo: LibTorch ${torch.version().runtime}, ${torch.getNumThreads()} threads, ` +
  `CUDA ${torch.cuda.isAvailable() ? 'available' : 'not available'}`);

const { x, y } = spirals(POINTS);
const params = [...linearParams(2, HIDDEN), ...linearParams(HIDDEN, HIDDEN), ...linearParams(HIDDEN, 2)];
const liveBefore = torch.memoryStats().tensors;
const start = performance.now();

for (let step = 1; step <= STEPS; step++) {
  const loss = torch.tidy(() => {
    const loss = F.crossEntropy(forward(params, x), y);
    loss.backward();
    torch.noGrad(() => { for (const p of params) p.sub_(p.grad!, { alpha: LR }); });
    return loss.item() as number;
  });
  torch.zeroGrad(params, { setToNone: true });
  if (step === 1 || step % 100 === 0) console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
}

const ms = performance.now() - start;
console.log(`train accuracy ${(100 * accuracy(params, x, y)).toFixed(1)}%  (${STEPS} steps in ${ms.toFixed(0)} ms, ${(ms / STEPS).toFixed(2)} ms/step)`);
console.log(`live tensors: ${liveBefore} before training, ${torch.memoryStats().tensors} after (tidy freed the rest)`);
for (const t of [x, y, ...params]) t.dispose();
