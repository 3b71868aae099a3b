/**
 * Zip archives as `torch.save` writes them (records stored, not compressed), through yauzl (reading: the central
 * directory, ZIP64, sizes validated; the CRC-32 of each record is checked here, which yauzl leaves to its user) and
 * yazl (writing). Records are read one at a time, when asked, so a large file is never held whole.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

import yauzl from 'yauzl';
import yazl from 'yazl';

import { FileError } from '../errors.js';
import { native } from '../native.js';

export interface ZipEntry {
  /** The record's uncompressed size, from the central directory. */
  size: number;
  /** The record's bytes (checked against its size and CRC-32 as they are read). */
  read(): Promise<Uint8Array>;
}

/**
 * Reads of `file` within its size. yauzl's own fd reader passes the offsets a damaged ZIP64 record declares straight
 * to fs.read, which throws outside any callback for one beyond 2^53, and that ends the process (a flipped byte in the
 * ZIP64 locator is enough; reported upstream). Here such a read is a stream that fails, which yauzl reports as an
 * error.
 */
class BoundedReader extends yauzl.RandomAccessReader {
  constructor(
    readonly file: FileHandle,
    readonly size: number,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const { file, size } = this;
    let position = start;
    return new Readable({
      read() {
        if (!(start >= 0 && end >= start && end <= size)) {
          this.destroy(new Error(`a read of bytes ${start} to ${end}, outside the file's ${size}`));
          return;
        }
        const length = Math.min(1 << 20, end - position);
        if (length === 0) {
          this.push(null);
          return;
        }
        const chunk = Buffer.allocUnsafe(length);
        file.read(chunk, 0, length, position).then(
          ({ bytesRead }) => {
            position += bytesRead;
            if (bytesRead === 0) this.destroy(new Error('the file ended early'));
            else this.push(chunk.subarray(0, bytesRead));
          },
          (e: Error) => this.destroy(e),
        );
      },
    });
  }
}

/** The records of the archive open as `file`, by name. */
export async function readZip(file: FileHandle, path: string): Promise<Map<string, ZipEntry>> {
  const { size } = await file.stat();
  const zip = await yauzl
    .fromRandomAccessReaderPromise(new BoundedReader(file, size), size, {
      lazyEntries: true,
      autoClose: false,
      validateEntrySizes: true,
    })
    .catch((e: Error) => Promise.reject(new FileError(path, `not a readable zip archive: ${e.message}`)));
  const entries = new Map<string, ZipEntry>();
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      entries.set(entry.fileName, {
        size: entry.uncompressedSize,
        read: () => readEntry(zip, entry, path),
      });
      zip.readEntry();
    });
    zip.on('end', resolve);
    zip.on('error', (e: Error) => reject(new FileError(path, `a damaged zip archive: ${e.message}`)));
    zip.readEntry();
  });
  return entries;
}

async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, path: string): Promise<Uint8Array> {
  const fail = (e: Error) => new FileError(path, `${entry.fileName}: ${e.message}`);
  const stream = await zip.openReadStreamPromise(entry).catch((e: Error) => Promise.reject(fail(e)));
  const out = new Uint8Array(entry.uncompressedSize);
  let at = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > out.length) throw new Error('more bytes than the archive declares');
      out.set(chunk, at);
      at += chunk.length;
    }
  } catch (e) {
    throw fail(e as Error);
  }
  if (at !== out.length) throw fail(new Error(`${at} bytes where the archive declares ${out.length}`));
  if (native.crc32(out) !== entry.crc32) throw fail(new Error('CRC-32 mismatch: the record is corrupted'));
  return out;
}

/** A zip archive of `records`, in order, stored uncompressed, as chunks to write. */
export async function writeZip(records: readonly { name: string; data: Uint8Array }[]): Promise<Uint8Array[]> {
  const zip = new yazl.ZipFile();
  const mtime = new Date(1980, 0, 1); // fixed: the same tensors give the same bytes
  for (const { name, data } of records)
    zip.addBuffer(Buffer.from(data.buffer, data.byteOffset, data.byteLength), name, { compress: false, mtime });
  zip.end();
  const chunks: Uint8Array[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return chunks;
}
