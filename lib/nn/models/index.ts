/** `nn.models`: torchvision's backbones (AlexNet, ResNet18) and the heads trained on top of them. */
export { AlexNet, alexnet } from './alexnet.js';
export type { AlexNetOptions } from './alexnet.js';
export { BasicBlock, ResNet, resnet18 } from './resnet.js';
export type { ResNetOptions } from './resnet.js';
export { ClassifierHead, ProjectionHead } from './heads.js';
export type { ClassifierHeadOptions, ProjectionHeadOptions } from './heads.js';
export { BACKBONES, defaultBackbone, FusionClassifier, ModalityEncoder, MultiModalModel } from './multimodal.js';
export type {
  Backbone,
  BackboneName,
  FusionClassifierSpec,
  FusionOptions,
  MissingTokens,
  ModalityEncoderOptions,
  MultiModalSpec,
} from './multimodal.js';
