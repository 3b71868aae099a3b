/**
 * What a run ran on, written beside its configuration (environment.json) so that a report can say it: mmssl,
 * LibTorch and Node versions, the addon, the device and threads, the machine.
 */
import { availableParallelism, arch, cpus, platform, release } from 'node:os';
import { join } from 'node:path';

import { writeJsonAtomic } from '../io/atomic.js';
import { packageVersion } from '../native.js';
import { getNumThreads, version } from '../torch/runtime.js';

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

export const ENVIRONMENT_FILE = 'environment.json';

export function describeEnvironment(device: string): Environment {
  const { runtime, cuda } = version();
  return {
    mmssl: packageVersion, libtorch: runtime, cudaBuild: cuda, node: process.version,
    platform: `${platform()} ${release()} ${arch()}`, cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(),
    device, threads: getNumThreads(), startedAt: new Date().toISOString(),
  };
}

/** Writes environment.json into the run folder `out`. */
export async function writeEnvironment(out: string, device: string): Promise<void> {
  await writeJsonAtomic(join(out, ENVIRONMENT_FILE), describeEnvironment(device));
}
