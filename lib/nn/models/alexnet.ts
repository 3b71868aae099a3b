/** torchvision 0.14's AlexNet, with the input channels and classes as options. */
import { checkOptions } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { Module } from '../module.js';
import { ReLU } from '../modules/activation.js';
import { Sequential, chain } from '../modules/container.js';
import { Conv2d } from '../modules/conv.js';
import { Dropout } from '../modules/dropout.js';
import { Linear } from '../modules/linear.js';
import { AdaptiveAvgPool2d, MaxPool2d } from '../modules/pooling.js';
import { checkPositiveInt } from '../modules/utils.js';

export interface AlexNetOptions {
  /** Image bands (3 for RGB; 2 or 4 for the Sentinel and NAIP tiles). Default 3. */
  inChannels?: number;
  /** Width of the last Linear layer. Default 1000. */
  numClasses?: number;
  /** Dropout probability before fc6 and fc7. Default 0.5. */
  dropout?: number;
  /**
   * Width of fc6 and fc7 (mmssl's option; torchvision's 4096, the default). Most of AlexNet's 61 M parameters sit
   * there, so a narrower width makes a much smaller model for small tiles and short runs.
   */
  hiddenFeatures?: number;
}

/**
 * AlexNet as torchvision builds it: state-dict keys (`features.0.weight`, `classifier.1.weight`, ...), default
 * initialisation and RNG order are torchvision's, so a seeded build has the same weights. Any input of at least
 * 63x63 works (the 6x6 average pool adapts), e.g. 72x72 Sentinel tiles.
 */
export class AlexNet extends Module {
  /** The convolution stack, under torchvision's state-dict key `features` (the name `features` is the method). */
  readonly featureLayers: Sequential;
  readonly avgpool: AdaptiveAvgPool2d;
  readonly classifier: Sequential;
  /** Width of `features(x)`: fc7's. */
  readonly featureDim: number;

  constructor(options: AlexNetOptions = {}) {
    const {
      inChannels = 3,
      numClasses = 1000,
      dropout = 0.5,
      hiddenFeatures = 4096,
    } = checkOptions('AlexNet', options);
    checkPositiveInt('AlexNet', 'inChannels', inChannels);
    checkPositiveInt('AlexNet', 'numClasses', numClasses);
    checkPositiveInt('AlexNet', 'hiddenFeatures', hiddenFeatures);
    // Made first so that a bad probability throws before any weight exists.
    const [dropout6, dropout7] = [new Dropout(dropout), new Dropout(dropout)];
    super();
    this.featureLayers = this.registerModule(
      'features',
      new Sequential(
        new Conv2d(inChannels, 64, 11, { stride: 4, padding: 2 }),
        new ReLU({ inplace: true }),
        new MaxPool2d(3, { stride: 2 }),
        new Conv2d(64, 192, 5, { padding: 2 }),
        new ReLU({ inplace: true }),
        new MaxPool2d(3, { stride: 2 }),
        new Conv2d(192, 384, 3, { padding: 1 }),
        new ReLU({ inplace: true }),
        new Conv2d(384, 256, 3, { padding: 1 }),
        new ReLU({ inplace: true }),
        new Conv2d(256, 256, 3, { padding: 1 }),
        new ReLU({ inplace: true }),
        new MaxPool2d(3, { stride: 2 }),
      ),
    );
    this.avgpool = this.registerModule('avgpool', new AdaptiveAvgPool2d(6));
    this.classifier = this.registerModule(
      'classifier',
      new Sequential(
        dropout6,
        new Linear(256 * 6 * 6, hiddenFeatures),
        new ReLU({ inplace: true }),
        dropout7,
        new Linear(hiddenFeatures, hiddenFeatures),
        new ReLU({ inplace: true }),
        new Linear(hiddenFeatures, numClasses),
      ),
    );
    this.featureDim = hiddenFeatures;
  }

  /** fc7's activations [N, 4096]: the convolutions, the 6x6 pool, then the classifier up to its last ReLU. */
  features(x: Tensor): Tensor {
    const pooled = chain(x, [this.featureLayers, this.avgpool]);
    const flat = pooled.flatten(1);
    pooled.dispose();
    const fc7 = chain(
      flat,
      Array.from({ length: this.classifier.length - 1 }, (_, i) => this.classifier.at(i)),
    );
    flat.dispose();
    return fc7;
  }

  /** Logits [N, numClasses]: the last Linear layer on `features(x)`. */
  forward(x: Tensor): Tensor {
    return this.classifier.at(-1).forward(this.features(x));
  }
}

/** torchvision's `alexnet()` factory, untrained. */
export function alexnet(options: AlexNetOptions = {}): AlexNet {
  return new AlexNet(options);
}
