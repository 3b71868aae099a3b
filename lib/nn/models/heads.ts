/** The heads put on a backbone's features: a projection MLP for self-supervised losses, a linear classifier. */
import { checkBool, checkOptions, invalidArg } from '../../errors.js';
import { cat } from '../../torch/creation.js';
import { Tensor } from '../../torch/tensor.js';
import { Module } from '../module.js';
import { ReLU } from '../modules/activation.js';
import { BatchNorm1d } from '../modules/batchnorm.js';
import { type Layer, Sequential } from '../modules/container.js';
import { Dropout } from '../modules/dropout.js';
import { Linear } from '../modules/linear.js';
import { checkInput, checkPositiveInt } from '../modules/utils.js';

function checkWidths(op: string, name: string, widths: unknown, min: number): number[] {
  if (!Array.isArray(widths) || widths.length < min)
    throw invalidArg(op, name, `an array of at least ${min} widths`, widths);
  return widths.map((w, i) => checkPositiveInt(op, `${name}[${i}]`, w));
}

export interface ProjectionHeadOptions {
  /** A BatchNorm1d after each hidden Linear layer (SimCLR v2, BYOL). Default false. */
  batchNorm?: boolean;
}

/**
 * The MLP that maps features to the space of a contrastive loss: for widths [in, h1, ..., out], Linear layers with
 * (BatchNorm1d and) ReLU between them and none after the last. A Sequential, so its keys are `0.weight`, ....
 */
export class ProjectionHead extends Sequential {
  readonly widths: readonly number[];

  constructor(widths: readonly number[], options: ProjectionHeadOptions = {}) {
    const { batchNorm = false } = checkOptions('ProjectionHead', options);
    const sizes = checkWidths('ProjectionHead', 'widths', widths, 2);
    checkBool('ProjectionHead', 'batchNorm', batchNorm);
    const layers: Layer[] = [];
    for (let i = 1; i < sizes.length; i++) {
      layers.push(new Linear(sizes[i - 1], sizes[i]));
      if (i < sizes.length - 1) layers.push(...(batchNorm ? [new BatchNorm1d(sizes[i])] : []), new ReLU());
    }
    super(...layers);
    this.widths = sizes;
  }
}

export interface ClassifierHeadOptions {
  /** Dropout probability on the concatenated features; 0 (the default) leaves them as they are. */
  dropout?: number;
  /**
   * Standardise the concatenated features with a BatchNorm1d without affine parameters (`bn`) before the linear
   * layer, as MAE's linear probe does: features of different backbones (and a pre-trained backbone's, whose scale
   * the contrastive loss leaves free) then enter on one scale. Default false.
   */
  batchNorm?: boolean;
}

/**
 * A linear classifier on one feature vector or on several concatenated (one per modality, late fusion). Keys
 * `fc.weight` and `fc.bias` (and `bn.running_mean`, ... with `batchNorm`).
 */
export class ClassifierHead extends Module {
  /** The width of each feature tensor `forward` takes, in order. */
  readonly inFeatures: readonly number[];
  readonly bn: BatchNorm1d | null;
  readonly dropout: Dropout;
  readonly fc: Linear;

  constructor(inFeatures: number | readonly number[], numClasses: number, options: ClassifierHeadOptions = {}) {
    const { dropout = 0, batchNorm = false } = checkOptions('ClassifierHead', options);
    checkBool('ClassifierHead', 'batchNorm', batchNorm);
    const widths = checkWidths(
      'ClassifierHead',
      'inFeatures',
      typeof inFeatures === 'number' ? [inFeatures] : inFeatures,
      1,
    );
    checkPositiveInt('ClassifierHead', 'numClasses', numClasses);
    const drop = new Dropout(dropout);
    super();
    this.inFeatures = widths;
    const width = widths.reduce((a, b) => a + b, 0);
    this.bn = this.registerModule('bn', batchNorm ? new BatchNorm1d(width, { affine: false }) : null);
    this.dropout = this.registerModule('dropout', drop);
    this.fc = this.registerModule('fc', new Linear(width, numClasses));
  }

  /** Logits [N, numClasses] from one [N, inFeatures[i]] tensor per entry of `inFeatures`. */
  forward(...features: Tensor[]): Tensor {
    const widths = this.inFeatures;
    if (features.length !== widths.length)
      throw invalidArg('ClassifierHead', 'features', `${widths.length} tensor(s)`, features);
    const n = features[0] instanceof Tensor ? features[0].shape[0] : undefined;
    features.forEach((f, i) =>
      checkInput(
        'ClassifierHead',
        f,
        `a [${n ?? 'N'}, ${widths[i]}] tensor`,
        (s) => s.length === 2 && s[0] === n && s[1] === widths[i],
        `features[${i}]`,
      ),
    );
    const joined = features.length === 1 ? features[0] : cat(features, 1);
    return this.fc.forward(this.dropout.forward(this.bn ? this.bn.forward(joined) : joined));
  }
}
