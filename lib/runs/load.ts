/**
 * A run folder loaded for inference: a pre-training run (its encoders' backbone features) or a fine-tuning output
 * (the same, plus the classifier's logits), in eval mode, with what its inputs need: per modality the band count, the
 * input size the run trained at (none: any) and the band statistics to standardise with. `describeRun` reads only
 * the folder's JSON and the weights file's header; `loadRun` builds and loads the model for some or all of its
 * modalities (the whole classifier only when all are asked for).
 */
import type { NormalizationStats } from '../data/stats.js';
import { FileError, invalidArg } from '../errors.js';
import { loadCheckpoint, loadWeights, type ModuleLike, peekWeights, saveWeights } from '../io/checkpoint.js';
import type { Module } from '../nn/module.js';
import { type BackboneName, defaultBackbone, FusionClassifier, MultiModalModel } from '../nn/models/multimodal.js';
import type { FinetuneConfig } from '../config/index.js';
import { atPrecision, checkPrecision, type Precision } from '../torch/amp.js';
import type { Device } from '../torch/device.js';
import type { MemoryFormat, Tensor } from '../torch/tensor.js';
import { readFinetuneConfig, readPretrainConfig } from './config.js';
import { RunFolder } from './folder.js';
import { architecture, classNamesOf } from './models.js';

export interface RunDescription {
  kind: 'pretrain' | 'finetune';
  /** Each modality's backbone, and AlexNet's fc width. */
  backbones: Record<string, BackboneName>;
  alexnetHidden: number;
  /** In the order the classifier concatenates their features. */
  modalities: string[];
  channels: Record<string, number>;
  /**
   * Input [H, W] the run trained at, per modality (runs made before mmssl recorded their native grids: only the
   * modalities whose size was configured).
   */
  sizes: Record<string, [number, number]>;
  normalization: NormalizationStats;
  memoryFormat: MemoryFormat;
  /** A fine-tuned run's classes. */
  classNames?: string[];
  /** A fine-tuned run's stand-in for missing modalities (learned when it was fine-tuned with modality dropout). */
  missingToken?: 'zero' | 'learned';
  /** A pre-training run's projection heads (the widths its checkpoint holds). */
  heads?: { embeddingDim: number; hiddenDim: number };
}

export interface LoadedRun extends RunDescription {
  /** F per modality: the width of its backbone's features. */
  featureDims: Record<string, number>;
  /** Backbone features [N, F] of a standardised batch of one modality. */
  features(modality: string, x: Tensor): Tensor;
  /** Logits [N, classes] from one batch per modality (a fine-tuned run loaded with all its modalities). */
  logits?(inputs: Record<string, Tensor>): Tensor;
  /** Logits from backbone features, missing modalities' replaced by the missing token (as `logits`). */
  fuse?(features: Record<string, Tensor>): Tensor;
  /** A pre-training run's embeddings [N, embeddingDim] of a batch of one modality: the space InfoNCE compared. */
  project?(modality: string, x: Tensor): Tensor;
  dispose(): void;
}

const channelsOf = (normalization: NormalizationStats, modalities: readonly string[], path: string) =>
  Object.fromEntries(
    modalities.map((m) => {
      if (!normalization[m]) throw new FileError(path, `holds no band statistics for ${m}`);
      return [m, normalization[m].mean.length];
    }),
  );

/**
 * Saves a fine-tuned model as the folder's model.safetensors with what inference needs to use it alone (read back by
 * `describeRun`): its architecture, configuration, classes, the band statistics its inputs were standardised with
 * and each modality's input size.
 */
export async function saveFinetuned(
  model: FusionClassifier,
  folder: RunFolder,
  config: FinetuneConfig,
  normalization: NormalizationStats,
  sizes: Record<string, [number, number]>,
): Promise<void> {
  await saveWeights(model, folder.path('model'), {
    metadata: {
      architecture: 'FusionClassifier',
      ...architecture(config),
      config: JSON.stringify(config),
      classNames: classNamesOf(config),
      normalizationPerModality: JSON.stringify(normalization),
      inputSizes: JSON.stringify(sizes),
    },
  });
}

/** What the run in `init` expects of its inputs, from its config and its weights file's header. */
export async function describeRun(init: string): Promise<RunDescription> {
  const folder = new RunFolder(init);
  if (folder.has('model')) {
    const path = folder.path('model');
    const config = readFinetuneConfig(folder);
    const { metadata } = await peekWeights(path);
    if (typeof metadata.normalizationPerModality !== 'string')
      throw new FileError(path, 'is not a fine-tuned model of mmssl (no normalizationPerModality)');
    const normalization = JSON.parse(metadata.normalizationPerModality) as NormalizationStats;
    // The architecture as saved with the weights (models fine-tuned before it was saved: their pre-training run's).
    const spec =
      metadata.backbones !== undefined
        ? {
            backbones: metadata.backbones as Record<string, BackboneName>,
            alexnetHidden: metadata.alexnetHidden as number,
          }
        : architecture(config);
    const missingToken = (metadata.missingToken as 'zero' | 'learned' | undefined) ?? 'zero';
    const sizes =
      typeof metadata.inputSizes === 'string'
        ? (JSON.parse(metadata.inputSizes) as Record<string, [number, number]>)
        : config.sizes;
    return {
      kind: 'finetune',
      ...withDefaults(spec, config.modalities),
      modalities: config.modalities,
      channels: channelsOf(normalization, config.modalities, path),
      sizes,
      normalization,
      memoryFormat: config.memoryFormat,
      classNames: classNamesOf(config),
      missingToken,
    };
  }
  const path = folder.path('checkpoint');
  if (!folder.has('checkpoint'))
    throw new FileError(init, 'holds neither a pre-training checkpoint nor a fine-tuned model');
  const config = readPretrainConfig(folder);
  const { checkpoint } = await peekWeights(path);
  const extra = checkpoint?.extra as
    { normalization?: NormalizationStats; inputSizes?: Record<string, [number, number]> } | undefined;
  const normalization = extra?.normalization;
  if (!normalization) throw new FileError(path, 'is not a pre-training checkpoint of mmssl (no band statistics)');
  return {
    kind: 'pretrain',
    ...withDefaults(config, config.modalities),
    modalities: config.modalities,
    channels: channelsOf(normalization, config.modalities, path),
    sizes: extra.inputSizes ?? config.sizes,
    normalization,
    memoryFormat: config.memoryFormat,
    heads: { embeddingDim: config.embeddingDim, hiddenDim: config.hiddenDim },
  };
}

/** Every modality's backbone named (the defaults filled in). */
const withDefaults = (
  { backbones, alexnetHidden }: { backbones: Record<string, BackboneName>; alexnetHidden: number },
  modalities: readonly string[],
) => ({
  backbones: Object.fromEntries(modalities.map((m) => [m, backbones[m] ?? defaultBackbone(m)])),
  alexnetHidden,
});

/** The modalities to load: `wanted` (all among the run's), or the run's. */
function chosen(wanted: readonly string[] | undefined, run: readonly string[]): string[] {
  const absent = (wanted ?? []).filter((m) => !run.includes(m));
  if (absent.length > 0)
    throw invalidArg('loadRun', 'modalities', `among the run's (${run.join(', ')})`, absent.join(', '));
  return [...(wanted ?? run)];
}

/**
 * The modality modules of a model holding some of a run's modalities, loading from the run's state dict the keys
 * `<modality>.*` of theirs, strictly; the other modalities' keys, and a classifier's, are not theirs.
 */
function modalityParts(modules: ReadonlyMap<string, Module>): ModuleLike {
  return {
    stateDict: () =>
      new Map(
        [...modules].flatMap(([m, module]) =>
          [...module.stateDict()].map(([k, t]): [string, Tensor] => [`${m}.${k}`, t]),
        ),
      ),
    loadStateDict(state, options) {
      const entries = state instanceof Map ? [...state] : Object.entries(state as Record<string, Tensor>);
      for (const [m, module] of modules) {
        module.loadStateDict(
          new Map(entries.filter(([k]) => k.startsWith(`${m}.`)).map(([k, t]) => [k.slice(m.length + 1), t])),
          options,
        );
      }
      return { missingKeys: [], unexpectedKeys: [] };
    },
  };
}

/**
 * Loads the run in `init` for inference, for `modalities` (default all of the run's), on `device`, its outputs
 * computed at `precision` (default '32') and returned in float32.
 */
export async function loadRun(
  init: string,
  options: { modalities?: readonly string[]; device?: Device; precision?: Precision } = {},
): Promise<LoadedRun> {
  const device = options.device ?? 'cpu',
    precision = options.precision ?? '32';
  checkPrecision('loadRun', precision, device);
  const at = <A extends unknown[]>(fn: (...args: A) => Tensor) => atPrecision(precision, device, fn);
  const description = await describeRun(init);
  const modalities = chosen(options.modalities, description.modalities);
  const whole = modalities.length === description.modalities.length;
  const pick = (names: readonly string[]) => Object.fromEntries(names.map((m) => [m, description.channels[m]]));
  const to = { device, memoryFormat: description.memoryFormat } as const;
  if (description.kind === 'finetune') {
    // The whole classifier in its trained order (its weights follow the concatenation), or the chosen backbones.
    const names = whole ? description.modalities : modalities;
    const model = new FusionClassifier({
      modalities: pick(names),
      numClasses: description.classNames!.length,
      backbones: Object.fromEntries(names.map((m) => [m, description.backbones[m]])),
      alexnetHidden: description.alexnetHidden,
      missingToken: whole ? description.missingToken : 'zero',
    });
    await loadWeights(whole ? model : modalityParts(model.backbones), new RunFolder(init).path('model')).catch(
      (e: unknown) => {
        model.dispose();
        throw e;
      },
    );
    model.eval().to(to);
    return {
      ...description,
      modalities,
      featureDims: Object.fromEntries(modalities.map((m) => [m, model.backbones.get(m)!.featureDim])),
      features: at((m: string, x: Tensor) => model.backbones.get(m)!.features(x)),
      logits: whole ? at((inputs: Record<string, Tensor>) => model.forward(inputs)) : undefined,
      fuse: whole ? at((features: Record<string, Tensor>) => model.fuse(features)) : undefined,
      dispose: () => model.dispose(),
    };
  }
  const model = new MultiModalModel({
    modalities: pick(modalities),
    backbones: Object.fromEntries(modalities.map((m) => [m, description.backbones[m]])),
    ...description.heads!,
    alexnetHidden: description.alexnetHidden,
  });
  await loadCheckpoint(new RunFolder(init).path('checkpoint'), { model: modalityParts(model.encoders) }).catch(
    (e: unknown) => {
      model.dispose();
      throw e;
    },
  );
  model.eval().to(to);
  return {
    ...description,
    modalities,
    featureDims: Object.fromEntries(modalities.map((m) => [m, model.encoder(m).backbone.featureDim])),
    features: at((m: string, x: Tensor) => model.encoder(m).features(x)),
    project: at((m: string, x: Tensor) => model.encoder(m).forward(x)),
    dispose: () => model.dispose(),
  };
}
