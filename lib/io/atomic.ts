/**
 * Atomic file replacement: write a temporary file beside the target, fsync it, rename it over the target, fsync the
 * directory. A crash or kill at any moment leaves the old file or the new one, never a torn one. Temporary files left
 * by a writer that was killed are removed by the next write of the same target.
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { FileError } from '../errors.js';

const tempName = (path: string) => `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `<target>.tmp-<pid>-*` files whose writer process is gone. */
function removeStaleTemps(path: string): void {
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;   // the directory does not exist yet: the write will say so
  }
  for (const name of names) {
    const pid = Number(name.startsWith(prefix) ? name.slice(prefix.length).split('-')[0] : NaN);
    if (Number.isSafeInteger(pid) && pid !== process.pid && !isAlive(pid)) rmSync(join(dirname(path), name), { force: true });
  }
}

function fsyncDirectory(path: string): void {
  const fd = openSync(dirname(path), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function ioError(path: string, action: string, e: unknown): FileError {
  return new FileError(path, `cannot ${action}: ${(e as Error).message}`);
}

/** Replaces `path` with the concatenated `chunks`, atomically. */
export function writeFileAtomicSync(path: string, chunks: readonly Uint8Array[]): void {
  removeStaleTemps(path);
  const temp = tempName(path);
  try {
    const fd = openSync(temp, 'wx');
    try {
      for (const chunk of chunks) {
        for (let done = 0; done < chunk.byteLength;) done += writeSync(fd, chunk, done);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    fsyncDirectory(path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw ioError(path, 'write', e);
  }
}

/** Like `writeFileAtomicSync`, with the writes and fsyncs off the event loop. */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  removeStaleTemps(path);
  const temp = tempName(path);
  try {
    const file = await open(temp, 'wx');
    try {
      for (const chunk of chunks) await file.writeFile(chunk);   // writeFile loops until all is written
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    await rm(temp, { force: true });
    throw ioError(path, 'write', e);
  }
}
