import test from 'ava';
import { availableParallelism } from 'node:os';

import { torch } from '../../lib/index.js';

test('the addon runs on the LibTorch it was built against', (t) => {
  const v = torch.version();
  t.regex(v.built, /^\d+\.\d+\.\d+$/);
  t.is(v.runtime.split('.').slice(0, 2).join('.'), v.built.split('.').slice(0, 2).join('.'));
  t.regex(v.parallelInfo, /ATen\/Parallel/);
});

test.serial('threads default to the cores available and can be changed', (t) => {
  const expected = Number(process.env.MMSSL_NUM_THREADS ?? process.env.OMP_NUM_THREADS) || availableParallelism();
  t.is(torch.getNumThreads(), expected);
  torch.setNumThreads(1);
  t.is(torch.getNumThreads(), 1);
  torch.setNumThreads(expected);
  t.is(torch.getNumThreads(), expected);
});

test.serial('manualSeed makes a whole computation reproducible on CPU', (t) => {
  const run = () =>
    torch.tidy(() => {
      torch.manualSeed(2024);
      const w = torch.randn([8, 8]);
      const x = torch.rand([4, 8]);
      return Array.from(x.matmul(w).relu().toTypedArray(), Number);
    });
  t.deepEqual(run(), run());
});

const hasCuda = torch.cuda.isAvailable();
const cudaTest = hasCuda ? test : test.skip;

test('cuda queries answer on a CPU build', (t) => {
  t.is(typeof hasCuda, 'boolean');
  t.is(torch.cuda.deviceCount() > 0, hasCuda);
  if (!torch.version().cuda) {
    t.throws(() => torch.cuda.memoryStats(), { code: 'ERR_MMSSL_DEVICE', message: /without CUDA/ });
    t.throws(() => torch.cuda.resetPeakMemoryStats(), { code: 'ERR_MMSSL_DEVICE', message: /without CUDA/ });
    using x = torch.zeros([2]);
    t.throws(() => torch.cuda.copyOnSideStream([x], 'cuda'), { code: 'ERR_MMSSL_DEVICE', message: /without CUDA/ });
  }
});

cudaTest(`tensors move to CUDA and back${hasCuda ? '' : ' (skipped: no CUDA device in this machine)'}`, (t) => {
  torch.tidy(() => {
    const x = torch.arange(6, undefined, 1, { dtype: 'float32' }).reshape(2, 3);
    const g = x.cuda();
    t.is(g.device, 'cuda:0');
    t.deepEqual(g.mul(2).cpu().toArray(), [
      [0, 2, 4],
      [6, 8, 10],
    ]);
    torch.cuda.synchronize();
  });
});

test('pinned host memory: a CPU tensor is not pinned; pinning needs CUDA and says so instead of aborting', (t) => {
  torch.tidy(() => {
    const x = torch.arange(6, undefined, 1, { dtype: 'float32' });
    t.false(x.isPinned());
    if (!hasCuda) {
      t.throws(() => x.pinMemory(), { code: 'ERR_MMSSL_TORCH', message: /pinMemory/ });
      return;
    }
    const pinned = x.pinMemory();
    t.true(pinned.isPinned());
    t.deepEqual(pinned.to({ device: 'cuda', nonBlocking: true }).cpu().toArray(), [0, 1, 2, 3, 4, 5]);
  });
});

cudaTest(
  `copies on a side stream hold the data for work queued after them${hasCuda ? '' : ' (skipped: no CUDA device in this machine)'}`,
  (t) => {
    torch.tidy(() => {
      const busy = torch.rand([4096, 4096], { device: 'cuda' });
      const hosts = [torch.arange(1 << 20, undefined, 1, { dtype: 'float32' }), torch.tensor([true, false, true])];
      busy.matmul(busy); // queued on the current stream: the copies run beside it
      const copies = torch.cuda.copyOnSideStream(
        hosts.map((h) => h.pinMemory()),
        'cuda',
      );
      t.deepEqual(
        copies.map((c) => c.device),
        ['cuda:0', 'cuda:0'],
      );
      t.true(copies[0].mul(2).sub(hosts[0].cuda().mul(2)).abs().max().cpu().item() === 0);
      t.deepEqual(copies[1].cpu().toArray(), [true, false, true]);
      t.throws(() => torch.cuda.copyOnSideStream(hosts, 'cpu'), { code: 'ERR_MMSSL_ARGUMENT' });
    });
  },
);

cudaTest(`async read-back from CUDA${hasCuda ? '' : ' (skipped: no CUDA device in this machine)'}`, async (t) => {
  using g = torch.ones([1 << 16], { device: 'cuda' });
  const data = await g.toTypedArrayAsync();
  t.is(data.length, 1 << 16);
  t.true(torch.cuda.memoryStats().allocatedBytes >= (1 << 16) * 4);
});

cudaTest(`peak memory statistics reset${hasCuda ? '' : ' (skipped: no CUDA device in this machine)'}`, (t) => {
  torch.zeros([1 << 24], { device: 'cuda' }).dispose();
  const before = torch.cuda.memoryStats();
  t.true(before.peakAllocatedBytes >= (1 << 24) * 4);
  torch.cuda.resetPeakMemoryStats();
  t.is(torch.cuda.memoryStats().peakAllocatedBytes, torch.cuda.memoryStats().allocatedBytes);
});

test.serial('setRngState replays the random numbers drawn after getRngState', (t) => {
  torch.manualSeed(3);
  const state = torch.getRngState();
  t.is(state.dtype, 'uint8');
  const first = torch.rand([5]).toArray();
  torch.rand([7]).dispose();
  torch.setRngState(state);
  t.deepEqual(torch.rand([5]).toArray(), first);
  const error = t.throws(() => torch.setRngState(torch.zeros([3])));
  t.regex(error.message, /setRngState/);
});

test.serial(
  "cuDNN's benchmark mode and the float32 matmul precision: PyTorch's defaults, set and read back, bad values refused",
  (t) => {
    t.false(torch.backends.cudnn.benchmark);
    t.is(torch.getFloat32MatmulPrecision(), 'highest');
    try {
      torch.backends.cudnn.benchmark = true;
      t.true(torch.backends.cudnn.benchmark);
      for (const p of torch.MATMUL_PRECISIONS) {
        torch.setFloat32MatmulPrecision(p);
        t.is(torch.getFloat32MatmulPrecision(), p);
      }
      t.throws(() => torch.setFloat32MatmulPrecision('low' as torch.MatmulPrecision), {
        code: 'ERR_MMSSL_ARG',
        message: /precision/,
      });
      t.throws(() => (torch.backends.cudnn.benchmark = 1 as unknown as boolean), { code: 'ERR_MMSSL_ARG' });
    } finally {
      torch.backends.cudnn.benchmark = false;
      torch.setFloat32MatmulPrecision('highest');
    }
  },
);
