/**
 * bench:backbone — one training step's forward+backward of each backbone at batch 64 (AlexNet on Sentinel-sized
 * 4x72x72 tiles, ResNet18 on NAIP resized to 4x128x128), in both memory formats, against torchvision's models in
 * PyTorch's Python (Debian's python3-torch, the same LibTorch 1.13, the same thread count), in the same run.
 */
import { nn, torch } from '../../lib/index.js';
import { costRow, medianMs, pytorchVersion, report, runPython, type Row } from './harness.js';

const batch = Number(process.env.BENCH_BACKBONE_BATCH ?? 64);
const repeats = Number(process.env.BENCH_BACKBONE_REPEATS ?? 5);
const threads = torch.getNumThreads();

const CASES: Record<string, [(o: { inChannels: number }) => nn.Module, number, number]> = {
  'alexnet 4x72x72': [nn.models.alexnet, 4, 72],
  'resnet18 4x128x128': [nn.models.resnet18, 4, 128],
};
const FORMATS: torch.MemoryFormat[] = ['contiguousFormat', 'channelsLast'];

/** Median milliseconds of a zero-grad + forward + sum + backward step, after one warm-up step. */
function stepMs(
  build: (o: { inChannels: number }) => nn.Module,
  channels: number,
  size: number,
  memoryFormat: torch.MemoryFormat,
): number {
  torch.manualSeed(0);
  using model = build({ inChannels: channels }).train().to({ memoryFormat });
  using x = torch.randn([batch, channels, size, size]).contiguous({ memoryFormat });
  const step = () =>
    torch.tidy(() => {
      model.zeroGrad();
      (model.forward(x) as torch.Tensor).sum().backward();
    });
  step();
  return medianMs(step, repeats);
}

// The baseline runs first, alone, so the two never share the cores.
const baseline = runPython<Record<string, number>>('backbone.py', [threads, batch, repeats]);
const name = `PyTorch ${pytorchVersion()} + torchvision (python3-torch, ${threads} threads)`;
const rows: Row[] = [];
for (const [label, [build, channels, size]] of Object.entries(CASES)) {
  for (const format of FORMATS) {
    const key = `${label} ${format === 'channelsLast' ? 'channelsLast' : 'contiguous'}`;
    rows.push(
      costRow(
        key,
        `forward+backward, batch ${batch}`,
        'ms',
        stepMs(build, channels, size, format),
        baseline[key],
        name,
      ),
    );
  }
}
report('backbone', rows);
