/**
 * Synthetic scenes: one facility per location, drawn as shapes of a few materials over a background that differs
 * per sensor (another date), then rendered for each sensor from the same shapes, so the footprint sits at the same
 * place in every modality. The
 * class shows differently per sensor (tank rows are a pixel or two at 10 m but crisp in NAIP; SAR sees structures
 * as bright double bounces under speckle), which is what multi-modal pre-training can exploit.
 */
import type { ClassName } from '../dataset.js';
import type { Random } from '../random.js';

/** The scene's extent in metres: METER-ML's tiles cover 720 m (NAIP 720 px at 1 m, Sentinel 72 px at 10 m). */
export const EXTENT = 720;

export const enum Material {
  Vegetation,
  Soil,
  Water,
  Pavement,
  Roof,
  Tank,
  Pit,
  Mound,
  Spoil,
}

/** Per material: Sentinel-2 reflectance x 10000 (R, G, B, NIR) and Sentinel-1 backscatter (VV, VH, 0..4095). */
const S2: number[][] = [
  [400, 700, 350, 3500],
  [1800, 1600, 1300, 2500],
  [300, 500, 600, 200],
  [1200, 1200, 1150, 1500],
  [2200, 2300, 2400, 2600],
  [3500, 3500, 3500, 3600],
  [500, 450, 400, 600],
  [1500, 1400, 1100, 2000],
  [1300, 1300, 1250, 1600],
];
const S1: number[][] = [
  [1500, 1100],
  [1300, 800],
  [300, 150],
  [1200, 700],
  [2600, 1400],
  [3000, 1500],
  [700, 400],
  [1500, 900],
  [1700, 1000],
];
const isStructure = (m: number) => m === Material.Roof || m === Material.Tank;

type Shape =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; angle: number; material: Material }
  | { kind: 'disc'; x: number; y: number; r: number; wobble: number; lobes: number; phase: number; material: Material };

export type Sensor = 'naip' | 's2' | 's1';

interface Background {
  waves: [number, number, number, number][];
  soilLevel: number;
}

function sampleBackground(random: Random): Background {
  const waves = Array.from(
    { length: 3 },
    () =>
      [random.uniform(0.004, 0.02), random.uniform(0, 6.28), random.uniform(0, 6.28), random.uniform(0.5, 1)] as [
        number,
        number,
        number,
        number,
      ],
  );
  return { waves, soilLevel: random.uniform(-0.6, 0.6) };
}

export interface Scene {
  /**
   * Per sensor: the sensors image a site on different dates, so fields, soil moisture and vegetation (the
   * background) differ between them, while the structures (the facility, a road, a pond) stay. Matching a site
   * across sensors therefore goes through its structures, which is what multi-modal pre-training can learn; two
   * augmented views of one sensor share their background, a shortcut single-sensor pre-training can take.
   */
  backgrounds: Record<Sensor, Background>;
  shapes: Shape[];
}

const rect = (x: number, y: number, w: number, h: number, angle: number, material: Material): Shape => ({
  kind: 'rect',
  x,
  y,
  w,
  h,
  angle,
  material,
});
const disc = (x: number, y: number, r: number, material: Material, random?: Random): Shape => ({
  kind: 'disc',
  x,
  y,
  r,
  wobble: random ? random.uniform(0.1, 0.35) : 0,
  lobes: random ? 2 + random.int(4) : 0,
  phase: random ? random.uniform(0, 6.28) : 0,
  material,
});

/** Points along a row at `angle` through (x, y), `count` of them `spacing` apart, centred. */
function row(x: number, y: number, angle: number, count: number, spacing: number): [number, number][] {
  return Array.from({ length: count }, (_, i) => {
    const t = (i - (count - 1) / 2) * spacing;
    return [x + t * Math.cos(angle), y + t * Math.sin(angle)];
  });
}

const FACILITIES: Record<ClassName | 'Negative', (r: Random, x: number, y: number, angle: number) => Shape[]> = {
  CAFOs: (r, x, y, angle) => {
    const length = r.uniform(80, 150),
      width = r.uniform(12, 20);
    const barns = row(x, y, angle + Math.PI / 2, 3 + r.int(4), width + r.uniform(10, 18)).map(([bx, by]) =>
      rect(bx, by, length, width, angle, Material.Roof),
    );
    return r.bernoulli(0.6)
      ? [...barns, rect(x + 110 * Math.cos(angle), y + 110 * Math.sin(angle), 40, 30, angle, Material.Water)]
      : barns;
  },
  Landfills: (r, x, y) => [
    disc(x, y, r.uniform(80, 150), Material.Mound, r),
    ...Array.from({ length: 2 + r.int(3) }, () =>
      disc(x + r.uniform(-90, 90), y + r.uniform(-90, 90), r.uniform(15, 35), Material.Soil, r),
    ),
  ],
  Mines: (r, x, y) => [
    disc(x, y, r.uniform(40, 90), Material.Pit, r),
    ...Array.from({ length: 2 + r.int(3) }, () =>
      disc(x + r.uniform(-130, 130), y + r.uniform(-130, 130), r.uniform(20, 40), Material.Spoil, r),
    ),
  ],
  ProcessingPlants: (r, x, y, angle) => [
    rect(x, y, 70, 50, angle, Material.Pavement),
    ...row(x, y, angle, 2 + r.int(4), 16).map(([tx, ty]) => disc(tx, ty, r.uniform(5, 8), Material.Tank)),
    rect(x, y + 18, 50, 3, angle, Material.Roof),
  ],
  RefineriesAndTerminals: (r, x, y, angle) => {
    const radius = r.uniform(12, 22),
      columns = 2 + r.int(3);
    const centres = row(x, y, angle, columns, 2.6 * radius).flatMap(([cx, cy]) =>
      row(cx, cy, angle + Math.PI / 2, 2 + r.int(3), 2.6 * radius),
    );
    return [
      rect(x, y, columns * 2.6 * radius + 20, 4 * 2.6 * radius, angle, Material.Pavement),
      ...centres.map(([cx, cy]) => disc(cx, cy, radius, Material.Tank)),
    ];
  },
  WWTreatment: (r, x, y, angle) => [
    ...row(x, y, angle, 2 + r.int(3), 50).flatMap(([cx, cy]) => {
      const radius = r.uniform(12, 20);
      return [disc(cx, cy, radius, Material.Pavement), disc(cx, cy, radius - 3, Material.Water)];
    }),
    ...row(x + 60 * Math.sin(angle), y - 60 * Math.cos(angle), angle, 1 + r.int(3), 50).flatMap(([bx, by]) => [
      rect(bx, by, 44, 24, angle, Material.Pavement),
      rect(bx, by, 40, 20, angle, Material.Water),
    ]),
  ],
  Negative: (r, x, y, angle) =>
    row(x, y, angle, r.int(7), 30).map(([hx, hy]) =>
      rect(hx + r.uniform(-5, 5), hy + 20, r.uniform(10, 15), r.uniform(10, 15), angle, Material.Roof),
    ),
};

/** A scene: background, an occasional pond and road, the facility of each class given (several for multi-class sites). */
export function sampleScene(random: Random, classes: readonly ClassName[]): Scene {
  const backgrounds = { naip: sampleBackground(random), s2: sampleBackground(random), s1: sampleBackground(random) };
  const shapes: Shape[] = [];
  if (random.bernoulli(0.3))
    shapes.push(
      disc(random.uniform(0, EXTENT), random.uniform(0, EXTENT), random.uniform(20, 60), Material.Water, random),
    );
  const roadAngle = random.uniform(0, Math.PI);
  shapes.push(
    rect(
      random.uniform(200, 520),
      random.uniform(200, 520),
      2 * EXTENT,
      random.uniform(6, 12),
      roadAngle,
      Material.Pavement,
    ),
  );
  for (const name of classes.length > 0 ? classes : (['Negative'] as const)) {
    shapes.push(
      ...FACILITIES[name](random, random.uniform(200, 520), random.uniform(200, 520), random.uniform(0, Math.PI)),
    );
  }
  return { backgrounds, shapes };
}

function covers(shape: Shape, x: number, y: number): boolean {
  const dx = x - shape.x,
    dy = y - shape.y;
  if (shape.kind === 'rect') {
    const c = Math.cos(shape.angle),
      s = Math.sin(shape.angle);
    return Math.abs(dx * c + dy * s) <= shape.w / 2 && Math.abs(-dx * s + dy * c) <= shape.h / 2;
  }
  const r =
    shape.wobble === 0
      ? shape.r
      : shape.r * (1 + shape.wobble * Math.sin(shape.lobes * Math.atan2(dy, dx) + shape.phase));
  return dx * dx + dy * dy <= r * r;
}

/** The material of each pixel of a res x res grid over the scene (pixel centres). */
export function materials(scene: Scene, sensor: Sensor, res: number): Uint8Array {
  const out = new Uint8Array(res * res);
  const step = EXTENT / res;
  const { waves, soilLevel } = scene.backgrounds[sensor];
  // each wave is separable, a * sin(f x + px) * cos(f y + py): one table per axis instead of trig per pixel
  const columns = waves.map(([f, px, , a]) =>
    Float64Array.from({ length: res }, (_, j) => a * Math.sin(f * (j + 0.5) * step + px)),
  );
  const rows = waves.map(([f, , py]) =>
    Float64Array.from({ length: res }, (_, i) => Math.cos(f * (i + 0.5) * step + py)),
  );
  for (let i = 0; i < res; i++) {
    for (let j = 0; j < res; j++) {
      const field = columns[0][j] * rows[0][i] + columns[1][j] * rows[1][i] + columns[2][j] * rows[2][i];
      out[i * res + j] = field > soilLevel ? Material.Soil : Material.Vegetation;
    }
  }
  for (const shape of scene.shapes) {
    const reach = shape.kind === 'rect' ? Math.hypot(shape.w, shape.h) / 2 : shape.r * (1 + shape.wobble);
    const [i0, i1] = [
      Math.max(0, Math.floor((shape.y - reach) / step)),
      Math.min(res - 1, Math.ceil((shape.y + reach) / step)),
    ];
    const [j0, j1] = [
      Math.max(0, Math.floor((shape.x - reach) / step)),
      Math.min(res - 1, Math.ceil((shape.x + reach) / step)),
    ];
    for (let i = i0; i <= i1; i++) {
      for (let j = j0; j <= j1; j++)
        if (covers(shape, (j + 0.5) * step, (i + 0.5) * step)) out[i * res + j] = shape.material;
    }
  }
  return out;
}

/** 65536 standard normal draws, indexed by random 16-bit numbers: pixel noise at one generator call per sample. */
const NORMALS = (() => {
  let state = 0x2545f491;
  const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from(
    { length: 65536 },
    () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  );
})();
const noise = (random: Random) => NORMALS[random.nextUint32() & 0xffff];

/** NAIP: 720 x 720 x 4 uint8 (R, G, B, NIR), fine texture and shadows cast to the south-east by structures. */
export function renderNaip(scene: Scene, random: Random): Uint8Array {
  const res = EXTENT,
    m = materials(scene, 'naip', res),
    out = new Uint8Array(res * res * 4);
  for (let p = 0; p < res * res; p++) {
    const i = Math.floor(p / res),
      j = p % res;
    const shadow = !isStructure(m[p]) && i >= 4 && j >= 4 && isStructure(m[p - 4 * res - 4]) ? 0.55 : 1;
    const gain = 0.04 * shadow * (1 + 0.08 * noise(random)),
      signature = S2[m[p]];
    for (let b = 0; b < 4; b++) out[p * 4 + b] = Math.max(0, Math.min(255, signature[b] * gain + 6 * noise(random)));
  }
  return out;
}

/** The 10 m grid's material mix: 4 x 4 samples per pixel, as fractions per material. */
function mixture(scene: Scene, sensor: Sensor): Float32Array[] {
  const fine = materials(scene, sensor, 288),
    out = Array.from({ length: 9 }, () => new Float32Array(72 * 72));
  for (let i = 0; i < 288; i++)
    for (let j = 0; j < 288; j++) out[fine[i * 288 + j]][(i >> 2) * 72 + (j >> 2)] += 1 / 16;
  return out;
}

/** Sentinel-2 10 m: 72 x 72 x 4 uint16 reflectance x 10000, mixed pixels, a little blur and noise. */
export function renderSentinel2(scene: Scene, random: Random): Uint16Array {
  const mix = mixture(scene, 's2'),
    out = new Uint16Array(72 * 72 * 4);
  for (let p = 0; p < 72 * 72; p++) {
    for (let b = 0; b < 4; b++) {
      const value = mix.reduce((sum, fraction, k) => sum + fraction[p] * S2[k][b], 0);
      out[p * 4 + b] = Math.max(0, Math.min(10000, value * (1 + 0.05 * noise(random)) + 60 * noise(random)));
    }
  }
  return out;
}

/** Sentinel-1: 72 x 72 x 2 uint16 (VV, VH), multiplicative speckle (4 looks) and double bounce along structures. */
export function renderSentinel1(scene: Scene, random: Random): Uint16Array {
  const mix = mixture(scene, 's1'),
    out = new Uint16Array(72 * 72 * 2);
  const structure = (p: number) => mix[Material.Roof][p] + mix[Material.Tank][p];
  for (let p = 0; p < 72 * 72; p++) {
    const edge = structure(p) > 0 && structure(p) < 1 ? 1.8 : 1;
    const speckle =
      (-Math.log(1 - random.random()) -
        Math.log(1 - random.random()) -
        Math.log(1 - random.random()) -
        Math.log(1 - random.random())) /
      4;
    for (let b = 0; b < 2; b++)
      out[p * 2 + b] = Math.min(
        4095,
        mix.reduce((sum, fraction, k) => sum + fraction[p] * S1[k][b], 0) * edge * speckle,
      );
  }
  return out;
}
