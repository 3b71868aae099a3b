/**
 * Python's pickle, restricted to what PyTorch state dicts are made of, as `torch.load(weights_only=True)` restricts
 * it: containers (dict, OrderedDict, list, tuple, set), primitives, and a short list of globals (the tensor rebuild
 * functions, the storage classes, OrderedDict, `_codecs.encode` for bytes). Nothing is executed: an allowed global is
 * a name, and REDUCE of one builds a plain value; any other global, and any opcode outside what protocols 0 to 5 use
 * for these values, stops the load with a FileError naming it. The writer emits protocol 2, as `torch.save` does.
 */
import { FileError } from '../errors.js';

/** A Python global an allowed pickle names (`module.name`). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A Python tuple (JS arrays are lists). */
export class PyTuple extends Array<unknown> {}

/** `callable(*args)` for an allowed callable, kept for the caller (lib/io/pytorch.ts) to interpret. */
export class PyCall {
  constructor(
    readonly callable: PyGlobal,
    readonly args: unknown[],
  ) {}
}

/** A persistent id (PyTorch's storages), resolved by the caller. */
export class PyPersistent {
  constructor(readonly id: unknown) {}
}

export interface UnpickleOptions {
  /** The globals that may appear ('module.name'); anything else is refused. */
  allowed: ReadonlySet<string>;
  /** Where the bytes came from, for errors. */
  where: string;
}

const MAX_DEPTH = 1_000_000; // stack and memo entries: a state dict has a few per tensor

/** The value `bytes` pickle, with allowed globals and persistent ids left as PyCall / PyPersistent nodes. */
export function unpickle(bytes: Uint8Array, { allowed, where }: UnpickleOptions): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const fail = (message: string): never => {
    throw new FileError(where, `pickle at byte ${pos}: ${message}`);
  };
  let pos = 0;
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`truncated (${n} bytes needed, ${bytes.length - pos} left)`);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`a length of ${v} bytes, beyond the pickle's end`);
    return Number(v);
  };
  const take = (n: number) => (need(n), bytes.subarray((pos += n) - n, pos));
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated (a line without its end)');
    const text = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return decoder.decode(b);
    } catch {
      return fail('a string that is not UTF-8');
    }
  };

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const push = (v: unknown) => {
    if (stack.length >= MAX_DEPTH) fail('too deep');
    stack.push(v);
  };
  const pop = () => (stack.length === 0 ? fail('the stack is empty') : stack.pop());
  const top = () => (stack.length === 0 ? fail('the stack is empty') : stack[stack.length - 1]);
  const popMark = () => {
    if (marks.length === 0) fail('no mark');
    return stack.splice(marks.pop()!);
  };
  const global = (module: string, name: string) => {
    const g = `${module}.${name}`;
    if (!allowed.has(g))
      fail(
        `refuses the global '${g}': only tensors, storages and plain containers load (as torch.load(weights_only=True)); nothing was executed`,
      );
    return new PyGlobal(module, name);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) return fail('SETITEM(S) on something other than a dict');
    if (items.length % 2 !== 0) fail('an odd number of dict items');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const memoize = (key: number) => {
    if (memo.size >= MAX_DEPTH) fail('too many memo entries');
    memo.set(key, top());
  };
  const recall = (key: number) => (memo.has(key) ? memo.get(key) : fail(`memo entry ${key} is unset`));

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('a pickle protocol above 5');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        const b = take(u8());
        let v = 0n;
        for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
        push(Number.isSafeInteger(Number(v)) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(take(u64())));
        break;
      case 0x54: // BINSTRING
        push(new TextDecoder('latin1').decode(take(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(new TextDecoder('latin1').decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple());
        break;
      case 0x85: // TUPLE1
        push(PyTuple.from([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(PyTuple.from([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop(),
          b = pop();
        push(PyTuple.from([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(PyTuple.from(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list) || list instanceof PyTuple) fail('APPEND to something other than a list');
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list) || list instanceof PyTuple) fail('APPENDS to something other than a list');
        (list as unknown[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop(),
          k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) fail('ADDITEMS to something other than a set');
        items.forEach((i) => (set as Set<unknown>).add(i));
        break;
      }
      case 0x91: // FROZENSET
        push(new Set(popMark()));
        break;
      case 0x71: // BINPUT
        memoize(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoize(u32());
        break;
      case 0x94: // MEMOIZE
        memoize(memo.size);
        break;
      case 0x68: // BINGET
        push(recall(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(recall(u32()));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL of non-strings');
        push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop(),
          callable = pop();
        if (!(callable instanceof PyGlobal)) fail('REDUCE of something that is not an allowed global');
        if (!(args instanceof PyTuple)) fail('REDUCE with arguments that are not a tuple');
        push(reduce(callable as PyGlobal, [...(args as PyTuple)]));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args), for the allowed classes only (OrderedDict)
        const args = pop(),
          cls = pop();
        if (!(cls instanceof PyGlobal) || !(args instanceof PyTuple)) fail('NEWOBJ of something not allowed');
        push(reduce(cls as PyGlobal, [...(args as PyTuple)]));
        break;
      }
      case 0x62: {
        // BUILD: state set on an object; for a dict (OrderedDict's _metadata), kept aside as its attributes
        const state = pop();
        const target = top();
        if (!(target instanceof Map)) fail('BUILD on something other than a dict');
        (target as Map<unknown, unknown> & { attributes?: unknown }).attributes = state;
        break;
      }
      case 0x51: // BINPERSID
        push(new PyPersistent(pop()));
        break;
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not one a state dict needs`);
    }
  }
}

/** REDUCE of an allowed global: containers are built, everything else is kept as a call for the caller. */
function reduce(callable: PyGlobal, args: unknown[]): unknown {
  const name = callable.toString();
  if (name === 'collections.OrderedDict' || name === 'builtins.dict') {
    const d = new Map();
    const items = args[0];
    if (Array.isArray(items)) for (const pair of items) if (Array.isArray(pair)) d.set(pair[0], pair[1]);
    return d;
  }
  if (name === '_codecs.encode' && typeof args[0] === 'string') return Uint8Array.from(args[0], (c) => c.charCodeAt(0));
  return new PyCall(callable, args);
}

// ---- writing (protocol 2) ---------------------------------------------------------------------------------------

/** What the writer emits: a value tree of these node kinds. */
export type PickleValue =
  | null
  | boolean
  | number
  | string
  | PickleValue[]
  | PyTuple
  | Map<string, PickleValue>
  | PyCall
  | PyGlobal
  | PyPersistent;

/** Protocol-2 bytes for `value` (no memo: each value is written where it appears). */
export function pickle(value: PickleValue): Uint8Array {
  const out: number[] = [0x80, 2];
  const encoder = new TextEncoder();
  const u32 = (n: number) => out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  const write = (v: unknown): void => {
    if (v === null) out.push(0x4e);
    else if (v === true) out.push(0x88);
    else if (v === false) out.push(0x89);
    else if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
        if (!Number.isSafeInteger(v)) throw new TypeError(`pickle: ${v} is not an integer pickle writes here`);
        const bytes: number[] = [];
        let x = BigInt(v);
        for (let i = 0; i < 8; i++, x >>= 8n) bytes.push(Number(x & 0xffn));
        out.push(0x8a, 8, ...bytes); // LONG1
      } else if (v >= 0 && v < 256) out.push(0x4b, v);
      else {
        out.push(0x4a);
        u32(v);
      }
    } else if (typeof v === 'string') {
      const b = encoder.encode(v);
      out.push(0x58);
      u32(b.length);
      out.push(...b);
    } else if (v instanceof PyTuple) {
      out.push(0x28);
      v.forEach(write);
      out.push(0x74);
    } else if (Array.isArray(v)) {
      out.push(0x5d, 0x28);
      v.forEach(write);
      out.push(0x65);
    } else if (v instanceof Map) {
      write(new PyCall(new PyGlobal('collections', 'OrderedDict'), []));
      if (v.size > 0) {
        out.push(0x28);
        v.forEach((value, key) => (write(key), write(value)));
        out.push(0x75);
      }
    } else if (v instanceof PyGlobal) {
      out.push(0x63, ...encoder.encode(`${v.module}\n${v.name}\n`));
    } else if (v instanceof PyCall) {
      write(v.callable);
      write(PyTuple.from(v.args));
      out.push(0x52);
    } else if (v instanceof PyPersistent) {
      write(v.id);
      out.push(0x51);
    } else throw new TypeError(`pickle: cannot write ${String(v)}`);
  };
  write(value);
  out.push(0x2e);
  return Uint8Array.from(out);
}
