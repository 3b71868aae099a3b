/** The `loss` namespace: the multi-positive InfoNCE loss (for now its float64 TypeScript reference). */
export { infoNCEReference } from './reference.js';
export type { InfoNCEOptions, InfoNCEResult } from './reference.js';
