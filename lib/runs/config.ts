/** A run folder's config.json, read and checked as the configuration it is (one reader, one message). */
import {
  type FinetuneConfig,
  type PretrainConfig,
  resolveFinetuneConfig,
  resolvePretrainConfig,
} from '../config/index.js';
import { FileError } from '../errors.js';
import type { RunFolder } from './folder.js';

function read<T>(folder: RunFolder, kind: string, resolve: (value: Record<string, unknown>) => T): T {
  if (!folder.has('config'))
    throw new FileError(
      folder.dir,
      `holds no ${kind} run (no config.json): give a folder that mmssl ${kind} --out wrote`,
    );
  try {
    return resolve(folder.readJson<Record<string, unknown>>('config'));
  } catch (e) {
    if (e instanceof FileError) throw e;
    throw new FileError(folder.path('config'), `is not a ${kind} configuration: ${(e as Error).message}`, { cause: e });
  }
}

export const readPretrainConfig = (folder: RunFolder): PretrainConfig =>
  read(folder, 'pretrain', (v) => resolvePretrainConfig(v));
export const readFinetuneConfig = (folder: RunFolder): FinetuneConfig =>
  read(folder, 'finetune', (v) => resolveFinetuneConfig(v));
