import test from 'ava';

import { StateDictError, nn, optim, torch } from '../../lib/index.js';
import { maxRelErr, values } from '../helpers/reference.js';

const { tidy } = torch;
const live = () => torch.memoryStats().tensors;
const names = (entries: [string, unknown][]) => entries.map(([name]) => name);

/** A parameter, a persistent and a non-persistent buffer, an absent parameter and a submodule, in that order. */
class Block extends nn.Module {
  readonly scale = this.registerParameter('scale', torch.ones([3]));
  readonly count = this.registerBuffer('count', torch.zeros([1]));
  readonly scratch = this.registerBuffer('scratch', torch.zeros([2]), { persistent: false });
  readonly absent = this.registerParameter('absent', null);
  readonly inner = this.registerModule('inner', new nn.Linear(3, 2));

  forward(x: torch.Tensor): torch.Tensor {
    return this.inner.forward(x.mul(this.scale));
  }
}

class Net extends nn.Module {
  readonly a = this.registerModule('a', new Block());
  readonly bias = this.registerParameter('bias', torch.zeros([2]));
  readonly b = this.registerModule('b', new Block());

  forward(x: torch.Tensor): torch.Tensor {
    return this.b.forward(this.a.forward(x).sum(1, { keepdim: true }).expand(-1, 3)).add(this.bias);
  }
}

test.serial(
  'members are listed in registration order under dotted names; the state dict puts own members first',
  (t) => {
    const net = new Net();
    t.deepEqual(names(net.namedParameters()), [
      'bias',
      'a.scale',
      'a.inner.weight',
      'a.inner.bias',
      'b.scale',
      'b.inner.weight',
      'b.inner.bias',
    ]);
    t.deepEqual(names(net.namedBuffers()), ['a.count', 'a.scratch', 'b.count', 'b.scratch']);
    t.deepEqual(
      [...net.stateDict().keys()],
      [
        'bias',
        'a.scale',
        'a.count',
        'a.inner.weight',
        'a.inner.bias',
        'b.scale',
        'b.count',
        'b.inner.weight',
        'b.inner.bias',
      ],
    );
    t.deepEqual(names(net.namedModules()), ['', 'a', 'a.inner', 'b', 'b.inner']);
    t.deepEqual(net.modules(), [net, net.a, net.a.inner, net.b, net.b.inner]);
    t.deepEqual(names(net.namedChildren()), ['a', 'b']);
    t.deepEqual(net.children(), [net.a, net.b]);
    t.deepEqual(names(net.namedParameters({ prefix: 'net', recurse: false })), ['net.bias']);
    t.deepEqual(names(net.a.namedBuffers({ recurse: false })), ['count', 'scratch']);
    t.deepEqual(names(net.namedModules({ prefix: 'm' })), ['m', 'm.a', 'm.a.inner', 'm.b', 'm.b.inner']);
    t.is(net.parameters()[1], net.a.scale, 'the registered tensor itself, not a copy');
    t.is(net.stateDict().get('a.count'), net.a.count);
    t.true(net.parameters().every((p) => p.requiresGrad && p.isLeaf));
    t.false(net.a.count.requiresGrad);
    net.dispose();
  },
);

test.serial('shared parameters and modules are listed once, but the state dict has every path, as in PyTorch', (t) => {
  class Tied extends nn.Module {
    readonly enc = this.registerModule('enc', new nn.Linear(4, 4));
    readonly dec = this.registerModule('dec', this.enc);
    readonly w = this.registerParameter('w', this.enc.weight);
    forward(x: torch.Tensor) {
      return this.dec.forward(this.enc.forward(x));
    }
  }
  const tied = new Tied();
  t.deepEqual(names(tied.namedParameters()), ['w', 'enc.bias']);
  t.deepEqual(names(tied.namedModules()), ['', 'enc']);
  t.deepEqual(names(tied.namedChildren()), ['enc']);
  t.deepEqual([...tied.stateDict().keys()], ['w', 'enc.weight', 'enc.bias', 'dec.weight', 'dec.bias']);
  tied.dispose();
});

test.serial('train() and eval() set the mode on the whole tree, and the layers follow it', (t) => {
  tidy(() => {
    const inner = new nn.Sequential(new nn.Dropout(0.5), new nn.BatchNorm1d(4));
    const model = new nn.Sequential(new nn.Linear(4, 4), inner);
    t.true(
      model.modules().every((m) => m.training),
      'modules start in training mode',
    );
    t.is(model.eval(), model);
    t.true(model.modules().every((m) => !m.training));
    const x = torch.randn([8, 4]);
    const before = values(inner.forward(x));
    t.deepEqual(values(inner.forward(x)), before, 'eval mode is deterministic (no dropout, running statistics)');
    t.is(inner.at(1).buffers()[2].item(), 0, 'eval mode does not count batches');
    model.train();
    t.true(model.modules().every((m) => m.training));
    model.train(false);
    t.true(model.modules().every((m) => !m.training));
    model.dispose();
  });
});

test.serial("to('float64') converts in place: held parameters see it, an optimizer holding them keeps working", (t) => {
  tidy(() => {
    const model = new nn.Sequential(new nn.Linear(3, 2), new nn.BatchNorm1d(2));
    const held = model.parameters();
    const before = held.map(values);
    const sgd = new optim.SGD(held, { lr: 0.5 });
    model
      .forward(torch.randn([4, 3]))
      .sum()
      .backward();
    t.is(model.to('float64'), model);
    t.deepEqual(model.parameters(), held, 'the same Tensor objects');
    t.true(held.every((p) => p.dtype === 'float64' && p.requiresGrad && p.grad!.dtype === 'float64'));
    t.deepEqual(held.map(values), before, 'values are kept');
    const buffers = Object.fromEntries(model.namedBuffers().map(([k, b]) => [k, b.dtype]));
    t.deepEqual(buffers, { '1.running_mean': 'float64', '1.running_var': 'float64', '1.num_batches_tracked': 'int64' });
    model.zeroGrad();
    model
      .forward(torch.randn([4, 3], { dtype: 'float64' }))
      .sum()
      .backward();
    const weight = values(held[0]),
      grad = values(held[0].grad!);
    sgd.step();
    t.deepEqual(
      values(held[0]),
      weight.map((w, i) => w - 0.5 * grad[i]),
      'the optimizer updates the float64 tensors',
    );
    model.to({ dtype: 'float32', device: 'cpu' });
    t.true(held.every((p) => p.dtype === 'float32'));
    t.throws(() => model.to('int64'), {
      code: 'ERR_MMSSL_ARG',
      message: /Module\.to: dtype must be a floating-point dtype/,
    });
    t.throws(() => model.to('gpu' as never), { code: 'ERR_MMSSL_ARG', message: /device/ });
    model.dispose();
  });
});

test.serial(
  "to({ memoryFormat: 'channelsLast' }) relays out the 4-D tensors only, keeping values and identity",
  (t) => {
    tidy(() => {
      torch.manualSeed(12);
      const model = new nn.Sequential(new nn.Conv2d(3, 4, 3), new nn.BatchNorm2d(4));
      const x = torch.randn([2, 3, 6, 6]);
      const before = values(model.eval().forward(x));
      const weight = model.parameters()[0];
      t.throws(() => model.to({ memoryFormat: 'nhwc' as never }), {
        code: 'ERR_MMSSL_ARG',
        message: /Module\.to: memoryFormat must be one of/,
      });
      t.true(weight.isContiguous(), 'a bad format moves nothing');
      model.to({ memoryFormat: 'channelsLast' });
      t.is(model.parameters()[0], weight);
      t.true(weight.isContiguous({ memoryFormat: 'channelsLast' }) && !weight.isContiguous());
      t.true(
        model
          .parameters()
          .slice(1)
          .every((p) => p.isContiguous()),
        '1-D tensors are left as they are',
      );
      // (another convolution algorithm: float32 rounding differs; relative to values of order 1, not to those near 0)
      const after = values(model.forward(x));
      t.true(maxRelErr(after, before, 1e-3) < 1e-5, `worst relative difference ${maxRelErr(after, before, 1e-3)}`);
      model.dispose();
    });
  },
);

test.serial('zeroGrad clears every gradient, to null by default or to zeros', (t) => {
  tidy(() => {
    const net = new Net();
    net
      .forward(torch.randn([2, 3]))
      .sum()
      .backward();
    t.true(net.parameters().every((p) => p.grad !== null));
    net.zeroGrad({ setToNone: false });
    t.true(net.parameters().every((p) => values(p.grad!).every((g) => g === 0)));
    net.zeroGrad();
    t.true(net.parameters().every((p) => p.grad === null));
    t.throws(() => net.zeroGrad({ setToNone: 1 as never }), { code: 'ERR_MMSSL_ARG' });
    net.dispose();
  });
});

test.serial('loadStateDict copies every key (converting dtype) and reports what did not match when not strict', (t) => {
  tidy(() => {
    const source = new Net(),
      target = new Net();
    const snapshot = new Map([...source.stateDict()].map(([k, v]) => [k, v.clone().double()]));
    t.deepEqual(target.loadStateDict(snapshot), { missingKeys: [], unexpectedKeys: [] });
    for (const [k, v] of target.stateDict()) t.deepEqual(values(v), values(source.stateDict().get(k)!), k);
    t.is(target.a.scale.dtype, 'float32', 'the module keeps its dtype');

    const fresh = new Net();
    const partial: Record<string, torch.Tensor> = Object.fromEntries(snapshot);
    delete partial['b.count'];
    partial['c.weight'] = torch.ones([1]);
    t.deepEqual(fresh.loadStateDict(partial, { strict: false }), {
      missingKeys: ['b.count'],
      unexpectedKeys: ['c.weight'],
    });
    t.deepEqual(values(fresh.b.inner.weight), values(source.b.inner.weight));
    for (const m of [source, target, fresh]) m.dispose();
  });
});

test.serial('loadStateDict checks everything first: a StateDictError names each problem and nothing is loaded', (t) => {
  tidy(() => {
    const net = new Net();
    const original = new Map([...net.stateDict()].map(([k, v]) => [k, values(v)]));
    const unchanged = () =>
      [...net.stateDict()].every(([k, v]) => JSON.stringify(values(v)) === JSON.stringify(original.get(k)));
    const other = new Net();
    const dict = new Map(other.stateDict());
    dict.delete('a.scale');
    dict.set('extra', torch.ones([1]));
    const error = t.throws(() => net.loadStateDict(dict), {
      instanceOf: StateDictError,
      code: 'ERR_MMSSL_STATE_DICT',
    })!;
    t.deepEqual(error.missingKeys, ['a.scale']);
    t.deepEqual(error.unexpectedKeys, ['extra']);
    t.regex(error.message, /does not fit Net \(nothing was loaded\)\. missing keys: a\.scale\. unexpected keys: extra/);
    t.true(unchanged());

    const wrongShape = new Map(other.stateDict());
    wrongShape.set('b.inner.weight', torch.ones([3, 2]));
    const mismatch = t.throws(() => net.loadStateDict(wrongShape, { strict: false }), { instanceOf: StateDictError })!;
    t.deepEqual(mismatch.shapeMismatches, ['b.inner.weight: [3, 2] in the state dict, [2, 3] in the module']);
    t.deepEqual([mismatch.missingKeys, mismatch.unexpectedKeys], [[], []]);
    t.true(unchanged(), 'the keys that did fit were not loaded either');

    t.throws(() => net.loadStateDict({ bias: [1, 2] as never }, { strict: false }), {
      code: 'ERR_MMSSL_ARG',
      message: /stateDict\['bias'\] must be a Tensor/,
    });
    t.throws(() => net.loadStateDict(null as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => net.loadStateDict(dict, { strict: 'no' as never }), { code: 'ERR_MMSSL_ARG' });
    t.true(unchanged());
    net.dispose();
    other.dispose();
  });
});

test.serial('apply visits children before their parent', (t) => {
  const net = new Net();
  const seen: string[] = [];
  t.is(
    net.apply((m) => seen.push(m.constructor.name)),
    net,
  );
  t.deepEqual(seen, ['Linear', 'Block', 'Linear', 'Block', 'Net']);
  t.throws(() => net.apply('x' as never), { code: 'ERR_MMSSL_ARG' });
  net.dispose();
});

test.serial('registration checks names, kinds and leaves', (t) => {
  class Probe extends nn.Module {
    forward() {
      return null;
    }
  }
  tidy(() => {
    const m = new Probe();
    const first = m.registerParameter('w', torch.ones([2]));
    t.throws(() => m.registerParameter('a.b', torch.ones([1])), {
      code: 'ERR_MMSSL_ARG',
      message: /name must be a non-empty string without '\.'/,
    });
    t.throws(() => m.registerBuffer('', torch.ones([1])), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.registerBuffer('w', torch.ones([1])), {
      code: 'ERR_MMSSL_ARG',
      message: /no other parameter, buffer or submodule/,
    });
    t.throws(() => m.registerModule('w', new Probe()), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.registerParameter('v', torch.ones([2], { requiresGrad: true }).mul(2)), {
      code: 'ERR_MMSSL_ARG',
      message: /a leaf tensor/,
    });
    t.throws(() => m.registerParameter('v', [1] as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.registerParameter('v', torch.ones([2], { dtype: 'int64' })), {
      code: 'ERR_MMSSL_ARG',
      message: /a floating-point tensor \(only those have gradients\), got string 'int64'/,
    });
    t.throws(() => m.registerBuffer('v', torch.ones([1]), { persistent: 1 as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.registerModule('v', {} as never), { code: 'ERR_MMSSL_ARG', message: /a Module or null/ });
    t.throws(() => m.namedParameters({ prefix: 3 as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.parameters({ recurse: 'yes' as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.buffers({ recurse: 1 as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.namedBuffers({ prefix: null as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => m.namedModules({ prefix: 1 as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /Module\.namedModules: prefix must be a string/,
    });
    t.throws(() => m.train('yes' as never), { code: 'ERR_MMSSL_ARG' });
    m.registerParameter('w', torch.zeros([3]));
    t.deepEqual(
      m.parameters().map((p) => p.shape),
      [[3]],
      'a parameter can be replaced by another',
    );
    m.dispose();
    first.dispose();
  });
});

test.serial('members survive the tidy() that built them; dispose() frees every tensor of the tree', (t) => {
  const before = live();
  let net: Net | undefined;
  tidy(() => {
    net = new Net();
    net
      .forward(torch.randn([2, 3]))
      .sum()
      .backward();
  });
  t.false(net!.parameters().some((p) => p.isDisposed));
  tidy(() => {
    net!.stateDict();
    net!.namedBuffers();
    net!.to('float64').to('float32');
    net!.loadStateDict(net!.stateDict());
    net!.zeroGrad();
  });
  t.is(live(), before + 11, '7 parameters and 4 buffers, nothing else');
  net!.dispose();
  t.is(live(), before);
  tidy(() => t.throws(() => net!.forward(torch.randn([2, 3])), { code: 'ERR_MMSSL_DISPOSED' }));
  using _scoped = new nn.Linear(2, 2);
  t.is(live(), before + 2);
});
