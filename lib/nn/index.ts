/** The `nn` namespace; for now its stateless half, `nn.functional`. */
export * as functional from './functional.js';
export * as utils from './utils/clip_grad.js';
