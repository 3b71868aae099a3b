/**
 * Evaluation of representations and classifiers: weighted k-NN, cross-modal retrieval, classification reports,
 * embeddings of a dataset, `mmssl evaluate`, the k-NN probe.
 */
export * from './knn.js';
export * from './retrieval.js';
export { classificationReport, confusionMatrix, formatConfusionMatrix } from './metrics.js';
export { embed } from './embed.js';
export type { EmbedIndex, EmbedOptions } from './embed.js';
export { evaluateRun, formatEvaluation, nonEmptySubsets } from './evaluate.js';
export type { Evaluation, EvaluateOptions, RetrievalTable, SubsetAccuracy } from './evaluate.js';
export { knnProbe } from './probe.js';
export { trainingSubset } from './downstream.js';
