/** The data pipeline: datasets (METER-ML, GeoTIFF manifests), augmentation, normalisation and the loader. */
export { CLASSES, NEGATIVE, multiHot } from './dataset.js';
export type {
  BadSamplePolicy,
  ClassName,
  Dataset,
  DatasetSpec,
  ModalityInfo,
  Raster,
  SampleRecord,
  SkippedSample,
  Split,
} from './dataset.js';
export { Random } from './random.js';
export { applyTransforms, sampleTransform } from './augment.js';
export type { AugmentationOptions, ViewTransform } from './augment.js';
export { decodeNpy, encodeNpy } from './formats/npy.js';
export type { NpyArray, NpyData, NpyDtype } from './formats/npy.js';
export { DataLoader } from './loader.js';
export type { Batch, DataLoaderOptions, ModalityOptions } from './loader.js';
export { bandStatsCachePath, computeBandStats, loadOrComputeBandStats, userCacheDir, writeBandStats } from './stats.js';
export type { BandStats, BandStatsOptions, NormalizationStats } from './stats.js';
export { openDataset, openPath } from './open.js';
export { METERML_MODALITIES, openMeterML } from './meterml.js';
export type { MeterMLModality, MeterMLOptions } from './meterml.js';
export { openManifest } from './manifest.js';
export type { ManifestModality, ManifestOptions } from './manifest.js';
export { decodeGeoTiff } from './formats/geotiff.js';
export type { GeoTiffRaster, GeoTransform } from './formats/geotiff.js';
export type { InvalidPolicy } from './pixels.js';
export { synthesize } from './synth/index.js';
export type { SynthFormat, SynthOptions, SynthReport } from './synth/index.js';
export { pack } from './packed/write.js';
export type { PackOptions, PackReport } from './packed/write.js';
export { openPacked, PackedDataset } from './packed/dataset.js';
export type { RecordBatch } from './packed/dataset.js';
export { PACK_DTYPES } from './packed/format.js';
export type { PackDtype, PackIndex, PackedModality, PackedRecord, ShardInfo } from './packed/format.js';
