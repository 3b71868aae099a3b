// The inference service as clients use it: a real server on loopback driven by real HTTP requests. Its answers equal
// the library's (loadEncoder / loadClassifier); every class of bad input is a 400 naming the field and the server
// keeps serving; a full queue is a 503; /healthz answers while the model is saturated; /metrics counts; close()
// finishes the requests in flight.
import test from 'ava';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { synthesize } from '../../lib/data/synth/index.js';
import { loadFileWithMetadata, saveFile } from '../../lib/io/safetensors.js';
import { loadClassifier, loadEncoder } from '../../lib/serve/model.js';
import { createServer, type Server } from '../../lib/serve/server.js';
import { resolveFinetuneConfig, resolvePretrainConfig } from '../../lib/config/index.js';
import { finetune } from '../../lib/train/finetune.js';
import { pretrain } from '../../lib/train/pretrain.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-serve-'));
const data = join(scratch, 'data'),
  pre = join(scratch, 'pre'),
  ft = join(scratch, 'ft');
const common = {
  data,
  modalities: ['s1', 's2'],
  epochs: 1,
  batchSize: 4,
  alexnetHidden: 32,
  threads: 1,
  workers: 1,
  statsSamples: 20,
  onBadSample: 'skip',
};
const ready = (async () => {
  await synthesize({ out: data, perClass: 3, seed: 4, holdout: { val: 0.25, test: 0.25 } });
  await pretrain({ config: resolvePretrainConfig({ ...common, hiddenDim: 32, embeddingDim: 16 }), out: pre });
  await finetune({ config: resolveFinetuneConfig({ ...common, init: pre }), out: ft });
})();
const servers: Server[] = [];
test.after.always(async () => {
  await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
  rmSync(scratch, { recursive: true, force: true });
});

/** A training location's files, as clients send them. */
function location(k = 0): { s1: Uint8Array; s2: Uint8Array } {
  const root = join(data, 'train_images');
  const folders = readdirSync(root).flatMap((d) => readdirSync(join(root, d)).map((f) => join(root, d, f)));
  const good = folders.filter((f) => readdirSync(f).includes('sentinel-1.npy'))[k];
  return {
    s1: new Uint8Array(readFileSync(join(good, 'sentinel-1.npy'))),
    s2: new Uint8Array(readFileSync(join(good, 'sentinel-2-10m.npy'))),
  };
}

async function start(init: string, options: Record<string, number> = {}): Promise<{ server: Server; url: string }> {
  await ready;
  const server = await createServer({ init, workers: 1, threadsPerWorker: 1, ...options });
  servers.push(server);
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

function form(files: Record<string, Uint8Array>): FormData {
  const body = new FormData();
  for (const [m, bytes] of Object.entries(files)) body.append(m, new Blob([bytes]), `${m}.npy`);
  return body;
}
const post = (url: string, body: FormData | object) =>
  fetch(
    url,
    body instanceof FormData
      ? { method: 'POST', body }
      : { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } },
  );
const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) =>
  a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]) <= tol * (1 + Math.abs(b[i])));

test.serial('embed and classify over HTTP (multipart files, JSON arrays) equal the library calls', async (t) => {
  const { url } = await start(ft);
  const inputs = location(0);
  const encoder = await loadEncoder(ft, { threadsPerWorker: 1 });
  const classifier = await loadClassifier(ft, { threadsPerWorker: 1 });
  try {
    const expected = await encoder.embed(inputs);
    const embedded = await post(`${url}/v1/embed`, form(inputs));
    t.is(embedded.status, 200);
    const e = (await embedded.json()) as { embedding: number[]; columns: Record<string, [number, number]> };
    t.deepEqual(e.columns, expected.columns);
    t.deepEqual(e.columns, { s1: [0, 32], s2: [32, 64] });
    t.true(near(e.embedding, expected.embedding), 'the same embedding');

    const probabilities = await classifier.classify(inputs);
    const classified = (await (await post(`${url}/v1/classify`, form(inputs))).json()) as {
      label: string;
      probabilities: Record<string, number>;
    };
    t.is(classified.label, probabilities.label);
    t.true(near(Object.values(classified.probabilities), probabilities.probabilities));
    t.deepEqual(Object.keys(classified.probabilities), probabilities.classNames);

    // the same location as JSON arrays: [bands, height, width] values, already decoded
    const decode = (bytes: Uint8Array, bands: number) => {
      const { decodeNpy } = npy;
      const {
        shape: [h, w, c],
        data: values,
      } = decodeNpy(bytes, 'x');
      t.is(c, bands);
      return {
        data: Array.from({ length: c * h * w }, (_, i) => Number(values[(i % (h * w)) * c + Math.floor(i / (h * w))])),
        shape: [c, h, w],
      };
    };
    const json = (await (
      await post(`${url}/v1/classify`, { inputs: { s1: decode(inputs.s1, 2), s2: decode(inputs.s2, 4) } })
    ).json()) as { probabilities: Record<string, number> };
    t.true(near(Object.values(json.probabilities), probabilities.probabilities));
  } finally {
    await encoder.close();
    await classifier.close();
  }
});

const npy = await import('../../lib/data/formats/npy.js');

test.serial(
  "precision 'bf16-mixed': each worker runs under its own autocast, answers within bfloat16's tolerance",
  async (t) => {
    await ready;
    const inputs = location(1);
    const full = await loadEncoder(ft, { threadsPerWorker: 1 });
    const low = await loadEncoder(ft, { threadsPerWorker: 1, workers: 2, precision: 'bf16-mixed' });
    try {
      const expected = (await full.embed(inputs)).embedding;
      const answers = await Promise.all([low.embed(inputs), low.embed(inputs)]);
      for (const { embedding } of answers) {
        t.false(near(embedding, expected, 1e-7), 'computed in bfloat16');
        t.true(near(embedding, expected, 0.05), 'within its tolerance');
      }
    } finally {
      await full.close();
      await low.close();
    }
    await t.throwsAsync(loadEncoder(ft, { precision: 'fp8' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /precision/,
    });
  },
);

test.serial('every class of bad input answers 400 naming the field, and the server goes on serving', async (t) => {
  const { url } = await start(ft, { bodyLimit: 1 << 20 });
  const { s1, s2 } = location(1);
  const cases: [string, FormData | object, string][] = [
    ['an unknown modality', form({ s1, s2, radar: s1 }), 'radar'],
    ['a missing modality', form({ s2 }), 's1'],
    ['a corrupt file', form({ s1: s1.slice(0, 40), s2 }), 's1'],
    ['not a known format', form({ s1: new TextEncoder().encode('hello world, not an image'), s2 }), 's1'],
    ['the wrong band count', form({ s1: s2, s2 }), 's1'],
    ['JSON without inputs', { s1: 1 }, 'inputs'],
    [
      'JSON values that are not numbers',
      { inputs: { s1: { data: ['a'], shape: [2, 1, 1] }, s2: { data: [1], shape: [1] } } },
      's1',
    ],
    [
      'JSON values that do not fill the shape',
      { inputs: { s1: { data: [1, 2, 3], shape: [2, 72, 72] }, s2: { data: [1], shape: [4, 1, 1] } } },
      's1',
    ],
  ];
  for (const [what, body, field] of cases) {
    const response = await post(`${url}/v1/classify`, body);
    t.is(response.status, 400, what);
    const answer = (await response.json()) as { error: string; field: string };
    t.is(answer.field, field, `${what}: ${answer.error}`);
  }
  const malformed = await fetch(`${url}/v1/classify`, {
    method: 'POST',
    body: '{"inputs": ',
    headers: { 'content-type': 'application/json' },
  });
  t.is(malformed.status, 400);
  t.like(await malformed.json(), { field: 'body' });
  const huge = await post(`${url}/v1/classify`, form({ s1: new Uint8Array(2 << 20), s2 }));
  t.is(huge.status, 413, 'a body over the limit');
  const fine = await post(`${url}/v1/classify`, form({ s1, s2 }));
  t.is(fine.status, 200, 'still serving');
});

test.serial(
  "inputs of any size from 8x8 are resampled to the run's size; a run that recorded no size refuses small ones with a 400",
  async (t) => {
    const { s2 } = location(0);
    const small = { data: Array.from({ length: 2 * 10 * 10 }, (_, i) => -15 + Math.sin(i)), shape: [2, 10, 10] };
    for (const init of [ft, pre]) {
      const { url } = await start(init);
      const response = await post(`${url}/v1/embed`, {
        inputs: {
          s1: small,
          s2: { data: Array.from(npy.decodeNpy(s2, 's2').data as ArrayLike<number>, Number), shape: [72, 72, 4] },
        },
      });
      t.is(
        response.status,
        200,
        `${init}: a 2x10x10 Sentinel-1 input is resampled to 72x72 (${await response.clone().text()})`,
      );
    }
    // a fine-tuned model written before mmssl recorded input sizes: S1's (its native grid) unknown
    const old = join(scratch, 'ft-without-sizes');
    cpSync(ft, old, { recursive: true });
    const { tensors, metadata } = await loadFileWithMetadata(join(old, 'model.safetensors'));
    const described = JSON.parse(metadata.mmssl) as Record<string, unknown>;
    delete described.inputSizes;
    await saveFile(tensors, join(old, 'model.safetensors'), {
      metadata: { ...metadata, mmssl: JSON.stringify(described) },
    });
    const { url } = await start(old);
    const response = await post(`${url}/v1/embed`, {
      inputs: { s1: small, s2: { data: new Array<number>(4 * 72 * 72).fill(1000), shape: [4, 72, 72] } },
    });
    t.is(response.status, 400);
    t.like(await response.json(), { field: 's1', error: 's1: 10x10 pixels: this model takes at least 63x63' });
  },
);

test.serial('a full queue answers 503; /healthz answers while the model is saturated; /metrics counts', async (t) => {
  const { server, url } = await start(ft, { maxBatch: 1, maxQueue: 4, maxDelayMs: 0 });
  const inputs = location(2);
  const flood = Array.from({ length: 30 }, () => post(`${url}/v1/classify`, form(inputs)).then((r) => r.status));
  while (server.model.stats.queueDepth === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  const health = await fetch(`${url}/healthz`);
  t.is(health.status, 200);
  const state = (await health.json()) as { status: string; queueDepth: number; running: number };
  t.like(state, { status: 'ok', kind: 'finetune', modalities: ['s1', 's2'] });
  t.true(state.running + state.queueDepth > 0, `healthz answered while the model was busy (${JSON.stringify(state)})`);
  const statuses = await Promise.all(flood);
  t.true(statuses.includes(503), `statuses ${statuses}`);
  t.true(statuses.includes(200));
  t.true(statuses.every((s) => s === 200 || s === 503));
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.regex(metrics, /mmssl_requests_total\{route="\/v1\/classify",status="503"\} \d+/);
  t.regex(metrics, /mmssl_requests_total\{route="\/v1\/classify",status="200"\} \d+/);
  t.regex(metrics, /mmssl_request_duration_seconds_bucket\{le="0.005",route="\/v1\/classify"\}/);
  t.regex(metrics, /mmssl_batch_size_count [1-9]/);
  t.regex(metrics, /mmssl_queue_depth 0/);
});

test.serial('close() finishes the requests in flight; a pre-training run embeds but does not classify', async (t) => {
  const { server, url } = await start(pre);
  const inputs = location(0);
  const refused = await post(`${url}/v1/classify`, form(inputs));
  const inFlight = post(`${url}/v1/embed`, form(inputs));
  while (server.model.stats.queueDepth + server.model.stats.running === 0)
    await new Promise((resolve) => setTimeout(resolve, 1));
  const closing = server.close();
  t.is((await inFlight).status, 200);
  await closing;
  t.is(refused.status, 400);
  t.like(await refused.json(), { field: 'model' });
  await t.throwsAsync(fetch(`${url}/healthz`), undefined, 'closed');
});

test('loading: a folder without a run, a pre-training run as a classifier, bad options are refused before any worker starts', async (t) => {
  await ready;
  await t.throwsAsync(loadEncoder(data), {
    code: 'ERR_MMSSL_IO',
    message: /holds neither a pre-training checkpoint nor a fine-tuned model/,
  });
  await t.throwsAsync(loadClassifier(pre), { code: 'ERR_MMSSL_ARG', message: /a fine-tuned run/ });
  await t.throwsAsync(loadEncoder(ft, { maxBatch: 0 }), { code: 'ERR_MMSSL_ARG', message: /maxBatch/ });
  await t.throwsAsync(loadEncoder(ft, { modalities: ['naip'] }), {
    code: 'ERR_MMSSL_ARG',
    message: /among the run's \(s1, s2\)/,
  });
});
