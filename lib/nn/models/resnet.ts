/** torchvision 0.14's ResNet with basic blocks (ResNet18), with the input channels and classes as options. */
import { checkBool, checkOptions, invalidArg } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { kaimingNormal_, zeros_ } from '../init.js';
import { Module } from '../module.js';
import { ReLU } from '../modules/activation.js';
import { BatchNorm2d } from '../modules/batchnorm.js';
import { Sequential, chain } from '../modules/container.js';
import { Conv2d } from '../modules/conv.js';
import { Linear } from '../modules/linear.js';
import { AdaptiveAvgPool2d, MaxPool2d } from '../modules/pooling.js';
import { checkPositiveInt } from '../modules/utils.js';

export interface ResNetOptions {
  /** Image bands (3 for RGB; 2 or 4 for the Sentinel and NAIP tiles). Default 3. */
  inChannels?: number;
  /** Width of `fc`. Default 1000. */
  numClasses?: number;
  /** Start each block's last BatchNorm at weight 0, so every block begins as the identity. Default false. */
  zeroInitResidual?: boolean;
}

const conv3x3 = (inPlanes: number, outPlanes: number, stride = 1) =>
  new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false });
const conv1x1 = (inPlanes: number, outPlanes: number, stride = 1) =>
  new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false });

/** Two 3x3 convolutions with a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)). */
export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  /** Matches the shortcut to the output's stride and width; null when they already match. */
  readonly downsample: Sequential | null;

  constructor(inPlanes: number, planes: number, stride = 1, downsample: Sequential | null = null) {
    super();
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.relu = this.registerModule('relu', new ReLU({ inplace: true }));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.downsample = this.registerModule('downsample', downsample);
  }

  forward(x: Tensor): Tensor {
    const out = chain(x, [this.conv1, this.bn1, this.relu, this.conv2, this.bn2]);
    if (this.downsample === null) {
      out.add_(x);
    } else {
      using identity = this.downsample.forward(x);
      out.add_(identity);
    }
    return this.relu.forward(out);
  }
}

/**
 * ResNet as torchvision builds it from basic blocks: state-dict keys (`conv1.weight`, `layer2.0.downsample.0.weight`,
 * `fc.weight`, ...), layer defaults, then kaiming_normal_(fan_out, relu) on every convolution in module order, so a
 * seeded build has torchvision's weights. Any input size works: the final average pool adapts.
 */
export class ResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly maxpool: MaxPool2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly avgpool: AdaptiveAvgPool2d;
  readonly fc: Linear;
  /** Width of `features(x)`. */
  readonly featureDim = 512;

  /** `layers`: the number of blocks in each of the four stages ([2, 2, 2, 2] for ResNet18). */
  constructor(layers: readonly number[], options: ResNetOptions = {}) {
    const { inChannels = 3, numClasses = 1000, zeroInitResidual = false } = checkOptions('ResNet', options);
    if (!Array.isArray(layers) || layers.length !== 4)
      throw invalidArg('ResNet', 'layers', 'an array of 4 block counts', layers);
    layers.forEach((n, i) => checkPositiveInt('ResNet', `layers[${i}]`, n));
    checkPositiveInt('ResNet', 'inChannels', inChannels);
    checkPositiveInt('ResNet', 'numClasses', numClasses);
    checkBool('ResNet', 'zeroInitResidual', zeroInitResidual);
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(64));
    this.relu = this.registerModule('relu', new ReLU({ inplace: true }));
    this.maxpool = this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    let inPlanes = 64;
    // torchvision's _make_layer: the downsample is built before the blocks, which matters for the RNG order.
    const makeLayer = (planes: number, blocks: number, stride: number) => {
      const downsample =
        stride !== 1 || inPlanes !== planes
          ? new Sequential(conv1x1(inPlanes, planes, stride), new BatchNorm2d(planes))
          : null;
      const stage = [new BasicBlock(inPlanes, planes, stride, downsample)];
      inPlanes = planes;
      for (let i = 1; i < blocks; i++) stage.push(new BasicBlock(planes, planes));
      return new Sequential(...stage);
    };
    this.layer1 = this.registerModule('layer1', makeLayer(64, layers[0], 1));
    this.layer2 = this.registerModule('layer2', makeLayer(128, layers[1], 2));
    this.layer3 = this.registerModule('layer3', makeLayer(256, layers[2], 2));
    this.layer4 = this.registerModule('layer4', makeLayer(512, layers[3], 2));
    this.avgpool = this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.registerModule('fc', new Linear(512, numClasses));
    // BatchNorm2d's own init already gives the weight 1 and bias 0 that torchvision sets again here.
    for (const m of this.modules())
      if (m instanceof Conv2d) kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
    if (zeroInitResidual)
      for (const m of this.modules()) if (m instanceof BasicBlock && m.bn2.weight !== null) zeros_(m.bn2.weight);
  }

  /** The pooled activations of the last stage [N, 512]: the fine-tuning and fusion representation. */
  features(x: Tensor): Tensor {
    using pooled = chain(x, [
      this.conv1,
      this.bn1,
      this.relu,
      this.maxpool,
      this.layer1,
      this.layer2,
      this.layer3,
      this.layer4,
      this.avgpool,
    ]);
    return pooled.flatten(1);
  }

  /** Logits [N, numClasses]: `fc` on `features(x)`. */
  forward(x: Tensor): Tensor {
    return this.fc.forward(this.features(x));
  }
}

/** torchvision's `resnet18()` factory, untrained: stages of [2, 2, 2, 2] basic blocks. */
export function resnet18(options: ResNetOptions = {}): ResNet {
  return new ResNet([2, 2, 2, 2], options);
}
