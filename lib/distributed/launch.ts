/**
 * The local launcher behind `--nproc K`, torchrun's job on one machine: K copies of this command, each told its place
 * through torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), LibTorch's
 * threads shared out (MMSSL_NUM_THREADS) unless set. Rank 0 writes to this terminal; the others' stderr comes
 * prefixed with their rank. Ctrl-C reaches every rank once (they stop together, after the same step, and exit with
 * status 130, as the launcher then does); a rank that fails stops the others, and the launcher exits with its code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

import { checkInt, invalidArg } from '../errors.js';
import { EXIT } from '../exit.js';

export interface LaunchOptions {
  nproc: number;
  /** The script and its arguments, without the launcher's own (default: this process's, less --nproc). */
  argv: readonly string[];
  /** Default: a free port on loopback. */
  masterPort?: number;
  /** How long the others get to stop after a rank failed, before SIGKILL (ms, default 10 s). */
  graceMs?: number;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs the ranks; resolves with the exit code: 0 when all succeeded, else the first failure's. */
export async function launch(options: LaunchOptions): Promise<number> {
  const { nproc, argv, graceMs = 10_000 } = options;
  if (checkInt('launch', 'nproc', nproc) < 1) throw invalidArg('launch', 'nproc', 'a positive integer', nproc);
  const masterPort = options.masterPort ?? (await freePort());
  const threads = process.env.MMSSL_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / nproc)));
  const children: ChildProcess[] = [];
  let failure: { rank: number; code: number } | undefined;
  let interrupted = false;
  const exited = Array.from(
    { length: nproc },
    (_, rank) =>
      new Promise<void>((done) => {
        const env = {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(nproc),
          LOCAL_RANK: String(rank),
          LOCAL_WORLD_SIZE: String(nproc),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(masterPort),
          MMSSL_NUM_THREADS: threads,
        };
        // Their own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it once.
        const child = spawn(process.execPath, [...process.execArgv, ...argv], {
          env,
          detached: true,
          stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', rank === 0 ? 'inherit' : 'pipe'],
        });
        if (child.stderr)
          createInterface({ input: child.stderr }).on('line', (line) => console.error(`[rank ${rank}] ${line}`));
        child.on('exit', (code, signal) => {
          const status = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
          const stopped = interrupted && status === EXIT.interrupted; // as asked: not a failure
          if (status !== 0 && !stopped && !failure) {
            failure = { rank, code: status };
            console.error(
              `mmssl: rank ${rank} of ${nproc} ${code !== null ? `exited with code ${code}` : `was killed by ${signal}`}; stopping the others`,
            );
            stopAll(children, graceMs);
          }
          done();
        });
        children.push(child);
      }),
  );
  const forward = (signal: NodeJS.Signals) => () => children.forEach((c) => c.exitCode === null && c.kill(signal));
  const onInt = () => {
      interrupted = true;
      forward('SIGINT')();
    },
    onTerm = forward('SIGTERM');
  const onExit = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.on('SIGINT', onInt).on('SIGTERM', onTerm).on('exit', onExit);
  try {
    await Promise.all(exited);
  } finally {
    process.off('SIGINT', onInt).off('SIGTERM', onTerm).off('exit', onExit);
  }
  return (
    failure?.code ?? (interrupted && children.some((c) => c.exitCode === EXIT.interrupted) ? EXIT.interrupted : EXIT.ok)
  );
}

function stopAll(children: ChildProcess[], graceMs: number): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), graceMs).unref();
  }
}
