/** Opens a dataset from its plain description, in the main thread or in a data worker. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { invalidArg } from '../errors.js';
import type { Dataset, DatasetSpec } from './dataset.js';
import { INDEX_FILE } from './packed/format.js';

export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  switch (spec.kind) {
    case 'meterml':
      return (await import('./meterml.js')).openMeterML(spec.root, spec.options);
    case 'manifest':
      return (await import('./manifest.js')).openManifest(spec.path, spec.options);
    case 'packed':
      return (await import('./packed/dataset.js')).openPacked(spec.root);
    default:
      throw invalidArg(
        'openDataset',
        'spec.kind',
        "'meterml', 'manifest' or 'packed'",
        (spec as { kind: unknown }).kind,
      );
  }
}

/**
 * The dataset at `path`: a manifest file (.geojson, .json, .csv), a folder holding manifest.geojson (what
 * `mmssl synth --format geotiff` writes), a packed dataset (`mmssl pack`), or a METER-ML folder.
 */
export async function openPath(path: string, options?: Record<string, unknown>): Promise<Dataset> {
  if (typeof path !== 'string' || path === '')
    throw invalidArg('openPath', 'path', 'a dataset folder or manifest file', path);
  if (/\.(geojson|json|csv)$/i.test(path)) return openDataset({ kind: 'manifest', path, options });
  if (existsSync(join(path, INDEX_FILE))) return openDataset({ kind: 'packed', root: path });
  const manifest = join(path, 'manifest.geojson');
  if (existsSync(manifest) && !existsSync(join(path, 'train_dataset.geojson')))
    return openDataset({ kind: 'manifest', path: manifest, options });
  return openDataset({ kind: 'meterml', root: path, options });
}
