/**
 * Which embeddings are positives of which in a pre-training batch. A batch of N locations yields T views per
 * location: with augmentations, two per modality (each modality's second view is a positive of its first); without,
 * one per modality, so at least two modalities are needed for a location to have a positive at all. Embeddings are
 * concatenated modality by modality, view by view, location by location: row (m * views + v) * N + i is view v of
 * modality m of location i, and its group (InfoNCE's positive set) is i. METER-ML Negatives are anchors of nothing.
 */
import { ArgumentError, checkBool, invalidArg } from '../errors.js';

export interface ViewLayout {
  modalities: readonly string[];
  /** Views per modality: 2 with augmentations, 1 without. */
  views: number;
  /** T: views per location. */
  perLocation: number;
}

export function viewLayout(modalities: readonly string[], augment: boolean): ViewLayout {
  const op = 'viewLayout';
  if (
    !Array.isArray(modalities) ||
    modalities.length === 0 ||
    !modalities.every((m) => typeof m === 'string' && m !== '')
  ) {
    throw invalidArg(op, 'modalities', 'a non-empty array of modality names', modalities);
  }
  if (new Set(modalities).size !== modalities.length) throw invalidArg(op, 'modalities', 'distinct names', modalities);
  checkBool(op, 'augment', augment);
  if (!augment && modalities.length < 2) {
    throw new ArgumentError(
      `${op}: pre-training ${modalities[0]} alone needs augmentations: without them a location has one view and no positive (add a modality, or turn augmentations on)`,
    );
  }
  const views = augment ? 2 : 1;
  return { modalities: [...modalities], views, perLocation: views * modalities.length };
}

/** The group (location position in the batch) of each of the T x N rows. */
export function viewGroups(layout: ViewLayout, n: number): number[] {
  return Array.from({ length: layout.perLocation * n }, (_, row) => row % n);
}

/** Which rows may be anchors: every view of every location that is not a Negative. */
export function anchorRows(layout: ViewLayout, negative: readonly boolean[]): boolean[] {
  return Array.from({ length: layout.perLocation * negative.length }, (_, row) => !negative[row % negative.length]);
}

/** The rows holding the views of `modality`, as [start, end). */
export function modalityRows(layout: ViewLayout, modality: string, n: number): [number, number] {
  const m = layout.modalities.indexOf(modality);
  if (m < 0) throw invalidArg('modalityRows', 'modality', `one of ${layout.modalities.join(', ')}`, modality);
  return [m * layout.views * n, (m + 1) * layout.views * n];
}
