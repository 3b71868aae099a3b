/**
 * What a run ran on, written beside its configuration (environment.json) so that a report can say it: mmssl,
 * LibTorch and Node versions, the addon, the device and threads, the machine.
 */
import { availableParallelism, arch, cpus, platform, release } from 'node:os';

import { packageVersion } from '../native.js';
import { getNumThreads, version } from '../torch/runtime.js';
import type { RunFolder } from './folder.js';

export interface Environment {
  mmssl: string;
  libtorch: string;
  cudaBuild: boolean;
  node: string;
  platform: string;
  cpu: string;
  cores: number;
  device: string;
  threads: number;
  startedAt: string;
}

export function describeEnvironment(device: string): Environment {
  const { runtime, cuda } = version();
  return {
    mmssl: packageVersion,
    libtorch: runtime,
    cudaBuild: cuda,
    node: process.version,
    platform: `${platform()} ${release()} ${arch()}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    device,
    threads: getNumThreads(),
    startedAt: new Date().toISOString(),
  };
}

/** Writes environment.json into the run folder. */
export async function writeEnvironment(folder: RunFolder, device: string): Promise<void> {
  await folder.writeJson('environment', describeEnvironment(device));
}
