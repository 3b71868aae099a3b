/**
 * Atomic file replacement: write a temporary file beside the target, fsync it, rename it over the target, fsync the
 * directory. A crash or kill at any moment leaves the old file or the new one, never a torn one. A temporary file is
 * named `<target>.tmp-<pid>-<random>`; those of a writer that was killed (its pid no longer runs) are removed by the
 * next write of the same target, so they cannot accumulate. The target's directory is created if missing, as output
 * paths of a run (`run/last.safetensors`) usually are on the first write.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { FileError } from '../errors.js';

const tempName = (path: string) => `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, but another user's
  }
}

/** Of the names in `path`'s directory, the temporary files of `path` whose writer process is gone. */
function staleTemps(path: string, names: readonly string[]): string[] {
  const prefix = `${basename(path)}.tmp-`;
  return names
    .filter((name) => {
      const pid = Number(name.startsWith(prefix) ? name.slice(prefix.length).split('-')[0] : NaN);
      return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !isAlive(pid);
    })
    .map((name) => join(dirname(path), name));
}

function ioError(path: string, action: string, e: unknown): FileError {
  return new FileError(path, `cannot ${action}: ${(e as Error).message}`);
}

/** Removes a temporary file if it exists; the error being reported is the write's, not this one's. */
function removeQuietly(temp: string): void {
  try {
    rmSync(temp, { force: true });
  } catch {
    // e.g. ENOTDIR: the temporary file was never created
  }
}

/** Replaces `path` with the concatenated `chunks`, atomically. */
export function writeFileAtomicSync(path: string, chunks: readonly Uint8Array[]): void {
  let names: string[] = [];
  try {
    mkdirSync(dirname(path), { recursive: true });
    names = readdirSync(dirname(path));
  } catch {
    // no directory and none can be made: opening the temporary file says why below
  }
  staleTemps(path, names).forEach((stale) => rmSync(stale, { force: true }));
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
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir); // makes the rename itself durable
    } finally {
      closeSync(dir);
    }
  } catch (e) {
    removeQuietly(temp);
    throw ioError(path, 'write', e);
  }
}

/** Like `writeFileAtomicSync`, with every file operation off the event loop. */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const names = await mkdir(dirname(path), { recursive: true })
    .then(() => readdir(dirname(path)))
    .catch(() => []);
  await Promise.all(staleTemps(path, names).map((stale) => rm(stale, { force: true })));
  const temp = tempName(path);
  try {
    const file = await open(temp, 'wx');
    try {
      for (const chunk of chunks) await file.writeFile(chunk); // writes all of it, from the current position
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
    await rm(temp, { force: true }).catch(() => undefined); // (as removeQuietly)
    throw ioError(path, 'write', e);
  }
}

/** `value` as indented JSON, written atomically (configurations, reports, results). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(value, null, 1)}\n`)]);
}
