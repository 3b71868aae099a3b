/**
 * Pre-training and fine-tuning configuration: one option table per command (`PRETRAIN_OPTIONS`,
 * `FINETUNE_OPTIONS`, sharing `COMMON_OPTIONS`), from which come the types, the defaults, the checks, the command-line
 * flags and docs/reference/config.md. Defaults, then a JSON or YAML file, then the command line; every key checked, an
 * unknown one named. The resolved configuration is written with each run.
 */
import { readFile } from 'node:fs/promises';

import { parse as parseYaml } from 'yaml';

import { FileError, invalidArg, isObject } from '../errors.js';
import { BACKBONES } from '../nn/models/multimodal.js';
import { BAD_SAMPLE_POLICIES } from '../data/dataset.js';
import { PACK_DTYPES } from '../data/packed/format.js';
import { type Device, devicePattern } from '../torch/device.js';
import { PRECISIONS } from '../torch/amp.js';
import { SYNC_DEBUG_MODES } from '../torch/sync.js';
import { backends, MATMUL_PRECISIONS, setFloat32MatmulPrecision, setNumThreads } from '../torch/runtime.js';
import {
  bool,
  type ConfigOf,
  ConfigSource,
  type ConfigValues,
  fraction,
  int,
  type Kind,
  names,
  nonNegative,
  nullable,
  oneOf,
  option,
  orAuto,
  perName,
  positive,
  probability,
  resolve,
  size,
  text,
} from './schema.js';

export { ConfigSource } from './schema.js';
export type { ConfigLayer, ConfigOf, ConfigValues, Kind, Option, Schema } from './schema.js';

export const OPTIMIZERS = ['sgd', 'adam', 'adamw', 'lars'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

const device = {
  ...text("'cpu', 'cuda' or 'cuda:N'", '<device>', 'cuda:1'),
  valid: (v) => typeof v === 'string' && devicePattern.test(v),
} as Kind<Device>; // what `valid` admits

const finiteList = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((n) => Number.isFinite(n));
/** A modality's declared statistics, `MEAN/STD` on the command line, each one number for every band or one per band. */
const bandStats = {
  expected: '{mean, std}: one number for every band or one per band, std > 0',
  placeholder: '<mean/std>',
  example: '0/10000',
  valid: (v) =>
    isObject(v) && finiteList(v.mean) && finiteList(v.std) && (v.std as number[]).every((n: number) => n > 0),
  parse: (t) => {
    const [mean, std = ''] = t.split('/');
    return { mean: mean.split(',').map(Number), std: std.split(',').map(Number) };
  },
} as Kind<{ mean: number[]; std: number[] }>;

const optimizerOptions = (name: OptimizerName, lr: number, weightDecay: number) => ({
  name: option(oneOf(OPTIMIZERS), name, 'the optimizer', 'optimizer'),
  lr: option(positive, lr, 'learning rate (peak, with a schedule)', 'lr'),
  momentum: option(nonNegative, 0.9, 'momentum (SGD and LARS)', false),
  weightDecay: option(nonNegative, weightDecay, 'weight decay', 'weight-decay'),
});

/** What pre-training and fine-tuning share. */
export const COMMON_OPTIONS = {
  data: option(
    text('a dataset path', '<dir>', 'data/meter-ml'),
    undefined,
    'the dataset: a METER-ML folder, a folder holding manifest.geojson, a manifest file, or a pack (mmssl pack)',
  ),
  modalities: option(names, undefined, 'the modalities, comma-separated on the command line (e.g. s1,s2,naip)'),
  augment: option(
    bool,
    true,
    'flips and resized crops (pre-training: two views per modality; fine-tuning: one augmented view)',
  ),
  batchSize: option(int(1), 64, 'samples (locations) per batch'),
  shuffleShards: option(
    nullable(int(1), 'a full permutation of the samples'),
    null,
    'a pack larger than memory: its shards in a random order each epoch, the samples shuffled within each run of this many shards, so reads stay within them',
  ),
  schedule: {
    name: option(
      oneOf(['cosine', 'constant']),
      'cosine',
      "'cosine': linear warm-up then cosine decay to 0 over the run (per step)",
      'schedule',
    ),
    warmupEpochs: option(int(0), 0, 'epochs of linear warm-up (at most epochs)', 'warmup-epochs'),
  },
  sizes: option(
    perName(size, '<modality=HxW>', 'naip=64x64'),
    { naip: [128, 128] },
    'input [height, width] per modality (others: their native grid); repeatable on the command line',
    'size',
  ),
  backbones: option(
    perName(oneOf(BACKBONES), '<modality=alexnet|resnet18>', 'naip=resnet18'),
    {},
    'backbone per modality (ResNet18 for naip, AlexNet otherwise); repeatable on the command line',
    'backbone',
  ),
  alexnetHidden: option(int(1), 4096, "AlexNet's fc6/fc7 width: torchvision's 4096, or narrower for small runs"),
  backboneInit: option(
    perName(text('a weights file', '<file>', 'ssl4eo-s2-resnet18.pth'), '<modality=file>', 'naip=resnet18.pth'),
    {},
    "start a modality's backbone from weights trained elsewhere (a PyTorch or safetensors file; key prefixes such as module. or backbone. are found); repeatable",
    'backbone-init',
  ),
  normalization: option(
    perName(bandStats, '<modality=mean/std>', 's2=0/10000'),
    {},
    "standardise a modality with these statistics instead of computed ones, as weights trained elsewhere expect (SSL4EO's Sentinel-2: 0/10000); repeatable",
    'normalization',
  ),
  backboneInitBands: option(
    perName(names, '<modality=bands>', 's2=B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12'),
    {},
    "the bands of those weights' first convolution, in order, so it is mapped to the modality's by name (without: timm's adapt_input_conv); repeatable",
    'backbone-init-bands',
  ),
  seed: option(int(0), 0, 'seeds the initialisation, the data order and the augmentations'),
  device: option(device, 'cpu', 'cpu, cuda or cuda:N'),
  threads: option(nullable(int(1), "LibTorch's choice"), null, "LibTorch's intra-op threads"),
  workers: option(int(1), 2, 'data decoding threads'),
  statsSamples: option(
    int(1),
    2000,
    'samples the per-band statistics are computed from (a seeded subset of the training split)',
    false,
  ),
  // oneDNN's convolutions are 1.1-1.3x faster on CPU in this layout
  memoryFormat: option(
    oneOf(['contiguousFormat', 'channelsLast']),
    'channelsLast',
    "the activations' memory layout",
    false,
  ),
  precision: option(
    oneOf(PRECISIONS),
    '32',
    "Lightning's names: 'bf16-mixed' runs convolutions and matrix products in bfloat16 (autocast) with the loss, BatchNorm and the optimizer in float32; '16-mixed' does so in float16 with a gradient scaler (CUDA, or CPU from LibTorch 2.3)",
  ),
  cudnnBenchmark: option(
    bool,
    false,
    "cuDNN times its algorithms for each new input shape and keeps the fastest (PyTorch's torch.backends.cudnn.benchmark)",
  ),
  matmulPrecision: option(
    oneOf(MATMUL_PRECISIONS),
    'highest',
    "float32 matrix products: 'high' lets GPUs that have TF32 use it, 'medium' bfloat16 (torch.set_float32_matmul_precision)",
  ),
  syncDebug: option(
    oneOf(SYNC_DEBUG_MODES),
    'default',
    "a read of tensor data to the host inside a training step: 'warn' or 'error' (PyTorch's sync debug mode; each read waits for the device)",
    'sync-debug',
  ),
  onBadSample: option(
    oneOf(BAD_SAMPLE_POLICIES),
    'raise',
    "a sample that cannot be read: 'raise' stops with its error; 'skip' leaves it out, reported each epoch and listed in skipped.jsonl",
  ),
};

export const PRETRAIN_OPTIONS = {
  ...COMMON_OPTIONS,
  epochs: option(int(1), 120, "epochs (the default: the paper's)"),
  // SupCon_SSL (the authors' lab): SGD, lr 0.01
  optimizer: optimizerOptions('sgd', 0.01, 1e-4),
  temperature: option(positive, 0.2, "InfoNCE temperature (SupCon_SSL's)"),
  logEvery: option(
    int(1),
    10,
    'steps per metrics line (the loss averaged over them; the monitors of the last): the only reads from the device between epochs',
    'log-every',
  ),
  accumulate: option(
    int(1),
    1,
    "chunks each rank's batch is embedded in (GradCache): the loss still sees the whole batch's negatives, activations take one chunk's memory, at the cost of a second forward pass; BatchNorm computes its statistics per chunk",
  ),
  embeddingDim: option(int(1), 128, 'width of the shared embedding space'),
  hiddenDim: option(int(1), 512, "the projection heads' hidden width", false),
  syncBatchNorm: option(
    bool,
    true,
    "BatchNorm statistics over every rank's batch with several processes (as one process would compute them)",
  ),
  dtype: option(
    oneOf(['float32', 'float64']),
    'float32',
    "the model's and the loss's dtype: float64 for reproducibility checks",
    false,
  ),
  /** The online k-NN monitor (lib/train/knn_monitor.ts); k and temperature: solo-learn's and DINO's. */
  knn: {
    every: option(
      orAuto(int(0), 'within 10% of training time'),
      'auto',
      "epochs between the k-NN monitor's evaluations; 0 turns it off",
      'knn-every',
    ),
    k: option(int(1), 20, 'neighbours', false),
    temperature: option(positive, 0.07, "the neighbours' weights: exp(similarity / temperature)", false),
    gallerySize: option(int(1), 1000, 'labelled training samples in the gallery at most (a seeded subset)', false),
  },
};

const initRun = {
  ...nullable(text('a pre-training run folder', '<run>', 'runs/pretrain'), 'random initialisation'),
  parse: (t: string) => (t === 'none' ? null : t),
};

/** `mmssl pack`'s options: the dataset options it shares with training, and the pack's own. */
export const PACK_OPTIONS = {
  data: COMMON_OPTIONS.data,
  modalities: option(
    nullable(names, "the method's (s1, s2, naip) where the dataset has them, else all of the dataset's"),
    null,
    'the modalities packed, comma-separated',
  ),
  sizes: COMMON_OPTIONS.sizes,
  dtypes: option(
    perName(oneOf(['auto', ...PACK_DTYPES]), '<modality=dtype>', 'naip=uint8'),
    {},
    'stored dtype per modality: uint8, int16 (values rounded), float16, float32 (exact), or auto (uint8 or int16 for integer sources, float16 otherwise); repeatable',
    'dtype',
  ),
  margin: option(
    nonNegative,
    0,
    "a margin for the resized crop, a fraction of each side (at most 1): modalities stored at (1 + margin) x their size, crops taken from the stored pixels (0.06 keeps the method's 90%-area crops at full resolution)",
  ),
  recordsPerShard: option(nullable(int(1), 'as many as fill 256 MiB'), null, 'records (locations) per shard file'),
  workers: COMMON_OPTIONS.workers,
  onBadSample: COMMON_OPTIONS.onBadSample,
};
export type PackConfig = ConfigOf<typeof PACK_OPTIONS>;

export function resolvePackConfig(...layers: ConfigValues[]): PackConfig {
  const c = resolve('pack config', PACK_OPTIONS, layers);
  if (c.data === undefined) throw invalidArg('pack config', 'data', 'a dataset path', c.data);
  return c;
}

export const FINETUNE_OPTIONS = {
  ...COMMON_OPTIONS,
  epochs: option(int(1), 100, "epochs (the default: the paper's)"),
  optimizer: optimizerOptions('adam', 1e-4, 0),
  init: option(
    initRun,
    null,
    "a pre-training run folder whose backbones start the model, or 'none' (null) for random initialisation (the baseline)",
  ),
  linearProbe: option(bool, false, 'freeze the backbones: train the classifier only'),
  labelFraction: option(
    fraction,
    1,
    'share of the labelled training samples used, drawn per class with the seed (one per class at least)',
  ),
  includeNegative: option(bool, false, 'train and evaluate Negative samples as a seventh class'),
  modalityDropout: option(
    probability,
    0,
    'probability of dropping each modality of a training sample (never all): its features replaced by the missing token, so the model learns to classify with modalities absent',
  ),
  missingToken: option(
    oneOf(['learned', 'zero']),
    'learned',
    "what replaces a dropped modality's features: a learned vector per modality, or zeros",
  ),
};

export type CommonConfig = ConfigOf<typeof COMMON_OPTIONS>;

/** The process-wide LibTorch settings a run's configuration holds: threads, cuDNN's benchmark mode, matmul precision. */
export function applyRuntimeOptions(
  config: Pick<CommonConfig, 'threads' | 'cudnnBenchmark' | 'matmulPrecision'>,
): void {
  if (config.threads !== null) setNumThreads(config.threads);
  backends.cudnn.benchmark = config.cudnnBenchmark;
  setFloat32MatmulPrecision(config.matmulPrecision);
}
export type PretrainConfig = ConfigOf<typeof PRETRAIN_OPTIONS>;
export type FinetuneConfig = ConfigOf<typeof FINETUNE_OPTIONS>;
export type OptimizerConfig = PretrainConfig['optimizer'];
export type ScheduleConfig = PretrainConfig['schedule'];
export type KnnConfig = PretrainConfig['knn'];

/** What no single option can check: warm-up within the run. */
function checkCommon(op: string, c: PretrainConfig | FinetuneConfig): void {
  if (c.schedule.warmupEpochs > c.epochs)
    throw invalidArg(op, 'schedule.warmupEpochs', `an integer in [0, epochs = ${c.epochs}]`, c.schedule.warmupEpochs);
}

/** The pre-training configuration: the defaults, then `layers` in order (a file, the command line), checked. */
export function resolvePretrainConfig(...layers: ConfigValues[]): PretrainConfig {
  const c = resolve('pretrain config', PRETRAIN_OPTIONS, layers);
  checkCommon('pretrain config', c);
  if (c.dtype === 'float64' && c.precision !== '32')
    throw invalidArg(
      'pretrain config',
      'precision',
      "'32' with dtype float64 (autocast lowers float32 only)",
      c.precision,
    );
  return c;
}

/** The fine-tuning configuration: the defaults, then `layers` in order, checked. */
export function resolveFinetuneConfig(...layers: ConfigValues[]): FinetuneConfig {
  const op = 'finetune config';
  const c = resolve(op, FINETUNE_OPTIONS, layers);
  checkCommon(op, c);
  if (c.modalityDropout > 0 && c.modalities.length < 2)
    throw invalidArg(
      op,
      'modalityDropout',
      '0 with one modality (a sample keeps one modality at least)',
      c.modalityDropout,
    );
  return c;
}

/** A configuration file (JSON, or YAML: .yaml, .yml) as a layer whose messages name the file. */
export async function readConfigFile(path: string): Promise<ConfigSource> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new FileError(path, `cannot be read: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new FileError(path, `not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (!isObject(value)) throw new FileError(path, 'must hold an object of options');
  return new ConfigSource(path, value);
}
