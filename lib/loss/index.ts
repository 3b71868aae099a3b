/** The `loss` namespace: the multi-positive InfoNCE loss (its float64 TypeScript reference and the naive composition). */
export { infoNCEReference } from './reference.js';
export type { InfoNCEOptions, InfoNCEResult } from './reference.js';
export { infoNCENaive } from './naive.js';
export type { NaiveInfoNCEOptions } from './naive.js';
export { infoNCE } from './infonce.js';
export type { InfoNCELossOptions } from './infonce.js';
export { infoNCEAcrossRanks } from './distributed.js';
export type { GatherGroup, InfoNCEAcrossRanksOptions } from './distributed.js';
