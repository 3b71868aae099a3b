/** The data pipeline: datasets (METER-ML, GeoTIFF manifests), augmentation, normalisation and the loader. */
export { CLASSES, NEGATIVE, multiHot } from './dataset.js';
export type { ClassName, Dataset, DatasetSpec, ModalityInfo, Raster, SampleRecord, Split } from './dataset.js';
export { Random } from './random.js';
export { applyTransforms, sampleTransform } from './augment.js';
export type { AugmentationOptions, ViewTransform } from './augment.js';
export { decodeNpy, encodeNpy } from './formats/npy.js';
export type { NpyArray, NpyData, NpyDtype } from './formats/npy.js';
export { DataLoader } from './loader.js';
export type { Batch, DataLoaderOptions, ModalityOptions, SkippedSample } from './loader.js';
export { bandStatsCachePath, computeBandStats, loadOrComputeBandStats } from './stats.js';
export type { BandStats, BandStatsOptions, NormalizationStats } from './stats.js';
export { openDataset } from './open.js';
export { METERML_MODALITIES, openMeterML } from './meterml.js';
export type { MeterMLModality, MeterMLOptions } from './meterml.js';
