/** `mmssl serve`: a run behind HTTP (lib/serve/server.ts), until Ctrl-C or SIGTERM, which finish the requests in flight. */
import { type Command, Option } from 'commander';

import { PRECISIONS, type Precision } from '../torch/amp.js';

import { integer } from './options.js';

interface ServeFlags {
  init: string;
  port: number;
  host: string;
  workers?: number;
  maxBatch?: number;
  maxDelayMs?: number;
  maxQueue?: number;
  bodyLimitMb?: number;
  precision: Precision;
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('serve a pre-trained or fine-tuned run: POST /v1/embed, /v1/classify; GET /healthz, /metrics')
    .requiredOption('--init <run>', 'a pre-training run folder or a fine-tuning output folder')
    .option('--port <n>', 'TCP port (0 picks a free one)', integer(0), 8080)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--workers <n>', 'inference worker threads, each with the model (default 1)', integer(1))
    .option('--max-batch <n>', 'largest batch a worker runs (default 16)', integer(1))
    .option('--max-delay-ms <n>', 'how long a request may wait for others to batch with (default 5)', integer(0))
    .option('--max-queue <n>', 'requests waiting beyond this get 503 (default 256)', integer(1))
    .option('--body-limit-mb <n>', 'largest request body in MiB (default 64)', integer(1))
    .addOption(
      new Option('--precision <precision>', "inference precision ('bf16-mixed': autocast to bfloat16)")
        .choices(PRECISIONS)
        .default('32'),
    )
    .action(async (f: ServeFlags) => {
      const { createServer } = await import('../serve/server.js');
      const server = await createServer({
        init: f.init,
        workers: f.workers,
        maxBatch: f.maxBatch,
        maxDelayMs: f.maxDelayMs,
        maxQueue: f.maxQueue,
        precision: f.precision,
        bodyLimit: f.bodyLimitMb === undefined ? undefined : f.bodyLimitMb << 20,
      });
      const address = await server.app.listen({ port: f.port, host: f.host });
      const { kind, modalities } = server.model.description;
      console.log(`mmssl serve: ${kind} run ${f.init} (${modalities.join(', ')}) on ${address}`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          console.error('mmssl serve: finishing the requests in flight');
          process.off('SIGINT', stop).off('SIGTERM', stop);
          void server.close().then(resolve);
        };
        process.on('SIGINT', stop).on('SIGTERM', stop);
      });
    });
}
