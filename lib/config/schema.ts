/**
 * Option tables: each option declared once, with its kind, default, description and command-line flag. From a table
 * come the configuration's TypeScript type (`ConfigOf`), its defaults, its validation (a message naming the key and
 * the file it came from), the commander flags with their help, and the reference page in docs/.
 *
 * A small table of ours rather than zod or valibot: those would give the type and the checks, but the flags, the
 * help text and the reference would still be a second declaration mapped by hand.
 */
import { InvalidArgumentError } from 'commander';

import { describe, invalidArg, isObject } from '../errors.js';

/** What a value may be: the check (undefined when the value is right, else what was expected) and its CLI parser. */
export interface Kind<T> {
  /** 'an integer >= 1', shown in messages and in the reference. */
  readonly expected: string;
  readonly valid: (value: unknown) => boolean;
  /** The command-line text as a value (absent: the flag takes the text as it is). */
  readonly parse?: (text: string) => unknown;
  /** The flag's placeholder: `<n>`. */
  readonly placeholder?: string;
  /** A valid command-line text (the reference shows it; the tests give it to every flag). */
  readonly example?: string;
  /** A record of values of this kind per name, whose entries a later layer adds to rather than replaces (sizes). */
  readonly record?: Kind<unknown>;
  /** What null means, where null is allowed ("LibTorch's choice"). */
  readonly nullMeans?: string;
  /** A phantom: the value's type. */
  readonly type?: T;
}

export interface Option<T> {
  readonly kind: Kind<T>;
  /** Absent: the option has no default and must be given (data, modalities). */
  readonly default?: T;
  readonly doc: string;
  /** The command-line flag without its dashes ('lr'), or null for a file-only option. */
  readonly flag: string | null;
}

export type Schema = { readonly [key: string]: Option<unknown> | Schema };

/** The configuration a table describes. */
export type ConfigOf<S extends Schema> = {
  -readonly [K in keyof S]: S[K] extends Option<infer T> ? T : S[K] extends Schema ? ConfigOf<S[K]> : never;
};

const isOption = (entry: Option<unknown> | Schema): entry is Option<unknown> =>
  'kind' in entry && 'doc' in entry && 'flag' in entry;

/**
 * An option of `kind`: `flag` true names its flag after the key (`batchSize` → `--batch-size`), a string names it,
 * false leaves it to files.
 */
export function option<T>(
  kind: Kind<T>,
  defaultValue: T | undefined,
  doc: string,
  flag: boolean | string = true,
): Option<T> {
  return {
    kind,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
    doc,
    flag: flag === false ? null : flag === true ? '' : flag,
  };
}

// --- kinds ---

const number = (expected: string, valid: (n: number) => boolean, integer: boolean, example: string): Kind<number> => ({
  expected,
  example,
  valid: (v) => typeof v === 'number' && Number.isFinite(v) && (!integer || Number.isSafeInteger(v)) && valid(v),
  parse: (text) => (/^\s*$/.test(text) ? NaN : Number(text)),
  placeholder: integer ? '<n>' : '<x>',
});

export const int = (min: number): Kind<number> =>
  number(min === 0 ? 'an integer >= 0' : `an integer >= ${min}`, (n) => n >= min, true, String(min + 3));
export const positive: Kind<number> = number('a finite number > 0', (n) => n > 0, false, '0.05');
export const nonNegative: Kind<number> = number('a finite number >= 0', (n) => n >= 0, false, '0.001');
export const fraction: Kind<number> = number('a number in (0, 1]', (n) => n > 0 && n <= 1, false, '0.5');
export const probability: Kind<number> = number('a probability in [0, 1)', (n) => n >= 0 && n < 1, false, '0.25');
export const bool: Kind<boolean> = { expected: 'a boolean', valid: (v) => typeof v === 'boolean' };
export const text = (expected: string, placeholder: string, example: string): Kind<string> => ({
  expected,
  valid: (v) => typeof v === 'string' && v !== '',
  placeholder,
  example,
});

export function oneOf<const T extends string>(values: readonly T[]): Kind<T> {
  return {
    expected: `one of ${values.map((v) => `'${v}'`).join(', ')}`,
    valid: (v) => values.includes(v as T),
    placeholder: `<${values.join('|')}>`,
    example: values.at(-1),
  };
}

export const names: Kind<string[]> = {
  expected: 'a non-empty list of names',
  valid: (v) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s !== ''),
  parse: (text) =>
    text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  placeholder: '<list>',
  example: 's1,s2',
};

/** A kind, or null. */
export function nullable<T>(kind: Kind<T>, meaning: string): Kind<T | null> {
  return {
    ...kind,
    expected: `${kind.expected}, or null (${meaning})`,
    valid: (v) => v === null || kind.valid(v),
    nullMeans: meaning,
    type: undefined,
  };
}

/** `'auto'`, or a value of `kind`. */
export function orAuto<T>(kind: Kind<T>, meaning: string): Kind<T | 'auto'> {
  return {
    ...kind,
    expected: `'auto' (${meaning}) or ${kind.expected}`,
    valid: (v) => v === 'auto' || kind.valid(v),
    placeholder: `${kind.placeholder?.slice(0, -1) ?? '<value'}|auto>`,
    parse: (t) => (t === 'auto' ? t : kind.parse ? kind.parse(t) : t),
    type: undefined,
  };
}

/** A record of values per name (modality), `name=VALUE` on the command line (repeatable). */
export function perName<T>(kind: Kind<T>, placeholder: string, example: string): Kind<Record<string, T>> {
  return {
    expected: `an object of ${kind.expected} per modality`,
    record: kind,
    placeholder,
    example,
    valid: (v) => isObject(v) && Object.values(v).every(kind.valid),
    parse: (entry) => {
      const at = entry.indexOf('=');
      if (at < 1) throw new InvalidArgumentError(`MODALITY=VALUE is expected, e.g. ${example}.`);
      return { [entry.slice(0, at)]: kind.parse ? kind.parse(entry.slice(at + 1)) : entry.slice(at + 1) };
    },
  };
}

/** [height, width], `HxW` on the command line. */
export const size: Kind<[number, number]> = {
  expected: '[height, width] (positive integers)',
  example: '32x48',
  valid: (v) => Array.isArray(v) && v.length === 2 && v.every((n) => Number.isSafeInteger(n) && n >= 1),
  parse: (t) => (/^\d+x\d+$/.test(t) ? t.split('x').map(Number) : t),
};

// --- walking a table ---

interface Leaf {
  /** The dotted key: 'optimizer.lr'. */
  key: string;
  option: Option<unknown>;
}

export function leaves(schema: Schema, prefix = ''): Leaf[] {
  return Object.entries(schema).flatMap(([k, entry]) =>
    isOption(entry) ? [{ key: prefix + k, option: entry }] : leaves(entry, `${prefix}${k}.`),
  );
}

/** The defaults of a table (options without one left out). */
export function defaultsOf<S extends Schema>(schema: S): Partial<ConfigOf<S>> {
  const out: Record<string, unknown> = {};
  for (const [k, entry] of Object.entries(schema)) {
    if (!isOption(entry)) out[k] = defaultsOf(entry);
    else if (entry.default !== undefined) out[k] = structuredClone(entry.default);
  }
  return out as Partial<ConfigOf<S>>;
}

/** A layer of values and where they came from (a file's path; undefined for values given in code). */
export interface ConfigLayer {
  values: Record<string, unknown>;
  source?: string;
}

/** Values read from a file (or the command line): messages about them name `source`. */
export class ConfigSource implements ConfigLayer {
  constructor(
    readonly source: string,
    readonly values: Record<string, unknown>,
  ) {}
}

/** Plain values (given in code), or values with their source. */
export type ConfigValues = Record<string, unknown> | ConfigSource;

const asLayer = (l: ConfigValues): ConfigLayer => (l instanceof ConfigSource ? l : { values: l });

/**
 * The table's defaults, then each layer in order, merged key by key (records merged entry by entry); every key
 * checked, an unknown one named with what is known (a typo would otherwise be ignored), every value checked against
 * its kind with a message naming the key and the layer it came from.
 */
export function resolve<S extends Schema>(op: string, schema: S, layers: readonly ConfigValues[]): ConfigOf<S> {
  const merged = defaultsOf(schema) as Record<string, unknown>;
  const sources = new Map<string, string | undefined>();
  for (const layer of layers.map(asLayer)) {
    if (!isObject(layer.values)) throw invalidArg(op, 'config', 'an object', layer.values, layer.source);
    mergeInto(op, schema, merged, layer, '', sources);
  }
  for (const { key, option } of leaves(schema)) {
    const value = key.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), merged);
    if (!option.kind.valid(value)) {
      throw value === undefined && option.default === undefined
        ? invalidArg(op, key, `given (${option.doc.replace(/\.$/, '')}; ${option.kind.expected})`, value)
        : invalidArg(op, key, option.kind.expected, value, sources.get(key));
    }
  }
  return merged as ConfigOf<S>;
}

function mergeInto(
  op: string,
  schema: Schema,
  target: Record<string, unknown>,
  layer: ConfigLayer,
  prefix: string,
  sources: Map<string, string | undefined>,
): void {
  const values =
    prefix === ''
      ? layer.values
      : (prefix
          .slice(0, -1)
          .split('.')
          .reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], layer.values) as Record<string, unknown>);
  for (const [k, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const key = prefix + k;
    if (!Object.hasOwn(schema, k)) {
      throw invalidArg(
        op,
        prefix === '' ? 'key' : `${prefix.slice(0, -1)} key`,
        `one of ${Object.keys(schema)
          .map((n) => `'${n}'`)
          .join(', ')}`,
        k,
        layer.source,
      );
    }
    const entry = schema[k];
    if (isOption(entry)) {
      target[k] =
        entry.kind.record && isObject(value) && isObject(target[k])
          ? { ...target[k], ...value }
          : structuredClone(value);
      sources.set(key, layer.source);
    } else {
      if (!isObject(value))
        throw invalidArg(op, key, `an object of ${Object.keys(entry).join(', ')}`, value, layer.source);
      if (!isObject(target[k])) target[k] = {};
      mergeInto(op, entry, target[k] as Record<string, unknown>, layer, `${key}.`, sources);
    }
  }
}

// --- the command line ---

/** The options that have a flag, with their flag names. */
export function flagsOf(schema: Schema): { key: string; flag: string; option: Option<unknown> }[] {
  return leaves(schema).flatMap(({ key, option }) =>
    option.flag === null ? [] : [{ key, option, flag: option.flag || kebab(key.split('.').at(-1)!) }],
  );
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** A value as the reference and the help show it. */
export function formatValue(value: unknown, kind?: Kind<unknown>): string {
  if (value === null && kind?.nullMeans) return kind.nullMeans;
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 2 && value.every((n) => typeof n === 'number'))
    return `${value[0]}x${value[1]}`;
  if (isObject(value))
    return (
      Object.entries(value)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(',') || 'none'
    );
  return JSON.stringify(value);
}

/** The help line of an option: its description and its default (a flag turning off what is on says so). */
export function helpOf(option: Option<unknown>): string {
  if (option.default === undefined) return option.doc;
  if (option.kind === bool) return option.default ? `turns off: ${option.doc}` : option.doc;
  return `${option.doc} (default ${formatValue(option.default, option.kind)})`;
}

/** Commander's flag syntax for an option: `--lr <x>`, `--no-augment` for a boolean on by default. */
export function flagSyntax(flag: string, option: Option<unknown>): string {
  if (option.kind === bool) return option.default === true ? `--no-${flag}` : `--${flag}`;
  return `--${flag} ${option.kind.placeholder ?? '<value>'}`;
}

/** The parser commander calls for a flag's text: the kind's, checked, with commander's error when wrong. */
export function flagParser(option: Option<unknown>): ((text: string, previous: unknown) => unknown) | undefined {
  if (option.kind === bool) return undefined;
  return (text, previous) => {
    const value = option.kind.parse ? option.kind.parse(text) : text;
    const [kind, checked] = option.kind.record
      ? [option.kind.record, Object.values(value as object)[0]]
      : [option.kind, value];
    if (!kind.valid(checked)) throw new InvalidArgumentError(`${kind.expected} is expected, got ${describe(checked)}.`);
    return option.kind.record ? { ...(previous as object | undefined), ...(value as object) } : value;
  };
}

/**
 * The values commander parsed, as a layer of the configuration: each flag given is set at its key; flags not given
 * are left out so that a file's value or the default applies.
 */
export function valuesFromFlags(
  schema: Schema,
  parsed: Record<string, unknown>,
  given: (flag: string) => boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, flag } of flagsOf(schema)) {
    if (!given(flag)) continue;
    const path = key.split('.');
    let at = out;
    for (const k of path.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = parsed[camel(flag)];
  }
  return out;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
