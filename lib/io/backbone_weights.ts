/**
 * A backbone started from weights trained elsewhere (torchvision, timm, TorchGeo's SSL4EO, Lightning or DataParallel
 * checkpoints): their keys found under a prefix (given, or detected), the first convolution mapped to the modality's
 * bands by name, bands the weights lack initialised as timm's `adapt_input_conv` would, the classifier head left out.
 */
import { FileError, StateDictError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { cat, stack } from '../torch/creation.js';
import { noGrad } from '../torch/autograd.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import { readWeightsFile } from './checkpoint.js';

export interface BackboneWeights {
  /** A PyTorch or safetensors file. */
  file: string;
  /** The prefix of the backbone's keys in the file; 'auto' (default) tries the usual ones. */
  prefix?: string;
  /** The bands of the file's first convolution, in its channel order (e.g. SSL4EO's B1..B12 with B8A). */
  bands?: readonly string[];
}

export interface BackboneWeightsReport {
  prefix: string;
  /** Per band of the modality: the file's band it came from, or how it was made. */
  bands: { band: string; from: string }[];
  /** The file's bands the modality does not have. */
  dropped: string[];
  /** The backbone's keys the file lacks (the classifier head, `fc.*` / `classifier.6.*`, only). */
  missingKeys: string[];
  /** A printable table of the above. */
  table: string;
}

const PREFIXES = ['', 'module.encoder_q.', 'encoder_q.', 'module.', 'backbone.', 'model.', 'encoder.'];
/** Sentinel-2 names for METER-ML's colour names, so 'R' finds 'B4'. */
const ALIASES: Record<string, string[]> = { R: ['B4', 'B04'], G: ['B3', 'B03'], B: ['B2', 'B02'], NIR: ['B8', 'B08'] };
/** The classifier head a backbone may lack in the file: it is trained for another task anyway. */
const isHead = (key: string) => /^(fc|classifier\.6|head)\./.test(key);

/** Loads `weights` into `backbone`, whose first convolution takes `bands`; see the file's comment. */
export async function loadBackboneWeights(
  backbone: Module,
  bands: readonly string[],
  weights: BackboneWeights,
): Promise<BackboneWeightsReport> {
  const { tensors } = await readWeightsFile(weights.file);
  try {
    const own = backbone.stateDict();
    const prefix =
      weights.prefix && weights.prefix !== 'auto' ? weights.prefix : detectPrefix(weights.file, own, tensors);
    const firstConv = [...own].find(([, t]) => t.ndim === 4)![0];
    const source = tensors.get(prefix + firstConv);
    if (!source) throw new FileError(weights.file, `no '${prefix}${firstConv}' (the first convolution) in the file`);
    const mapped = mapInputConv(weights.file, source, bands, weights.bands);
    const state = new Map<string, Tensor>([[firstConv, mapped.weight]]);
    const missingKeys: string[] = [];
    for (const [key, t] of own) {
      if (key === firstConv) continue;
      const found = tensors.get(prefix + key);
      if (found && String(found.shape) === String(t.shape)) state.set(key, found);
      else if (isHead(key)) missingKeys.push(key);
      else
        throw new StateDictError(
          `${weights.file}: '${prefix}${key}' ${found ? `has shape [${found.shape}], the backbone's is [${t.shape}]` : 'is missing'}`,
          found ? [] : [key],
          [],
          found ? [key] : [],
        );
    }
    missingKeys.forEach((k) => state.set(k, own.get(k)!)); // kept as initialised
    backbone.loadStateDict(state);
    mapped.weight.dispose();
    return { prefix, ...mapped.report, missingKeys, table: table(weights.file, prefix, mapped.report, missingKeys) };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

/** The prefix under which the file holds the most of the backbone's keys (ties: the first of PREFIXES). */
function detectPrefix(file: string, own: Map<string, Tensor>, tensors: Map<string, Tensor>): string {
  const keys = [...own.keys()].filter((k) => !isHead(k));
  const scored = PREFIXES.map((p) => ({ p, found: keys.filter((k) => tensors.has(p + k)).length }));
  const best = scored.reduce((a, b) => (b.found > a.found ? b : a));
  if (best.found === 0)
    throw new FileError(
      file,
      `holds none of the backbone's keys under ${PREFIXES.map((p) => `'${p}'`).join(', ')}: give its prefix`,
    );
  return best.p;
}

/**
 * The first convolution's weight [out, bands, kh, kw] from the file's [out, fileBands, kh, kw]: each band taken by
 * name (or its Sentinel-2 alias); bands the file lacks get the mean over the file's bands. Without names, timm's
 * adapt_input_conv: the file's channels repeated to the modality's count, scaled by fileBands / bands.
 */
function mapInputConv(
  file: string,
  source: Tensor,
  bands: readonly string[],
  fileBands: readonly string[] | undefined,
): { weight: Tensor; report: Pick<BackboneWeightsReport, 'bands' | 'dropped'> } {
  const count = source.shape[1];
  if (fileBands && fileBands.length !== count)
    throw new FileError(file, `its first convolution takes ${count} bands; ${fileBands.length} band names were given`);
  return tidy(() =>
    noGrad(() => {
      if (!fileBands) {
        const repeats = Math.ceil(bands.length / count);
        const weight = cat(
          Array.from({ length: repeats }, () => source),
          1,
        )
          .narrow(1, 0, bands.length)
          .mul(count / bands.length)
          .contiguous();
        const from = bands.map((band, i) => ({
          band,
          from: `channel ${i % count} x ${(count / bands.length).toFixed(3)} (timm's adapt_input_conv)`,
        }));
        return { weight, report: { bands: from, dropped: [] } };
      }
      const index = bands.map(
        (band) => [band, ...(ALIASES[band] ?? [])].map((n) => fileBands.indexOf(n)).find((i) => i >= 0) ?? -1,
      );
      const mean = source.mean([1]);
      const weight = stack(
        index.map((i) => (i >= 0 ? source.narrow(1, i, 1).squeeze(1) : mean)),
        1,
      );
      return {
        weight,
        report: {
          bands: bands.map((band, k) => ({
            band,
            from: index[k] >= 0 ? fileBands[index[k]] : `mean of the file's ${count} bands`,
          })),
          dropped: fileBands.filter((_, i) => !index.includes(i)),
        },
      };
    }),
  );
}

function table(
  file: string,
  prefix: string,
  report: Pick<BackboneWeightsReport, 'bands' | 'dropped'>,
  missing: string[],
): string {
  return [
    `${file} (keys under '${prefix}')`,
    ...report.bands.map(({ band, from }) => `  ${band.padEnd(6)} <- ${from}`),
    `  dropped: ${report.dropped.length > 0 ? report.dropped.join(', ') : 'none'}`,
    `  left as initialised: ${missing.length > 0 ? missing.join(', ') : 'none'}`,
  ].join('\n');
}
