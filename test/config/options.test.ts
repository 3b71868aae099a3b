/**
 * The option tables: every flag parses its example into the value at its key, defaults satisfy their kinds, and a bad
 * value names its key and the file it came from.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Command } from 'commander';

import { addConfigFlags, commandLineValues } from '../../lib/cli/options.js';
import {
  FINETUNE_OPTIONS,
  PRETRAIN_OPTIONS,
  readConfigFile,
  resolveFinetuneConfig,
  resolvePretrainConfig,
} from '../../lib/config/index.js';
import { defaultsOf, flagsOf, leaves, type Schema } from '../../lib/config/schema.js';
import type { ArgumentError } from '../../lib/errors.js';

const TABLES = [
  { name: 'pretrain', schema: PRETRAIN_OPTIONS as Schema, resolve: resolvePretrainConfig },
  { name: 'finetune', schema: FINETUNE_OPTIONS as Schema, resolve: resolveFinetuneConfig },
];
const BASE = { data: 'data', modalities: ['s1', 's2'] };
const at = (value: unknown, key: string) =>
  key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], value);

for (const { name, schema, resolve } of TABLES) {
  test(`${name}: every flag sets its key to its example (each flag alone, through commander)`, (t) => {
    const flags = flagsOf(schema);
    t.true(flags.length >= 20, `${flags.length} flags`);
    t.is(new Set(flags.map((f) => f.flag)).size, flags.length, 'flags are unique');
    for (const { key, flag, option } of flags) {
      const command = addConfigFlags(new Command(name).exitOverride(), schema);
      const bool = option.kind.expected === 'a boolean';
      const args = bool ? [option.default ? `--no-${flag}` : `--${flag}`] : [`--${flag}`, option.kind.example!];
      t.truthy(bool || option.kind.example, `${key} has an example`);
      command.parse(args, { from: 'user' });
      const config = resolve(BASE, commandLineValues(command, schema));
      const expected = bool
        ? !option.default
        : option.kind.record
          ? { ...(option.default as object), ...(option.kind.parse!(option.kind.example!) as object) }
          : option.kind.parse
            ? option.kind.parse(option.kind.example!)
            : option.kind.example;
      t.deepEqual(at(config, key), expected, `${args.join(' ')} sets ${key}`);
      t.notDeepEqual(at(config, key), option.default, `${args.join(' ')} changes ${key} from its default`);
    }
  });

  test(`${name}: defaults satisfy their kinds; flags not given leave a file's values alone`, (t) => {
    const defaults = defaultsOf(schema);
    for (const { key, option } of leaves(schema))
      if (option.default !== undefined) t.true(option.kind.valid(at(defaults, key)), key);
    const command = addConfigFlags(new Command(name).exitOverride(), schema);
    command.parse([], { from: 'user' });
    t.deepEqual(commandLineValues(command, schema).values, {});
    t.is(resolve(BASE, { epochs: 7 }, commandLineValues(command, schema)).epochs, 7);
  });

  test(`${name}: a bad value in a file names the key and the file; unknown keys are named with the known ones`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mmssl-config-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'run.yaml');
    writeFileSync(file, 'optimizer:\n  lr: -1\n');
    return readConfigFile(file).then((layer) => {
      const error = t.throws<ArgumentError>(() => resolve(BASE, layer), {
        code: 'ERR_MMSSL_ARG',
        message: new RegExp(
          `optimizer\\.lr in ${file.replace(/[.]/g, '\\.')} must be a finite number > 0, got number -1`,
        ),
      });
      t.is(error?.field, 'optimizer.lr');
      t.is(error?.path, file);
      t.throws(() => resolve(BASE, { optimzer: {} }), {
        code: 'ERR_MMSSL_ARG',
        message: /key must be one of .*'optimizer'.*, got string 'optimzer'/,
      });
      t.throws(() => resolve(BASE, { optimizer: { rate: 1 } }), {
        code: 'ERR_MMSSL_ARG',
        message: /optimizer key must be one of 'name', 'lr', 'momentum', 'weightDecay', got string 'rate'/,
      });
      t.throws(() => resolve(BASE, { optimizer: 0.1 }), {
        code: 'ERR_MMSSL_ARG',
        message: /optimizer must be an object of name, lr, momentum, weightDecay/,
      });
      t.throws(() => resolve({ modalities: ['s1'] }), {
        code: 'ERR_MMSSL_ARG',
        message: /data must be given \(the dataset/,
      });
      t.throws(() => resolve(BASE, { sizes: { naip: [0, 4] } }), {
        code: 'ERR_MMSSL_ARG',
        message: /sizes must be an object of \[height, width\]/,
      });
      t.deepEqual(
        resolve(BASE, { sizes: { s1: [8, 8] } }).sizes,
        { naip: [128, 128], s1: [8, 8] },
        'sizes add to the defaults',
      );
    });
  });
}

test('a bad flag value is refused by commander with what is expected', (t) => {
  const command = addConfigFlags(
    new Command('pretrain').exitOverride().configureOutput({ writeErr: () => undefined }),
    PRETRAIN_OPTIONS,
  );
  t.throws(() => command.parse(['--lr', '-2'], { from: 'user' }), {
    message: /a finite number > 0 is expected, got number -2/,
  });
  t.throws(() => command.parse(['--size', 'naip=0x3'], { from: 'user' }), {
    message: /\[height, width\] \(positive integers\) is expected, got array of length 2/,
  });
  t.throws(() => command.parse(['--optimizer', 'rmsprop'], { from: 'user' }), {
    message: /one of 'sgd', 'adam', 'adamw', 'lars' is expected/,
  });
});
