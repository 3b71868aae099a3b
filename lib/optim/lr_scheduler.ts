/**
 * Learning-rate schedules, stepped once per iteration (or per epoch: they count calls to `step()`, whatever the unit).
 * As in PyTorch, constructing one sets each group's lr to its value at step 0, and `step()` advances by one. Each lr
 * is computed in closed form from the group's base lr and the step count, so a schedule resumed from `stateDict()`
 * continues exactly where it stopped.
 */
import { StateDictError, checkInt, checkNumber, checkOptions, invalidArg } from '../errors.js';

export interface LRSchedulerStateDict {
  last_epoch: number;
  base_lrs: number[];
}

/** The learning rate after `step` steps for a group whose base rate is `baseLr`. */
export type Schedule = (baseLr: number, step: number) => number;

/** What a schedule drives: any optimizer, through its groups' `lr`. */
export interface Schedulable {
  readonly paramGroups: { lr: number }[];
}

export class LRScheduler {
  /** Calls to `step()` so far (PyTorch's name: the unit is the caller's). */
  lastEpoch = 0;
  readonly baseLrs: number[];

  constructor(
    readonly optimizer: Schedulable,
    private readonly schedule: Schedule,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.#apply();
  }

  step(): void {
    this.lastEpoch += 1;
    this.#apply();
  }

  /** The learning rates the schedule last set, one per parameter group. */
  getLastLr(): number[] {
    return this.baseLrs.map((base) => this.schedule(base, this.lastEpoch));
  }

  stateDict(): LRSchedulerStateDict {
    return { last_epoch: this.lastEpoch, base_lrs: [...this.baseLrs] };
  }

  loadStateDict(state: LRSchedulerStateDict): void {
    const op = `${this.constructor.name}.loadStateDict`;
    const { last_epoch: lastEpoch, base_lrs: baseLrs } = checkOptions(op, state);
    checkInt(op, 'last_epoch', lastEpoch);
    if (!Array.isArray(baseLrs) || baseLrs.length !== this.baseLrs.length) {
      throw new StateDictError(
        `${op}: base_lrs must have one rate per parameter group (${this.baseLrs.length}), got ${Array.isArray(baseLrs) ? baseLrs.length : typeof baseLrs}`,
      );
    }
    baseLrs.forEach((lr, i) => checkNumber(op, `base_lrs[${i}]`, lr));
    this.lastEpoch = lastEpoch;
    this.baseLrs.splice(0, this.baseLrs.length, ...baseLrs);
    this.#apply();
  }

  #apply(): void {
    this.getLastLr().forEach((lr, i) => {
      this.optimizer.paramGroups[i].lr = lr;
    });
  }
}

function positiveInt(op: string, name: string, value: unknown): number {
  if (checkInt(op, name, value) <= 0) throw invalidArg(op, name, 'a positive integer', value);
  return value as number;
}

/** Multiplies the rate by `gamma` every `stepSize` steps (`torch.optim.lr_scheduler.StepLR`). */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Schedulable, options: { stepSize: number; gamma?: number }) {
    const { stepSize, gamma = 0.1 } = checkOptions('StepLR', options);
    const size = positiveInt('StepLR', 'stepSize', stepSize);
    const g = checkNumber('StepLR', 'gamma', gamma);
    super(optimizer, (baseLr, step) => baseLr * g ** Math.floor(step / size));
    [this.stepSize, this.gamma] = [size, g];
  }
}

/**
 * The base rate times `factor` for the first `totalIters` steps, then the base rate (`ConstantLR`, PyTorch's defaults:
 * factor 1/3, 5 steps). `{factor: 1}` keeps the rate constant throughout.
 */
export class ConstantLR extends LRScheduler {
  readonly factor: number;
  readonly totalIters: number;

  constructor(optimizer: Schedulable, options: { factor?: number; totalIters?: number } = {}) {
    const { factor = 1 / 3, totalIters = 5 } = checkOptions('ConstantLR', options);
    if (checkNumber('ConstantLR', 'factor', factor) < 0 || factor > 1)
      throw invalidArg('ConstantLR', 'factor', 'a number in [0, 1]', factor);
    if (checkInt('ConstantLR', 'totalIters', totalIters) < 0)
      throw invalidArg('ConstantLR', 'totalIters', 'a non-negative integer', totalIters);
    super(optimizer, (baseLr, step) => (step < totalIters ? baseLr * factor : baseLr));
    [this.factor, this.totalIters] = [factor, totalIters];
  }
}

export interface WarmupCosineOptions {
  /** Steps of linear warm-up, from `warmupStartFactor` x base to the base rate. */
  warmupSteps: number;
  /** Step at which the cosine reaches `minLr` (and stays). */
  totalSteps: number;
  warmupStartFactor?: number;
  minLr?: number;
}

function warmupCosine(w: number, total: number, s: number, minLr: number): Schedule {
  return (baseLr, step) => {
    if (step < w) return baseLr * (s + ((1 - s) * step) / w);
    if (step >= total) return minLr;
    return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * (step - w)) / (total - w)))) / 2;
  };
}

/**
 * Linear warm-up then cosine decay, SimCLR's schedule: lr = base * (s + (1 - s) * t / W) for t < W, then
 * minLr + (base - minLr) * (1 + cos(pi * (t - W) / (T - W))) / 2 up to T, minLr after.
 */
export class WarmupCosineLR extends LRScheduler {
  readonly warmupSteps: number;
  readonly totalSteps: number;
  readonly warmupStartFactor: number;
  readonly minLr: number;

  constructor(optimizer: Schedulable, options: WarmupCosineOptions) {
    const { warmupSteps, totalSteps, warmupStartFactor = 0, minLr = 0 } = checkOptions('WarmupCosineLR', options);
    if (checkInt('WarmupCosineLR', 'warmupSteps', warmupSteps) < 0)
      throw invalidArg('WarmupCosineLR', 'warmupSteps', 'a non-negative integer', warmupSteps);
    if (positiveInt('WarmupCosineLR', 'totalSteps', totalSteps) < warmupSteps)
      throw invalidArg('WarmupCosineLR', 'totalSteps', `at least warmupSteps (${warmupSteps})`, totalSteps);
    if (checkNumber('WarmupCosineLR', 'warmupStartFactor', warmupStartFactor) < 0 || warmupStartFactor > 1)
      throw invalidArg('WarmupCosineLR', 'warmupStartFactor', 'a number in [0, 1]', warmupStartFactor);
    if (checkNumber('WarmupCosineLR', 'minLr', minLr) < 0)
      throw invalidArg('WarmupCosineLR', 'minLr', 'a number >= 0', minLr);
    super(optimizer, warmupCosine(warmupSteps, totalSteps, warmupStartFactor, minLr));
    [this.warmupSteps, this.totalSteps, this.warmupStartFactor, this.minLr] = [
      warmupSteps,
      totalSteps,
      warmupStartFactor,
      minLr,
    ];
  }
}
