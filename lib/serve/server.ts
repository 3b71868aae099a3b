/**
 * `mmssl serve`: the inference model behind HTTP (fastify). POST /v1/embed and /v1/classify take one location's
 * inputs per modality, as multipart files (a part per modality, named after it: .npy, PNG or GeoTIFF) or as JSON
 * (`{"inputs": {"s2": {"data": [...], "shape": [bands, height, width]}}}`); GET /healthz answers at once, whatever the
 * load (model work never runs on the event loop); GET /metrics is Prometheus's text format. Bad input answers 400
 * with `{"error", "field"}`, a full queue 503 (with Retry-After), an oversized body 413; `close()` finishes the
 * requests in flight before it ends the workers.
 */
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { InputError, QueueFullError } from '../errors.js';
import { type InferenceOptions, InferenceModel } from './model.js';
import type { ModalityInput } from './inputs.js';

export interface ServeOptions extends InferenceOptions {
  /** A pre-training run or a fine-tuning output folder. */
  init: string;
  /** Largest request body, in bytes (default 64 MiB). */
  bodyLimit?: number;
}

export interface Server {
  app: FastifyInstance;
  model: InferenceModel;
  /** Stops accepting, finishes the requests in flight, ends the workers. */
  close(): Promise<void>;
}

function metrics(model: InferenceModel): {
  registry: Registry;
  requests: Counter<'route' | 'status'>;
  latency: Histogram<'route'>;
} {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mmssl_process_' });
  const requests = new Counter({
    name: 'mmssl_requests_total',
    help: 'Requests answered, by route and status code',
    labelNames: ['route', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'mmssl_request_duration_seconds',
    help: 'Time from request to reply',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const batches = new Histogram({
    name: 'mmssl_batch_size',
    help: 'Requests per batch handed to a worker',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  new Gauge({
    name: 'mmssl_queue_depth',
    help: 'Requests waiting for a worker',
    registers: [registry],
    collect() {
      this.set(model.stats.queueDepth);
    },
  });
  new Gauge({
    name: 'mmssl_batches_running',
    help: 'Batches the workers are running',
    registers: [registry],
    collect() {
      this.set(model.stats.running);
    },
  });
  model.onBatch = (size) => batches.observe(size);
  return { registry, requests, latency };
}

/** One location's inputs from a request: multipart parts named after their modality, or JSON `{inputs}`. */
async function inputsOf(request: FastifyRequest): Promise<Record<string, ModalityInput>> {
  if (request.isMultipart()) {
    const inputs: Record<string, ModalityInput> = {};
    for await (const part of request.parts()) {
      if (part.type !== 'file')
        throw new InputError(part.fieldname, 'expected a file part (a .npy, PNG or GeoTIFF per modality)');
      if (inputs[part.fieldname] !== undefined) throw new InputError(part.fieldname, 'given twice');
      inputs[part.fieldname] = new Uint8Array(await part.toBuffer());
    }
    return inputs;
  }
  const body = request.body as { inputs?: unknown } | undefined;
  if (
    !body ||
    typeof body !== 'object' ||
    body.inputs === null ||
    typeof body.inputs !== 'object' ||
    Array.isArray(body.inputs)
  ) {
    throw new InputError(
      'inputs',
      'expected {"inputs": {modality: {"data": [numbers], "shape": [bands, height, width]}}} or multipart files',
    );
  }
  return Object.fromEntries(
    Object.entries(body.inputs as Record<string, unknown>).map(([m, v]) => {
      const value = v as { data?: unknown; shape?: unknown };
      if (
        !value ||
        !Array.isArray(value.data) ||
        !Array.isArray(value.shape) ||
        !value.data.every((x) => typeof x === 'number')
      ) {
        throw new InputError(m, 'expected {"data": [numbers], "shape": [bands, height, width]}');
      }
      return [m, { data: value.data as number[], shape: value.shape as number[] }];
    }),
  );
}

function errorReply(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof InputError) return reply.code(400).send({ error: error.message, field: error.field });
  if (error instanceof QueueFullError) return reply.code(503).header('retry-after', '1').send({ error: error.message });
  const e = error as { statusCode?: number; message: string; code?: string };
  // fastify's own: a body too large (413), malformed JSON or multipart (400), an unsupported media type (415)
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
    return reply.code(e.statusCode).send({ error: e.message, field: 'body' });
  reply.log.error(error);
  return reply.code(500).send({ error: `internal error: ${e.message}` });
}

/** Loads the model into its workers and builds the app (not yet listening: `app.listen`). */
export async function createServer(options: ServeOptions): Promise<Server> {
  const { init, bodyLimit = 64 << 20, ...inference } = options;
  const model = await InferenceModel.load(init, inference);
  // On close, idle keep-alive connections end at once; those with a request in flight end after it.
  const app = Fastify({ bodyLimit, logger: false, forceCloseConnections: 'idle' });
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: 16, fields: 0 }, throwFileSizeLimit: true });
  const { registry, requests, latency } = metrics(model);
  app.setErrorHandler((error, _request, reply) => errorReply(reply, error));
  // Once closing, each reply ends its connection, so a keep-alive client does not hold the server open after it.
  let closing = false;
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    requests.inc({ route, status: String(reply.statusCode) });
    latency.observe({ route }, reply.elapsedTime / 1000);
  });

  app.get('/healthz', async () => ({
    status: 'ok',
    kind: model.description.kind,
    modalities: model.description.modalities,
    ...model.stats,
  }));
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.post('/v1/embed', async (request) => {
    const { embedding, columns } = await model.embed(await inputsOf(request));
    return { embedding: Array.from(embedding), columns };
  });
  app.post('/v1/classify', async (request) => {
    const { probabilities, classNames, label } = await model.classify(await inputsOf(request));
    return { label, probabilities: Object.fromEntries(classNames.map((c, i) => [c, probabilities[i]])) };
  });
  return {
    app,
    model,
    close: async () => {
      closing = true;
      await app.close();
      await model.close();
    },
  };
}
