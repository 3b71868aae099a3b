/**
 * A small seeded generator for the data pipeline (shuffles, augmentation parameters, synthetic scenes): xoshiro128**
 * seeded through splitmix32, so a seed gives the same stream on every platform and Node version. Independent streams
 * (one per epoch, per sample, per worker) come from `fork(key)`, which does not advance the parent.
 */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Random {
  private readonly s = new Uint32Array(4);
  readonly seed: number;

  /** `seed`: any integer (taken modulo 2^32). */
  constructor(seed: number) {
    this.seed = seed >>> 0;
    let state = this.seed;
    for (let i = 0; i < 4; i++) [state, this.s[i]] = splitmix32(state);
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1), 53 random bits. */
  random(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** True with probability p. */
  bernoulli(p = 0.5): boolean {
    return this.random() < p;
  }

  /** A standard normal draw (Box-Muller). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.random())) * Math.cos(2 * Math.PI * this.random());
  }

  /** Fisher-Yates, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A generator for the sub-stream `key` (an epoch, a sample index...): a function of (seed, key) only. */
  fork(key: number): Random {
    return new Random(splitmix32((this.seed ^ Math.imul(key + 1, 0x27d4eb2f)) >>> 0)[1]);
  }
}
