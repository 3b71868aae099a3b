/**
 * Pre-training and fine-tuning configuration: defaults, a JSON or YAML file, command-line values on top; every key checked, an
 * unknown one named (a typo would otherwise be ignored). The resolved configuration is written with each run.
 */
import { readFile } from 'node:fs/promises';

import { parse as parseYaml } from 'yaml';

import { checkBool, checkInt, checkNumber, checkOneOf, FileError, invalidArg, isObject } from '../errors.js';
import { BACKBONES, type BackboneName } from '../nn/models/multimodal.js';
import { Adam, AdamW } from '../optim/adam.js';
import { LARS, larsParamGroups } from '../optim/lars.js';
import { LRScheduler, WarmupCosineLR } from '../optim/lr_scheduler.js';
import type { Optimizer } from '../optim/optimizer.js';
import { SGD } from '../optim/sgd.js';
import { checkDevice } from '../torch/device.js';
import type { MemoryFormat, Tensor } from '../torch/tensor.js';
import type { KnnConfig } from './knn_monitor.js';
import { BAD_SAMPLE_POLICIES, type BadSamplePolicy } from './skipped.js';

export const OPTIMIZERS = ['sgd', 'adam', 'adamw', 'lars'] as const;
/** Any of them, as the loop and the schedules see it. */
export type TrainOptimizer = Optimizer<{ lr: number }>;
export type OptimizerName = (typeof OPTIMIZERS)[number];

export interface OptimizerConfig {
  name: OptimizerName;
  lr: number;
  /** SGD and LARS (default 0.9). */
  momentum: number;
  weightDecay: number;
}

export interface ScheduleConfig {
  /** 'cosine': linear warm-up then cosine decay to 0 over the run (per step); 'constant'. */
  name: 'cosine' | 'constant';
  warmupEpochs: number;
}

/** What pre-training and fine-tuning share. */
export interface CommonConfig {
  /** A METER-ML folder, a folder holding manifest.geojson, or a manifest file. */
  data: string;
  modalities: string[];
  /** Flips and resized crops (pre-training: two views per modality; fine-tuning: one augmented view). */
  augment: boolean;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  /** Input [H, W] per modality (others: their native grid). */
  sizes: Record<string, [number, number]>;
  /** Backbone per modality (default ResNet18 for naip, AlexNet otherwise). */
  backbones: Record<string, BackboneName>;
  /** AlexNet's fc6/fc7 width: torchvision's 4096, or narrower for small runs. */
  alexnetHidden: number;
  seed: number;
  device: string;
  /** LibTorch's intra-op threads (default: LibTorch's choice). */
  threads: number | null;
  /** Data decoding threads. */
  workers: number;
  /** Samples the per-band statistics are computed from (seeded subset of the training split). */
  statsSamples: number;
  memoryFormat: MemoryFormat;
  /**
   * A sample that cannot be read (missing or corrupt file, NaN pixels): 'raise' stops the run with its error; 'skip'
   * leaves it out, reported at the end of each epoch and listed in the run folder's skipped.jsonl.
   */
  onBadSample: BadSamplePolicy;
}

export interface PretrainConfig extends CommonConfig {
  temperature: number;
  embeddingDim: number;
  hiddenDim: number;
  /** With several processes: BatchNorm statistics over every rank's batch (as one process would compute them). */
  syncBatchNorm: boolean;
  /** The model's and the loss's dtype: float64 for reproducibility checks (the data are cast to it). */
  dtype: 'float32' | 'float64';
  /** The online k-NN monitor (lib/train/knn_monitor.ts). */
  knn: KnnConfig;
}

export interface FinetuneConfig extends CommonConfig {
  /** A pre-training run folder whose backbones start the model, or null for random initialisation (the baseline). */
  init: string | null;
  /** Freeze the backbones: train the classifier only. */
  linearProbe: boolean;
  /** Share of the labelled training samples used, drawn per class with the seed (at least one per class). */
  labelFraction: number;
  /** Train and evaluate Negative samples as a seventh class (default: left out). */
  includeNegative: boolean;
  /**
   * Probability of dropping each modality of each training sample (never all of a sample's): its features are
   * replaced by the missing token, so the model learns to classify with modalities absent (cloudy Sentinel-2, no
   * NAIP). Default 0.
   */
  modalityDropout: number;
  /** The missing token when modalityDropout > 0: a learned vector per modality, or zeros. */
  missingToken: 'learned' | 'zero';
}

const COMMON_DEFAULTS: Omit<CommonConfig, 'data' | 'modalities'> = {
  augment: true,
  epochs: 120,
  batchSize: 64,
  optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 },
  schedule: { name: 'cosine', warmupEpochs: 0 },
  sizes: { naip: [128, 128] },
  backbones: {},
  alexnetHidden: 4096,
  seed: 0,
  device: 'cpu',
  threads: null,
  workers: 2,
  statsSamples: 2000,
  memoryFormat: 'channelsLast',   // oneDNN's convolutions are 1.1-1.3x faster on CPU in this layout
  onBadSample: 'raise',
};

export const PRETRAIN_DEFAULTS: Omit<PretrainConfig, 'data' | 'modalities'> = {
  ...COMMON_DEFAULTS,
  epochs: 120,   // the paper's
  optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 },   // SupCon_SSL (the authors' lab): SGD, lr 0.01
  temperature: 0.2,   // SupCon_SSL's
  embeddingDim: 128,
  hiddenDim: 512,
  syncBatchNorm: true,
  dtype: 'float32',
  knn: { every: 'auto', k: 20, temperature: 0.07, gallerySize: 1000 },   // k and temperature: solo-learn's and DINO's
};

export const FINETUNE_DEFAULTS: Omit<FinetuneConfig, 'data' | 'modalities'> = {
  ...COMMON_DEFAULTS,
  epochs: 100,   // the paper's
  optimizer: { name: 'adam', lr: 1e-4, momentum: 0.9, weightDecay: 0 },
  init: null,
  linearProbe: false,
  labelFraction: 1,
  includeNegative: false,
  modalityDropout: 0,
  missingToken: 'learned',
};

const positiveInt = (op: string, name: string, v: unknown) => {
  if (checkInt(op, name, v) < 1) throw invalidArg(op, name, 'a positive integer', v);
  return v as number;
};
const positive = (op: string, name: string, v: unknown) => {
  if (!(checkNumber(op, name, v) > 0) || !Number.isFinite(v)) throw invalidArg(op, name, 'a finite number > 0', v);
  return v as number;
};
const nonNegative = (op: string, name: string, v: unknown) => {
  if (!(checkNumber(op, name, v) >= 0) || !Number.isFinite(v)) throw invalidArg(op, name, 'a finite number >= 0', v);
  return v as number;
};

function checkKeys(op: string, where: string, value: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) checkOneOf(op, `${where}key`, key, allowed);
}

function checkSize(op: string, name: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw invalidArg(op, name, '[height, width]', v);
  return [positiveInt(op, `${name}[0]`, v[0]), positiveInt(op, `${name}[1]`, v[1])];
}

/** `defaults`, then `values` (from a file, then the command line), merged one level deep; unknown keys refused. */
function merge(op: string, defaults: object, values: Record<string, unknown>[]): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...defaults };
  for (const v of values) {
    if (!isObject(v)) throw invalidArg(op, 'config', 'an object', v);
    for (const [key, value] of Object.entries(v)) {
      if (value === undefined) continue;
      merged[key] = isObject(value) && isObject(merged[key]) ? { ...(merged[key] as object), ...value } : value;
    }
  }
  checkKeys(op, '', merged, ['data', 'modalities', ...Object.keys(defaults)]);
  return merged;
}

function checkCommon(op: string, c: CommonConfig): void {
  if (typeof c.data !== 'string' || c.data === '') throw invalidArg(op, 'data', 'a dataset path', c.data);
  if (!Array.isArray(c.modalities) || c.modalities.length === 0 || !c.modalities.every((m) => typeof m === 'string' && m !== '')) {
    throw invalidArg(op, 'modalities', 'a non-empty list of modality names', c.modalities);
  }
  checkBool(op, 'augment', c.augment);
  positiveInt(op, 'epochs', c.epochs);
  positiveInt(op, 'batchSize', c.batchSize);
  if (!isObject(c.optimizer)) throw invalidArg(op, 'optimizer', 'an object', c.optimizer);
  checkKeys(op, 'optimizer.', c.optimizer as unknown as Record<string, unknown>, ['name', 'lr', 'momentum', 'weightDecay']);
  checkOneOf(op, 'optimizer.name', c.optimizer.name, OPTIMIZERS);
  positive(op, 'optimizer.lr', c.optimizer.lr);
  nonNegative(op, 'optimizer.momentum', c.optimizer.momentum);
  nonNegative(op, 'optimizer.weightDecay', c.optimizer.weightDecay);
  if (!isObject(c.schedule)) throw invalidArg(op, 'schedule', 'an object', c.schedule);
  checkKeys(op, 'schedule.', c.schedule as unknown as Record<string, unknown>, ['name', 'warmupEpochs']);
  checkOneOf(op, 'schedule.name', c.schedule.name, ['cosine', 'constant']);
  if (checkInt(op, 'schedule.warmupEpochs', c.schedule.warmupEpochs) < 0 || c.schedule.warmupEpochs > c.epochs) {
    throw invalidArg(op, 'schedule.warmupEpochs', `an integer in [0, epochs = ${c.epochs}]`, c.schedule.warmupEpochs);
  }
  if (!isObject(c.sizes)) throw invalidArg(op, 'sizes', 'an object of [height, width] per modality', c.sizes);
  c.sizes = Object.fromEntries(Object.entries(c.sizes).map(([m, s]) => [m, checkSize(op, `sizes.${m}`, s)]));
  if (!isObject(c.backbones)) throw invalidArg(op, 'backbones', 'an object of backbone names per modality', c.backbones);
  for (const [m, b] of Object.entries(c.backbones)) checkOneOf(op, `backbones.${m}`, b, BACKBONES);
  positiveInt(op, 'alexnetHidden', c.alexnetHidden);
  checkInt(op, 'seed', c.seed);
  checkDevice(op, c.device);
  if (c.threads !== null) positiveInt(op, 'threads', c.threads);
  positiveInt(op, 'workers', c.workers);
  positiveInt(op, 'statsSamples', c.statsSamples);
  checkOneOf(op, 'memoryFormat', c.memoryFormat, ['contiguousFormat', 'channelsLast']);
  checkOneOf(op, 'onBadSample', c.onBadSample, BAD_SAMPLE_POLICIES);
}

function checkKnn(op: string, knn: KnnConfig): void {
  if (!isObject(knn)) throw invalidArg(op, 'knn', 'an object', knn);
  checkKeys(op, 'knn.', knn as unknown as Record<string, unknown>, ['every', 'k', 'temperature', 'gallerySize']);
  if (knn.every !== 'auto' && !(Number.isSafeInteger(knn.every) && knn.every >= 0)) throw invalidArg(op, 'knn.every', "'auto' or an integer >= 0 (0: off)", knn.every);
  positiveInt(op, 'knn.k', knn.k);
  positive(op, 'knn.temperature', knn.temperature);
  positiveInt(op, 'knn.gallerySize', knn.gallerySize);
}

/** The pre-training configuration: defaults, then `values` in order (a file, the command line), checked. */
export function resolvePretrainConfig(...values: Record<string, unknown>[]): PretrainConfig {
  const op = 'pretrain config';
  const c = merge(op, PRETRAIN_DEFAULTS, values) as unknown as PretrainConfig;
  checkCommon(op, c);
  positive(op, 'temperature', c.temperature);
  positiveInt(op, 'embeddingDim', c.embeddingDim);
  positiveInt(op, 'hiddenDim', c.hiddenDim);
  checkBool(op, 'syncBatchNorm', c.syncBatchNorm);
  checkOneOf(op, 'dtype', c.dtype, ['float32', 'float64']);
  checkKnn(op, c.knn);
  return structuredClone(c);
}

/** The fine-tuning configuration: defaults, then `values` in order, checked. */
export function resolveFinetuneConfig(...values: Record<string, unknown>[]): FinetuneConfig {
  const op = 'finetune config';
  const c = merge(op, FINETUNE_DEFAULTS, values) as unknown as FinetuneConfig;
  checkCommon(op, c);
  if (c.init !== null && (typeof c.init !== 'string' || c.init === '')) throw invalidArg(op, 'init', "a pre-training run folder, or null ('none') for random initialisation", c.init);
  checkBool(op, 'linearProbe', c.linearProbe);
  if (!(checkNumber(op, 'labelFraction', c.labelFraction) > 0) || c.labelFraction > 1) throw invalidArg(op, 'labelFraction', 'a number in (0, 1]', c.labelFraction);
  checkBool(op, 'includeNegative', c.includeNegative);
  if (!(checkNumber(op, 'modalityDropout', c.modalityDropout) >= 0) || c.modalityDropout >= 1) throw invalidArg(op, 'modalityDropout', 'a probability in [0, 1)', c.modalityDropout);
  if (c.modalityDropout > 0 && c.modalities.length < 2) throw invalidArg(op, 'modalityDropout', '0 with one modality (a sample keeps one modality at least)', c.modalityDropout);
  checkOneOf(op, 'missingToken', c.missingToken, ['learned', 'zero']);
  return structuredClone(c);
}

/** A configuration file: JSON, or YAML (.yaml, .yml). */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
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
  return value;
}

/** The configured optimizer over `parameters` (LARS adapts weights only, as SimCLR does). */
export function buildOptimizer(parameters: readonly Tensor[], { name, lr, momentum, weightDecay }: OptimizerConfig): TrainOptimizer {
  switch (name) {
    // (each optimizer's options hold lr; TypeScript cannot see that through `validate`'s parameter)
    case 'sgd': return new SGD(parameters, { lr, momentum, weightDecay }) as unknown as TrainOptimizer;
    case 'adam': return new Adam(parameters, { lr, weightDecay }) as unknown as TrainOptimizer;
    case 'adamw': return new AdamW(parameters, { lr, weightDecay }) as unknown as TrainOptimizer;
    case 'lars': return new LARS(larsParamGroups(parameters), { lr, momentum, weightDecay }) as unknown as TrainOptimizer;
  }
}

/** The configured schedule, stepped once per optimizer step. */
export function buildScheduler(optimizer: TrainOptimizer, { name, warmupEpochs }: ScheduleConfig, stepsPerEpoch: number, epochs: number): LRScheduler {
  const totalSteps = Math.max(1, stepsPerEpoch * epochs);
  if (name === 'constant') return new LRScheduler(optimizer, (baseLr) => baseLr);
  return new WarmupCosineLR(optimizer, { warmupSteps: Math.min(totalSteps, stepsPerEpoch * warmupEpochs), totalSteps });
}
