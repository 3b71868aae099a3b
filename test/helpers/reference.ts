/**
 * Independent references for the tests: plain TypeScript over number arrays, float64, no LibTorch. Each function is
 * written from the op's mathematical definition, not from LibTorch's code.
 */
import { torch } from '../../lib/index.js';

type Tensor = torch.Tensor;

/** A seeded generator (mulberry32), so reference inputs are reproducible without LibTorch's RNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function strides(shape: readonly number[]): number[] {
  return shape.map((_, d) => numel(shape.slice(d + 1)));
}

/** Values of a tensor as a flat float64 array. */
export function values(t: Tensor): number[] {
  return Array.from(t.toTypedArray(), Number);
}

/** Largest |a - b| / (|b| + atol) over the elements: 0 for equal arrays. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-6): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + atol));
  return Number.isNaN(worst) ? Infinity : worst;
}

/** Broadcasts a binary function over two shapes, as NumPy and PyTorch do. */
export function broadcast(
  a: number[],
  aShape: number[],
  b: number[],
  bShape: number[],
  f: (x: number, y: number) => number,
): { data: number[]; shape: number[] } {
  const n = Math.max(aShape.length, bShape.length);
  const pa = [...Array(n - aShape.length).fill(1), ...aShape];
  const pb = [...Array(n - bShape.length).fill(1), ...bShape];
  const shape = pa.map((s, i) => Math.max(s, pb[i]));
  const sa = strides(pa),
    sb = strides(pb),
    so = strides(shape);
  const data = Array.from({ length: numel(shape) }, (_, flat) => {
    let ia = 0,
      ib = 0;
    for (let d = 0; d < n; d++) {
      const idx = Math.floor(flat / so[d]) % shape[d];
      ia += (pa[d] === 1 ? 0 : idx) * sa[d];
      ib += (pb[d] === 1 ? 0 : idx) * sb[d];
    }
    return f(a[ia], b[ib]);
  });
  return { data, shape };
}

/** [m, k] x [k, n]. */
export function matmul(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const out = new Array(m * n).fill(0);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      out[i * n + j] = s;
    }
  return out;
}

/** Reduces `dim` of a row-major array with `f` over the values along it. */
export function reduceDim(
  x: number[],
  shape: number[],
  dim: number,
  f: (v: number[]) => number,
): { data: number[]; shape: number[] } {
  const outer = numel(shape.slice(0, dim)),
    size = shape[dim],
    inner = numel(shape.slice(dim + 1));
  const data: number[] = [];
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const v = Array.from({ length: size }, (_, k) => x[(o * size + k) * inner + i]);
      data.push(f(v));
    }
  return { data, shape: shape.filter((_, d) => d !== dim) };
}

export const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
export const mean = (v: number[]) => sum(v) / v.length;
export const variance = (v: number[], unbiased: boolean) => {
  const m = mean(v);
  return sum(v.map((x) => (x - m) ** 2)) / (v.length - (unbiased ? 1 : 0));
};
export const logsumexp = (v: number[]) => {
  const m = Math.max(...v);
  return m + Math.log(sum(v.map((x) => Math.exp(x - m))));
};

/** Direct 2-D convolution (cross-correlation) of [N, C, H, W] with [O, C/groups, KH, KW]. */
export function conv2d(
  x: number[],
  [n, c, h, w]: number[],
  wt: number[],
  [o, cg, kh, kw]: number[],
  bias: number[] | null,
  stride: number,
  pad: number,
  dilation = 1,
  groups = 1,
): { data: number[]; shape: number[] } {
  const oh = Math.floor((h + 2 * pad - dilation * (kh - 1) - 1) / stride) + 1;
  const ow = Math.floor((w + 2 * pad - dilation * (kw - 1) - 1) / stride) + 1;
  const og = o / groups;
  const data = new Array(n * o * oh * ow).fill(0);
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let s = bias ? bias[oc] : 0;
          const g = Math.floor(oc / og);
          for (let ic = 0; ic < cg; ic++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const yy = y * stride - pad + i * dilation,
                  xi = xx * stride - pad + j * dilation;
                if (yy < 0 || yy >= h || xi < 0 || xi >= w) continue;
                s += x[((b * c + g * cg + ic) * h + yy) * w + xi] * wt[((oc * cg + ic) * kh + i) * kw + j];
              }
          data[((b * o + oc) * oh + y) * ow + xx] = s;
        }
  return { data, shape: [n, o, oh, ow] };
}

/** Bilinear resize with align_corners=false (half-pixel centres, edge clamping), [N, C, H, W]. */
export function bilinear(x: number[], [n, c, h, w]: number[], oh: number, ow: number): number[] {
  const out: number[] = [];
  const src = (dst: number, scale: number, size: number) => Math.min(Math.max((dst + 0.5) * scale - 0.5, 0), size - 1);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < oh; y++)
      for (let xx = 0; xx < ow; xx++) {
        const sy = src(y, h / oh, h),
          sx = src(xx, w / ow, w);
        const y0 = Math.floor(sy),
          x0 = Math.floor(sx),
          y1 = Math.min(y0 + 1, h - 1),
          x1 = Math.min(x0 + 1, w - 1);
        const ly = sy - y0,
          lx = sx - x0;
        const at = (yy: number, xi: number) => x[(p * h + yy) * w + xi];
        out.push((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
      }
  return out;
}

/**
 * Central finite differences of a scalar function of one float64 tensor, against its autograd gradient.
 * Returns the largest relative error.
 */
export function gradcheck(f: (x: Tensor) => Tensor, data: number[], shape: number[], eps = 1e-6): number {
  return torch.tidy(() => {
    const x = torch.tensor(data, { dtype: 'float64' }).reshape(shape).detach().requiresGrad_();
    f(x).backward();
    const analytic = values(x.grad!);
    const numeric = data.map((_, i) => {
      const at = (delta: number) =>
        torch.noGrad(() => {
          const d = data.slice();
          d[i] += delta;
          return f(torch.tensor(d, { dtype: 'float64' }).reshape(shape)).item() as number;
        });
      return (at(eps) - at(-eps)) / (2 * eps);
    });
    return maxRelErr(analytic, numeric, 1e-4);
  });
}
