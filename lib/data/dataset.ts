/**
 * The contract between the readers (METER-ML's release layout, GeoTIFF manifests, the synthetic generator's output)
 * and the loader: a dataset is an index of samples (cheap, in memory) and a way to read one modality of one sample
 * as float32 [C, H, W]. A dataset is described by a plain `DatasetSpec`, so worker threads can open the same one.
 */
import { invalidArg } from '../errors.js';

/** The six methane-source classes, in METER-ML's spelling and the classifier's order. */
export const CLASSES = [
  'CAFOs',
  'Landfills',
  'Mines',
  'ProcessingPlants',
  'RefineriesAndTerminals',
  'WWTreatment',
] as const;
export type ClassName = (typeof CLASSES)[number];
/** METER-ML's type for sites without a methane source: used only as negatives in pre-training. */
export const NEGATIVE = 'Negative';

export type Split = 'train' | 'val' | 'test';

export interface SampleRecord {
  /** Stable id: the sample folder relative to the root (METER-ML) or the manifest's id. */
  id: string;
  split: Split;
  /** The sample's classes, in the order the source lists them (empty for Negative or an unknown type). */
  classes: ClassName[];
  /** Index in CLASSES of the first class (single-label target, as the authors' code does), or -1. */
  label: number;
  /** A METER-ML Negative: never an anchor in pre-training. */
  negative: boolean;
  latitude?: number;
  longitude?: number;
}

/** Multi-hot target over CLASSES. */
export function multiHot(sample: SampleRecord): Float32Array {
  const out = new Float32Array(CLASSES.length);
  for (const c of sample.classes) out[CLASSES.indexOf(c)] = 1;
  return out;
}

/**
 * The classes a METER-ML `Type` names, in its order: a class, `Negative`, or classes joined by '-' for multi-class
 * sites ('CAFOs-Landfills'). Other names (the release has 'Roundabout') and '' add no class and are not Negatives.
 */
export function parseType(type: string): Pick<SampleRecord, 'classes' | 'label' | 'negative'> {
  const names = type.split('-').map((name) => name.trim());
  const classes = names.filter((name): name is ClassName => (CLASSES as readonly string[]).includes(name));
  return { classes, label: classes.length > 0 ? CLASSES.indexOf(classes[0]) : -1, negative: type.trim() === NEGATIVE };
}

export interface ModalityInfo {
  /** 's1', 's2', 'naip', or a manifest's own names. */
  name: string;
  /** Band names in channel order (e.g. ['VV', 'VH'], ['R', 'G', 'B', 'NIR']). */
  bands: string[];
  /** The modality's native grid [H, W]: what `read` returns. */
  size: [number, number];
  /** The size a run reads the modality at unless told otherwise, where it is not `size` (a pack with a margin). */
  outputSize?: [number, number];
}

/** The size a run reads a modality at unless its configuration says otherwise. */
export const defaultSize = (info: ModalityInfo): [number, number] => info.outputSize ?? info.size;

/** One modality of one sample: float32, channels first. */
export interface Raster {
  shape: [number, number, number];
  data: Float32Array;
}

/** What to do with a sample that cannot be read: stop with its FileError, or leave it out and say so. */
export type BadSamplePolicy = 'raise' | 'skip';
export const BAD_SAMPLE_POLICIES: readonly BadSamplePolicy[] = ['raise', 'skip'];

/** A sample left out under `onBadSample: 'skip'`, and why; where it was to be read when a loader skipped it. */
export interface SkippedSample {
  id: string;
  /** The file that could not be read, when known. */
  file?: string;
  message: string;
  epoch?: number;
  batch?: number;
}

export type DatasetSpec =
  | { kind: 'meterml'; root: string; options?: Record<string, unknown> }
  | { kind: 'manifest'; path: string; options?: Record<string, unknown> }
  | { kind: 'packed'; root: string; options?: Record<string, unknown> };

/** Each modality's band count in `dataset`; an ArgumentError naming the dataset's modalities for an unknown one. */
export function bandCounts(op: string, modalities: readonly string[], dataset: Dataset): Record<string, number> {
  return Object.fromEntries(
    modalities.map((m) => {
      const info = dataset.modalities.find((i) => i.name === m);
      if (!info)
        throw invalidArg(
          op,
          'modalities',
          `names among the dataset's (${dataset.modalities.map((i) => i.name).join(', ')})`,
          m,
        );
      return [m, info.bands.length];
    }),
  );
}

export interface Dataset {
  readonly spec: DatasetSpec;
  readonly modalities: readonly ModalityInfo[];
  readonly samples: readonly SampleRecord[];
  /**
   * Reads `modality` of sample `index` at its native grid. A missing or unreadable file, a wrong shape or band count,
   * or NaN pixels throw a `FileError` whose message names the sample and the file.
   */
  read(index: number, modality: string): Promise<Raster>;
  /** The training split's per-band statistics, where the dataset carries them (a pack does): used as they are. */
  readonly stats?: Record<string, { mean: number[]; std: number[] }>;
}
