/**
 * Evaluation of representations: weighted k-NN classification and cross-modal retrieval on embeddings.
 */
export * from './knn.js';
export * from './retrieval.js';
