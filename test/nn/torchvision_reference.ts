/**
 * The TS side of test/fixtures/torchvision_reference.py: runs it for one section into a fresh temp dir (removed
 * afterwards) with this process's thread count, reads what it wrote, and compares seeded draws with PyTorch's.
 */
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { torch } from '../../lib/index.js';
import { loadFile } from '../../lib/io/safetensors.js';
import { values } from '../helpers/reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const script = join(root, 'test', 'fixtures', 'torchvision_reference.py');

export interface Reference<Info> {
  /** What each case is, by case name. */
  info: Record<string, Info>;
  /** The tensors PyTorch made, as flat float64 arrays, by 'case/tensor'. */
  values: Map<string, number[]>;
}

export type LayersReference = Reference<{ seed: number }>;

export type ModelsReference = Reference<{
  model: 'alexnet' | 'resnet18';
  inChannels: number;
  numClasses: number;
  size: number;
  seed: number;
  keys: [string, number[], string][];
  numParameters: number;
  sha256: Record<string, string>;
  inputSha256: string;
}>;

export async function pytorchReference(section: 'layers'): Promise<LayersReference>;
export async function pytorchReference(section: 'models'): Promise<ModelsReference>;
export async function pytorchReference(section: 'layers' | 'models'): Promise<Reference<unknown>> {
  const dir = mkdtempSync(join(tmpdir(), `mmssl-${section}-`));
  try {
    await promisify(execFile)('/usr/bin/python3', [script, dir, String(torch.getNumThreads()), section]);
    const tensors = await loadFile(join(dir, `${section}.safetensors`));
    const flat = new Map([...tensors].map(([name, t]) => [name, values(t)]));
    for (const t of tensors.values()) t.dispose();
    return { info: JSON.parse(readFileSync(join(dir, `${section}.json`), 'utf8')), values: flat };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Seeds LibTorch's generator as PyTorch's case `name` did, runs `make`, and checks that every tensor PyTorch recorded,
 * and the four draws that follow, have the same bits. Then frees what `make` returned (for a layer, its state dict is
 * all of its tensors).
 */
export function sameDraws(
  t: ExecutionContext,
  reference: LayersReference,
  name: string,
  make: () => Record<string, torch.Tensor>,
): void {
  torch.tidy(() => {
    torch.manualSeed(reference.info[name].seed);
    const made = make();
    const tail = values(torch.rand([4]));
    const recorded = [...reference.values].filter(([key]) => key.startsWith(`${name}/`));
    t.true(recorded.length > 1, `PyTorch recorded case '${name}'`);
    for (const [key, expected] of recorded) {
      const part = key.slice(name.length + 1);
      if (part === 'tail') t.deepEqual(tail, expected, 'the generator is left in the same state');
      else if (part in made) t.deepEqual(values(made[part]), expected, key);
      else t.fail(`${key} was not made`);
    }
    for (const tensor of Object.values(made)) tensor.dispose();
  });
}
