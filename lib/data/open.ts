/** Opens a dataset from its plain description, in the main thread or in a data worker. */
import { invalidArg } from '../errors.js';
import type { Dataset, DatasetSpec } from './dataset.js';

export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  switch (spec.kind) {
    case 'meterml':
      return (await import('./meterml.js')).openMeterML(spec.root, spec.options);
    case 'manifest':
      return (await import('./manifest.js')).openManifest(spec.path, spec.options);
    default:
      throw invalidArg('openDataset', 'spec.kind', "'meterml' or 'manifest'", (spec as { kind: unknown }).kind);
  }
}
