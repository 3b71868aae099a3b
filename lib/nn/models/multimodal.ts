/**
 * The method's model: one backbone per sensor modality (AlexNet for Sentinel-1 and Sentinel-2, ResNet18 for NAIP by
 * default), each with its own projection head into one shared embedding space for the contrastive loss. Fine-tuning
 * keeps the backbones and concatenates their features (lib/train/finetune.ts).
 *
 * State-dict keys: `<modality>.backbone.<torchvision keys>` and `<modality>.head.<i>.weight`.
 */
import { checkOneOf, checkOptions, invalidArg, isObject } from '../../errors.js';
import { where, zeros } from '../../torch/creation.js';
import type { Tensor } from '../../torch/tensor.js';
import { Module } from '../module.js';
import { checkPositiveInt } from '../modules/utils.js';
import { AlexNet } from './alexnet.js';
import { ClassifierHead, ProjectionHead } from './heads.js';
import { ResNet, resnet18 } from './resnet.js';

export type BackboneName = 'alexnet' | 'resnet18';
export const BACKBONES: readonly BackboneName[] = ['alexnet', 'resnet18'];

/** The smallest input side each backbone takes: AlexNet's three stride-2 max pools need 63 pixels. */
export const MIN_INPUT_SIZE: Readonly<Record<BackboneName, number>> = { alexnet: 63, resnet18: 1 };

/** The paper's choice: ResNet18 for the 1 m NAIP tiles, AlexNet for the 10 m Sentinel tiles (and anything else). */
export function defaultBackbone(modality: string): BackboneName {
  return modality === 'naip' ? 'resnet18' : 'alexnet';
}

export interface ModalityEncoderOptions {
  backbone?: BackboneName;
  /** Width of the shared embedding space. Default 128. */
  embeddingDim?: number;
  /** Width of the projection head's hidden layer. Default 512. */
  hiddenDim?: number;
  /** AlexNet's fc6/fc7 width (default torchvision's 4096). */
  alexnetHidden?: number;
}

/** A modality's backbone module. */
export type Backbone = AlexNet | ResNet;

/** A modality's backbone and projection head. */
export class ModalityEncoder extends Module {
  readonly backbone: Backbone;
  readonly head: ProjectionHead;
  readonly backboneName: BackboneName;

  constructor(
    readonly inChannels: number,
    options: ModalityEncoderOptions = {},
  ) {
    const {
      backbone = 'alexnet',
      embeddingDim = 128,
      hiddenDim = 512,
      alexnetHidden = 4096,
    } = checkOptions('ModalityEncoder', options);
    checkPositiveInt('ModalityEncoder', 'inChannels', inChannels);
    checkOneOf('ModalityEncoder', 'backbone', backbone, BACKBONES);
    checkPositiveInt('ModalityEncoder', 'embeddingDim', embeddingDim);
    checkPositiveInt('ModalityEncoder', 'hiddenDim', hiddenDim);
    super();
    this.backboneName = backbone;
    // One output unit: the classifier's last layer is never used (features stop at fc7), so keep it small.
    this.backbone = this.registerModule(
      'backbone',
      backbone === 'alexnet'
        ? new AlexNet({ inChannels, numClasses: 1, hiddenFeatures: alexnetHidden })
        : resnet18({ inChannels, numClasses: 1 }),
    );
    // BatchNorm in the head (SimCLR v2's): without it, an untrained backbone maps every tile to nearly the same
    // direction and the cheapest way down the loss is to collapse all modalities onto it (seen on synthetic data).
    this.head = this.registerModule(
      'head',
      new ProjectionHead([this.backbone.featureDim, hiddenDim, embeddingDim], { batchNorm: true }),
    );
  }

  /** The backbone's features [N, featureDim]: what fine-tuning concatenates. */
  features(x: Tensor): Tensor {
    return this.backbone.features(x);
  }

  /** Embeddings [N, embeddingDim] (not normalised; the loss normalises). */
  forward(x: Tensor): Tensor {
    using features = this.backbone.features(x);
    return this.head.forward(features);
  }
}

export interface MultiModalSpec {
  /** Input channels per modality, in the order embeddings are concatenated. */
  modalities: Record<string, number>;
  /** Backbone per modality; default `defaultBackbone(name)`. */
  backbones?: Record<string, BackboneName>;
  embeddingDim?: number;
  hiddenDim?: number;
  alexnetHidden?: number;
}

/** One ModalityEncoder per modality, registered under the modality's name. */
export class MultiModalModel extends Module {
  readonly encoders: ReadonlyMap<string, ModalityEncoder>;

  constructor(readonly spec: MultiModalSpec) {
    const {
      modalities,
      backbones = {},
      embeddingDim,
      hiddenDim,
      alexnetHidden,
    } = checkOptions('MultiModalModel', spec);
    if (!isObject(modalities) || Object.keys(modalities).length === 0)
      throw invalidArg('MultiModalModel', 'modalities', 'an object of input channels per modality', modalities);
    for (const name of Object.keys(backbones)) {
      if (!(name in modalities))
        throw invalidArg('MultiModalModel', 'backbones', `names among ${Object.keys(modalities).join(', ')}`, name);
    }
    super();
    this.encoders = new Map(
      Object.entries(modalities).map(([name, channels]) => [
        name,
        this.registerModule(
          name,
          new ModalityEncoder(channels, {
            backbone: backbones[name] ?? defaultBackbone(name),
            embeddingDim,
            hiddenDim,
            alexnetHidden,
          }),
        ),
      ]),
    );
  }

  /** The encoder of `modality`; an ArgumentError naming the modalities there are otherwise. */
  encoder(modality: string): ModalityEncoder {
    const encoder = this.encoders.get(modality);
    if (!encoder)
      throw invalidArg('MultiModalModel', 'modality', `one of ${[...this.encoders.keys()].join(', ')}`, modality);
    return encoder;
  }

  /** Embeddings [N, embeddingDim] of `x`, a batch of `modality`. */
  forward(modality: string, x: Tensor): Tensor {
    return this.encoder(modality).forward(x);
  }
}

export interface FusionClassifierSpec {
  /** Input channels per modality, in the order features are concatenated. */
  modalities: Record<string, number>;
  numClasses: number;
  backbones?: Record<string, BackboneName>;
  alexnetHidden?: number;
  /**
   * What stands in for a missing modality's features: zeros (default), or a learned vector per modality
   * (`missing.<modality>`, trained by fine-tuning with modality dropout).
   */
  missingToken?: 'zero' | 'learned';
}

export interface FusionOptions {
  /** Modalities missing from the whole batch: their features are the missing token. */
  absent?: readonly string[];
  /** Per sample and modality (bool [N, modalities], the spec's order), true where the features are replaced by the token. */
  dropped?: Tensor | null;
}

/**
 * Fine-tuning's model: the chosen modalities' backbones, their features concatenated into one vector, a linear
 * classifier (late fusion). Keys `<modality>.<torchvision keys>`, `classifier.fc.weight` and, with learned missing
 * tokens, `missing.<modality>`.
 */
export class FusionClassifier extends Module {
  readonly backbones: ReadonlyMap<string, Backbone>;
  readonly classifier: ClassifierHead;
  /** The learned missing tokens, one [featureDim] vector per modality, or null for zeros. */
  readonly missing: MissingTokens | null;

  constructor(readonly spec: FusionClassifierSpec) {
    const {
      modalities,
      numClasses,
      backbones = {},
      alexnetHidden = 4096,
      missingToken = 'zero',
    } = checkOptions('FusionClassifier', spec);
    if (!isObject(modalities) || Object.keys(modalities).length === 0)
      throw invalidArg('FusionClassifier', 'modalities', 'an object of input channels per modality', modalities);
    checkOneOf('FusionClassifier', 'missingToken', missingToken, ['zero', 'learned']);
    super();
    this.backbones = new Map(
      Object.entries(modalities).map(([name, inChannels]) => {
        const kind = backbones[name] ?? defaultBackbone(name);
        checkOneOf('FusionClassifier', `backbones.${name}`, kind, BACKBONES);
        return [
          name,
          this.registerModule(
            name,
            kind === 'alexnet'
              ? new AlexNet({ inChannels, numClasses: 1, hiddenFeatures: alexnetHidden })
              : resnet18({ inChannels, numClasses: 1 }),
          ),
        ];
      }),
    );
    // Standardised features: the backbones' scales differ, and pre-training leaves them free (BN in its heads).
    this.classifier = this.registerModule(
      'classifier',
      new ClassifierHead(
        [...this.backbones.values()].map((b) => b.featureDim),
        numClasses,
        { batchNorm: true },
      ),
    );
    this.missing = this.registerModule(
      'missing',
      missingToken === 'learned' ? new MissingTokens(this.backbones) : null,
    );
  }

  /** Logits [N, numClasses] from one batch per modality present (see FusionOptions for missing ones). */
  forward(inputs: Record<string, Tensor>, options: FusionOptions = {}): Tensor {
    const absent = new Set(options.absent ?? []);
    const features = Object.fromEntries(
      [...this.backbones]
        .filter(([name]) => !absent.has(name))
        .map(([name, backbone]) => {
          if (!(name in inputs))
            throw invalidArg(
              'FusionClassifier',
              'inputs',
              `a batch for each of ${[...this.backbones.keys()].filter((m) => !absent.has(m)).join(', ')} (or options.absent naming what is missing)`,
              Object.keys(inputs),
            );
          return [name, backbone.features(inputs[name])];
        }),
    );
    return this.fuse(features, options.dropped);
  }

  /**
   * Logits from the modalities' features (what `forward` computes), a missing modality's replaced by its token: so
   * one set of features serves every subset of modalities.
   */
  fuse(features: Record<string, Tensor>, dropped?: Tensor | null): Tensor {
    const present = Object.values(features);
    if (present.length === 0) throw invalidArg('FusionClassifier', 'inputs', 'at least one modality', 'none');
    const [n] = present[0].shape;
    return this.classifier.forward(
      ...[...this.backbones].map(([name, backbone], j) => {
        const token = () =>
          this.missing
            ? this.missing.forward(name).unsqueeze(0).expand([n, backbone.featureDim])
            : zeros([n, backbone.featureDim], { dtype: present[0].dtype, device: present[0].device });
        const f = features[name];
        if (!f) return token();
        return dropped ? where(dropped.narrow(1, j, 1), token(), f) : f;
      }),
    );
  }
}

/** A learned [featureDim] vector per modality, initialised to zero (the 'zero' token it starts as). */
/** The learned tokens that stand in for an absent modality's features. */
export class MissingTokens extends Module {
  readonly #tokens = new Map<string, Tensor>();

  constructor(backbones: ReadonlyMap<string, Backbone>) {
    super();
    for (const [name, backbone] of backbones)
      this.#tokens.set(name, this.registerParameter(name, zeros([backbone.featureDim]).requiresGrad_()));
  }

  /** The token of `modality`, [featureDim]. */
  forward(modality: string): Tensor {
    return this.#tokens.get(modality)!;
  }
}
