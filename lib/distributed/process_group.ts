/**
 * Process groups on LibTorch's c10d (native/distributed.cc): rendezvous configured like torchrun (RANK, WORLD_SIZE,
 * LOCAL_RANK, MASTER_ADDR, MASTER_PORT), collectives on Gloo (NCCL with a CUDA LibTorch). PyTorch's names: `initProcessGroup`
 * (`init_process_group`), `allReduce` and `broadcast` in place, `allGather` (differentiable, `all_gather_into_tensor`
 * with torch.distributed.nn's gradient), `barrier`, `destroy` (`destroy_process_group`).
 *
 * Collectives block until every rank has called them, or until the group's timeout: a rank that died or hangs ends
 * the others with a DistributedError naming this rank and the collective, never a silent hang.
 */
import { checkInt, checkOneOf, checkOptions, DistributedError, invalidArg } from '../errors.js';
import { native, type ObjectHandle } from '../native.js';
import { Tensor } from '../torch/tensor.js';

export interface ProcessGroupOptions {
  /** 'gloo' (CPU tensors, and CUDA ones through the host) or 'nccl' (CUDA tensors; a CUDA LibTorch). Default 'gloo'. */
  backend?: 'gloo' | 'nccl';
  /** Default: $RANK, else 0. */
  rank?: number;
  /** Default: $WORLD_SIZE, else 1. */
  worldSize?: number;
  /** The rank on this machine (which device to use). Default: $LOCAL_RANK, else the rank. */
  localRank?: number;
  /** Rank 0's address, where its TCPStore listens. Default: $MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Default: $MASTER_PORT, else 29500. */
  masterPort?: number;
  /** Rendezvous through a file every rank can reach (c10d's FileStore) instead of TCP. */
  file?: string;
  /** The network interface Gloo binds to. Default: $GLOO_SOCKET_IFNAME, else the one the hostname resolves to. */
  interface?: string;
  /** How long rendezvous and each collective may wait for the other ranks, in ms. Default 30 minutes (PyTorch's). */
  timeoutMs?: number;
  /** Gloo's threads. Default 2. */
  threads?: number;
}

export type ReduceOp = 'sum' | 'mean' | 'product' | 'min' | 'max';

const OP = 'initProcessGroup';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw invalidArg(OP, `$${name}`, 'a non-negative integer', raw);
  return value;
}

/** The options a launcher sets through the environment, as torchrun does; given options take precedence. */
export function resolveGroupOptions(
  options: ProcessGroupOptions = {},
): Required<Omit<ProcessGroupOptions, 'file' | 'interface'>> & Pick<ProcessGroupOptions, 'file' | 'interface'> {
  const o = checkOptions(OP, options);
  const worldSize = checkInt(OP, 'worldSize', o.worldSize ?? envInt('WORLD_SIZE', 1));
  const rank = checkInt(OP, 'rank', o.rank ?? envInt('RANK', 0));
  if (worldSize < 1) throw invalidArg(OP, 'worldSize', 'at least 1', worldSize);
  if (rank < 0 || rank >= worldSize) throw invalidArg(OP, 'rank', `in [0, ${worldSize})`, rank);
  const masterPort = checkInt(OP, 'masterPort', o.masterPort ?? envInt('MASTER_PORT', 29500));
  if (masterPort < 1 || masterPort > 65535) throw invalidArg(OP, 'masterPort', 'a TCP port (1-65535)', masterPort);
  const timeoutMs = checkInt(OP, 'timeoutMs', o.timeoutMs ?? 1_800_000);
  if (timeoutMs < 1) throw invalidArg(OP, 'timeoutMs', 'at least 1 ms', timeoutMs);
  return {
    rank,
    worldSize,
    masterPort,
    timeoutMs,
    backend: checkOneOf(OP, 'backend', o.backend ?? 'gloo', ['gloo', 'nccl']),
    localRank: checkInt(OP, 'localRank', o.localRank ?? envInt('LOCAL_RANK', rank)),
    masterAddr: o.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1',
    file: o.file,
    interface: o.interface ?? (process.env.GLOO_SOCKET_IFNAME || undefined),
    threads: checkInt(OP, 'threads', o.threads ?? 2),
  };
}

/** Joins the group: resolves once every rank has arrived (or rejects after the timeout). */
export async function initProcessGroup(options: ProcessGroupOptions = {}): Promise<ProcessGroup> {
  const o = resolveGroupOptions(options);
  if (!native.distAvailable()) {
    throw new DistributedError(
      `${OP}: this build of mmssl has no Gloo (its headers were missing): apt-get install libgloo-dev, then npm run build:native`,
    );
  }
  try {
    const handle = await native.distInit!({
      backend: o.backend,
      host: o.masterAddr,
      port: o.masterPort,
      file: o.file,
      interface: o.interface,
      rank: o.rank,
      size: o.worldSize,
      threads: o.threads,
      timeoutMs: o.timeoutMs,
    });
    return new ProcessGroup(handle, o.rank, o.worldSize, o.localRank, o.timeoutMs);
  } catch (e) {
    if (!(e instanceof DistributedError)) throw e;
    throw new DistributedError(
      `rank ${o.rank} of ${o.worldSize}: rendezvous at ${o.file ?? `${o.masterAddr}:${o.masterPort}`} failed within ${o.timeoutMs} ms: ${e.message}`,
      { op: OP, cause: e },
    );
  }
}

export class ProcessGroup {
  #handle: ObjectHandle | undefined;

  /** @internal A group comes from `initProcessGroup`, which makes the native one. */
  constructor(
    handle: ObjectHandle,
    readonly rank: number,
    readonly worldSize: number,
    readonly localRank: number,
    readonly timeoutMs: number,
  ) {
    this.#handle = handle;
  }

  /** Runs a collective; its failure (the addon's DistributedError) is told with this rank and the group's timeout. */
  #collective<T>(name: string, run: (handle: ObjectHandle) => T): T {
    if (this.#handle === undefined) throw new DistributedError(`ProcessGroup.${name}: the group was destroyed`);
    try {
      return run(this.#handle);
    } catch (e) {
      throw this.#failed(name, e);
    }
  }

  /** `#collective` for one that settles off the JS thread: the event loop (signals, progress) runs while it waits. */
  async #collectiveAsync(name: string, run: (handle: ObjectHandle) => Promise<void>): Promise<void> {
    const settled = this.#collective(name, run);
    try {
      await settled;
    } catch (e) {
      throw this.#failed(name, e);
    }
  }

  #failed(name: string, e: unknown): unknown {
    if (!(e instanceof DistributedError)) return e;
    return new DistributedError(
      `rank ${this.rank} of ${this.worldSize}: ${name} failed (another rank died, or did not arrive within ${this.timeoutMs} ms): ${e.message}`,
      { op: name, cause: e },
    );
  }

  /**
   * Every tensor replaced in place by its reduction over the ranks (all in flight at once). Launched at the call, in
   * program order as every rank must; the promise settles off the JS thread when all are reduced. Leave the tensors
   * alone until then.
   */
  async allReduce(tensors: Tensor | readonly Tensor[], op: ReduceOp = 'sum'): Promise<void> {
    const list = tensorList('allReduce', tensors);
    checkOneOf('ProcessGroup.allReduce', 'op', op, ['sum', 'mean', 'product', 'min', 'max']);
    await this.#collectiveAsync('allReduce', (h) =>
      native.distAllReduce!(
        h,
        list.map((t) => t.handle),
        op === 'mean' ? 'sum' : op,
      ),
    );
    if (op === 'mean') list.forEach((t) => t.div_(this.worldSize));
  }

  /** Every tensor replaced in place by rank `root`'s; settles as `allReduce` does. */
  async broadcast(tensors: Tensor | readonly Tensor[], root = 0): Promise<void> {
    const list = tensorList('broadcast', tensors);
    await this.#collectiveAsync('broadcast', (h) =>
      native.distBroadcast!(
        h,
        list.map((t) => t.handle),
        checkInt('ProcessGroup.broadcast', 'root', root),
      ),
    );
  }

  /**
   * The ranks' `x` (equal shapes) concatenated along dim 0, rank by rank. Differentiable: the gradient reaching this
   * rank's `x` is the sum over ranks of their losses' gradients at its rows (DDP's convention: with averaged parameter
   * gradients, the mean of the ranks' losses is what is optimised).
   */
  allGather(x: Tensor): Tensor {
    return new Tensor(this.#collective('allGather', (h) => native.distAllGather!(h, x.handle)));
  }

  /** The sum over ranks of `x`, as a new tensor; differentiable (its gradient is the ranks' summed gradient). */
  allReduceSum(x: Tensor): Tensor {
    return new Tensor(this.#collective('allReduceSum', (h) => native.distAllReduceSum!(h, x.handle)));
  }

  /**
   * The gradients of `params` averaged over the ranks, in place: one native call, buckets of `bucketBytes` (default
   * 25 MiB, DDP's) all in flight before the first wait. A parameter without a gradient (the loss does not reach it)
   * keeps none; which parameters have one must be the same on every rank, as it is when they run the same model.
   */
  allReduceGradients(params: readonly Tensor[], options: { bucketBytes?: number } = {}): void {
    const { bucketBytes = 25 << 20 } = checkOptions('ProcessGroup.allReduceGradients', options);
    if (checkInt('ProcessGroup.allReduceGradients', 'bucketBytes', bucketBytes) < 1)
      throw invalidArg('ProcessGroup.allReduceGradients', 'bucketBytes', 'at least 1', bucketBytes);
    if (this.worldSize === 1) return;
    this.#collective('allReduceGradients', (h) =>
      native.distAllReduceGradients!(
        h,
        params.map((p) => p.handle),
        bucketBytes,
      ),
    );
  }

  /**
   * Seconds this process has spent waiting for collectives (of any group, the autograd ones included): what a step
   * spent communicating, or waiting for a slower rank, without overlapping it with work.
   */
  static waitSeconds(): number {
    return native.distWaitSeconds?.() ?? 0;
  }

  /** Settles when every rank has arrived; the event loop runs meanwhile. */
  barrier(): Promise<void> {
    return this.#collectiveAsync('barrier', (h) => native.distBarrier!(h));
  }

  /** Leaves the group (idempotent); its collectives throw afterwards. */
  destroy(): void {
    if (this.#handle !== undefined) native.distDestroy!(this.#handle);
    this.#handle = undefined;
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

function tensorList(op: string, tensors: Tensor | readonly Tensor[]): readonly Tensor[] {
  const list = tensors instanceof Tensor ? [tensors] : tensors;
  if (!Array.isArray(list) || !list.every((t) => t instanceof Tensor))
    throw invalidArg(`ProcessGroup.${op}`, 'tensors', 'a tensor or an array of tensors', tensors);
  return list;
}
