/** `mmssl/serve`: inference for services (a worker pool with dynamic batching) and the HTTP service. */
export { InputError, QueueFullError } from '../errors.js';
export { InferenceModel, loadClassifier, loadEncoder } from './model.js';
export type { Classification, Embedding, InferenceOptions, InferenceStats, ModalityInput } from './model.js';
export { createServer } from './server.js';
export type { ServeOptions, Server } from './server.js';
