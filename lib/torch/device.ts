/** Devices (`cpu`, `cuda`, `cuda:N`) and the `cuda` namespace. */
import { checkInt, DeviceError, invalidArg } from '../errors.js';
import { native } from '../native.js';
import { Tensor } from './tensor.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** What names a device: cpu, cuda, cuda:N. */
export const devicePattern = /^(cpu|cuda(:\d+)?)$/;

export function checkDevice(op: string, device: unknown): Device {
  if (typeof device !== 'string' || !devicePattern.test(device)) {
    throw invalidArg(op, 'device', "'cpu', 'cuda' or 'cuda:N'", device);
  }
  return device as Device;
}

export function optDevice(op: string, device: unknown): Device | undefined {
  return device === undefined ? undefined : checkDevice(op, device);
}

/** `device`, checked to exist on this machine (a CUDA device needs a CUDA LibTorch and that GPU). */
export function checkAvailable(op: string, device: unknown): Device {
  const d = checkDevice(op, device);
  if (d === 'cpu') return d;
  const index = d === 'cuda' ? 0 : Number(d.slice(5));
  if (!native.cudaIsAvailable()) {
    throw new DeviceError(
      `${op}: device '${d}' is not available: ${native.cudaMemoryStats ? 'no CUDA GPU is visible' : "this mmssl addon's LibTorch has no CUDA (rebuild it against a CUDA LibTorch)"}`,
    );
  }
  const count = native.cudaDeviceCount();
  if (index >= count)
    throw new DeviceError(
      `${op}: device '${d}' is not available: this machine has ${count} CUDA device${count === 1 ? '' : 's'}`,
    );
  return d;
}

function requireCudaBuild(op: string): void {
  if (!native.cudaMemoryStats) {
    throw new DeviceError(
      `cuda.${op}: this mmssl addon was built against a LibTorch without CUDA; ` +
        'rebuild it against a CUDA LibTorch (LIBTORCH=/path/to/libtorch-cuda npm run build:native)',
    );
  }
}

/** torch.cuda: queries that work on any build; the allocator statistics need a CUDA build. */
export const cuda = {
  /** Whether a CUDA device can be used (a CUDA LibTorch and a GPU). */
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  /** Waits for all kernels on `device` (default: the current one) to finish. */
  synchronize(device?: number): void {
    if (!native.cudaIsAvailable()) throw new DeviceError('cuda.synchronize: no CUDA device is available');
    native.cudaSynchronize(device === undefined ? undefined : checkInt('cuda.synchronize', 'device', device));
  },
  /** The CUDA caching allocator's current and peak bytes for `device` (default 0). */
  memoryStats(device = 0) {
    requireCudaBuild('memoryStats');
    return native.cudaMemoryStats!(checkInt('cuda.memoryStats', 'device', device));
  },
  /** Starts `memoryStats`' peaks again from the current values (`torch.cuda.reset_peak_memory_stats`). */
  resetPeakMemoryStats(device = 0): void {
    requireCudaBuild('resetPeakMemoryStats');
    native.cudaResetPeakMemoryStats!(checkInt('cuda.resetPeakMemoryStats', 'device', device));
  },
  emptyCache(): void {
    requireCudaBuild('emptyCache');
    native.cudaEmptyCache!();
  },
  /**
   * Copies host tensors (pinned, see `pinMemory`, for the copies to be asynchronous) to `device` on a side stream and
   * makes the current stream wait for them: a step already queued keeps computing while the copies travel, and what is
   * queued next reads the copied data. The prefetch a PyTorch loop writes with `torch.cuda.stream(side)` and
   * `wait_stream`, in one call.
   */
  copyOnSideStream(tensors: readonly Tensor[], device: Device): Tensor[] {
    requireCudaBuild('copyOnSideStream');
    if (checkAvailable('cuda.copyOnSideStream', device) === 'cpu')
      throw invalidArg('cuda.copyOnSideStream', 'device', "'cuda' or 'cuda:N'", device);
    return native.cudaCopyOnSideStream!(
      tensors.map((t) => t.handle),
      device,
    ).map((h) => new Tensor(h));
  },
};
