/** The optimizer and learning-rate schedule a training configuration names. */
import type { OptimizerConfig, ScheduleConfig } from '../config/index.js';
import { Adam, AdamW } from '../optim/adam.js';
import { LARS, larsParamGroups } from '../optim/lars.js';
import { LRScheduler, WarmupCosineLR } from '../optim/lr_scheduler.js';
import type { Optimizer } from '../optim/optimizer.js';
import { SGD } from '../optim/sgd.js';
import type { GradScaler } from '../torch/amp.js';
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

/**
 * The backward pass and the optimizer's step, through `scaler` when there is one (PyTorch's AMP recipe: scale the
 * loss, unscale the gradients before anything reads them, step unless they are not finite, update the scale).
 * `afterBackward` runs between the two (the gradient all-reduce, a chunked backward). The scaler's step reads one flag
 * from the device, so it is left to the returned function, for the caller to run after its sync-free region.
 */
export function backwardAndStep(
  loss: Tensor,
  optimizer: TrainOptimizer,
  scaler: GradScaler | undefined,
  afterBackward: () => void = () => undefined,
): () => void {
  (scaler ? scaler.scale(loss) : loss).backward();
  afterBackward();
  if (!scaler) {
    optimizer.step();
    return () => undefined;
  }
  scaler.unscale_(optimizer);
  return () => {
    scaler.step(optimizer);
    scaler.update();
  };
}
