/** The optimizer and learning-rate schedule a training configuration names. */
import type { OptimizerConfig, ScheduleConfig } from '../config/index.js';
import { Adam, AdamW } from '../optim/adam.js';
import { LARS, larsParamGroups } from '../optim/lars.js';
import { LRScheduler, WarmupCosineLR } from '../optim/lr_scheduler.js';
import type { Optimizer } from '../optim/optimizer.js';
import { SGD } from '../optim/sgd.js';
import type { Tensor } from '../torch/tensor.js';

/** What the loops, schedules and checkpoints use of whichever optimizer a configuration names. */
export type TrainOptimizer = Pick<
  Optimizer<{ lr: number }>,
  'paramGroups' | 'step' | 'zeroGrad' | 'stateDict' | 'loadStateDict' | 'dispose' | typeof Symbol.dispose
>;

/** The configured optimizer over `parameters` (LARS adapts weights only, as SimCLR does). */
export function buildOptimizer(
  parameters: readonly Tensor[],
  { name, lr, momentum, weightDecay }: OptimizerConfig,
): TrainOptimizer {
  switch (name) {
    case 'sgd':
      return new SGD(parameters, { lr, momentum, weightDecay });
    case 'adam':
      return new Adam(parameters, { lr, weightDecay });
    case 'adamw':
      return new AdamW(parameters, { lr, weightDecay });
    case 'lars':
      return new LARS(larsParamGroups(parameters), { lr, momentum, weightDecay });
  }
}

/** The configured schedule, stepped once per optimizer step. */
export function buildScheduler(
  optimizer: TrainOptimizer,
  { name, warmupEpochs }: ScheduleConfig,
  stepsPerEpoch: number,
  epochs: number,
): LRScheduler {
  const totalSteps = Math.max(1, stepsPerEpoch * epochs);
  if (name === 'constant') return new LRScheduler(optimizer, (baseLr) => baseLr);
  return new WarmupCosineLR(optimizer, { warmupSteps: Math.min(totalSteps, stepsPerEpoch * warmupEpochs), totalSteps });
}
