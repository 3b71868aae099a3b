/**
 * The k-NN probe (`mmssl table1 --protocol knn`): no training; the backbones' fused features, frozen as initialised,
 * of the labelled training subset vote (weighted k-NN, lib/eval/knn.ts) for each validation and test sample.
 * Representation quality without the confound of fine-tuning.
 */
import type { FinetuneConfig } from '../config/index.js';
import { collectRows, DataLoader, firstViews } from '../data/loader.js';
import { invalidArg } from '../errors.js';
import { classOf } from '../runs/models.js';
import type { FinetuneResult } from '../runs/records.js';
import { SkipLog } from '../runs/skipped.js';
import { cat } from '../torch/creation.js';
import { prepareDownstream } from './downstream.js';
import { knnPredict } from './knn.js';
import { classificationReport, confusionMatrix } from './metrics.js';

export async function knnProbe(
  config: FinetuneConfig,
  options: { k?: number; temperature?: number; skipLog?: SkipLog } = {},
): Promise<FinetuneResult> {
  const { skipLog: skips = new SkipLog(undefined), ...knn } = options;
  const prepared = await prepareDownstream(config);
  skips.add('stats', prepared.statsSkipped);
  const { dataset, classNames, subset, loaderOptions } = prepared;
  using model = prepared.model.eval();
  await using val = prepared.val;
  await using test = prepared.test;
  await using train = new DataLoader(dataset, { ...loaderOptions, filter: (_, i) => subset.has(i), shuffle: false });
  const embed = async (loader: DataLoader, split: 'train' | 'val' | 'test') => {
    const rows = await collectRows(loader, (b) => {
      const inputs = firstViews(b, config.modalities, config.memoryFormat);
      return [
        cat(
          [...model.backbones].map(([m, backbone]) => backbone.features(inputs[m])),
          1,
        ),
      ];
    });
    skips.add(split, loader.skipped);
    if (rows.columns.length === 0)
      throw invalidArg('knnProbe', 'data', `labelled samples in the ${split} split`, config.data);
    return {
      ...rows,
      targets: rows.labels.map((label, i) => classOf({ label, negative: rows.negative[i] }, config.includeNegative)),
    };
  };
  using gallery = await embed(train, 'train');
  const report = async (loader: DataLoader, split: 'val' | 'test') => {
    using queries = await embed(loader, split);
    const predictions = knnPredict(gallery.columns[0], gallery.targets, queries.columns[0], {
      numClasses: classNames.length,
      ...knn,
    });
    return classificationReport(confusionMatrix(queries.targets, predictions, classNames.length), classNames);
  };
  return {
    classNames,
    val: await report(val, 'val'),
    test: await report(test, 'test'),
    trainSamples: subset.size,
    epochs: 0,
    skipped: skips.count,
  };
}
