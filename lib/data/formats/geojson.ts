/** GeoJSON FeatureCollections, as METER-ML's split files and mmssl's manifests are written. */
import { FileError, isObject } from '../../errors.js';

export interface FeatureCollection extends Record<string, unknown> {
  type: 'FeatureCollection';
  features: unknown[];
}

/** Parses `text` (read from `file`, which errors name) as a FeatureCollection; its foreign members are kept. */
export function parseFeatureCollection(text: string, file: string): FeatureCollection {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FileError(file, `not JSON: ${(e as Error).message}`);
  }
  if (!isObject(json) || json.type !== 'FeatureCollection' || !Array.isArray(json.features)) {
    throw new FileError(
      file,
      'not a GeoJSON FeatureCollection (an object with type "FeatureCollection" and a features array)',
    );
  }
  return json as FeatureCollection;
}
