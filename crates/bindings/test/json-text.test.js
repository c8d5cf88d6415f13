'use strict';

// lib/json-text.js, the fast path of argument conversion: JSON text only for values it copies
// exactly, reading each property once; everything else is left to the native converter, whose
// answers (refusals with their path, or values JSON text would change) must stay the same.
const test = require('node:test');
const assert = require('node:assert/strict');
const { jsonText } = require('../lib/json-text');
const { NexusRuntime } = require('..');

test('plain JSON data becomes the JSON text of the same data', () => {
  const value = { a: 1, b: -2.5, c: 'żółw 🐢 "quoted"', d: [true, null, { e: [] }], 3: 0.1 + 0.2, f: Number.MAX_SAFE_INTEGER };
  assert.equal(jsonText(value), JSON.stringify(value));
  assert.equal(jsonText([1, undefined, , 2]), '[1,null,null,2]');
  assert.equal(jsonText({ gone: undefined, kept: 1 }), '{"kept":1}');
  class Point {
    constructor() {
      this.x = 1;
    }
  }
  assert.equal(jsonText(new Point()), '{"x":1}', 'own enumerable properties, as the native walk');
  assert.equal(jsonText(Object.assign(Object.create(null), { a: 1 })), '{"a":1}');
});

test('a built-in whose data JSON text would drop is refused, naming what to pass instead', async (t) => {
  for (const value of [new Map([[1, 2]]), new Set([1]), /x/, new Error('m'), Promise.resolve(1), new WeakMap()]) {
    assert.equal(jsonText({ nested: [value] }), undefined, String(value));
  }
  const runtime = new NexusRuntime({ poolSize: 1 });
  t.after(() => runtime.shutdown());
  const refused = (args, pattern) =>
    assert.rejects(runtime.executeHandler('return $args', { args }), (error) => {
      assert.equal(error.code, 'INVALID_ARGUMENT');
      assert.match(error.message, pattern);
      return true;
    });
  await refused(new Map([[1, 2]]), /^context\.args: a Map is not JSON data \(pass Object\.fromEntries\(map\)\)/);
  await refused({ a: [1, { s: new Set([1]) }] }, /^context\.args\.a\[1\]\.s: a Set is not JSON data/);
  await refused({ r: /x/ }, /^context\.args\.r: a RegExp is not JSON data/);
  await refused({ e: new Error('m') }, /^context\.args\.e: an Error is not JSON data \(pass error\.message\)/);
  await refused({ p: Promise.resolve(1) }, /^context\.args\.p: a Promise is not JSON data \(await it first\)/);
  // A class of its own crosses as its own enumerable properties.
  class Point {
    constructor() {
      this.x = 1;
    }
  }
  assert.deepEqual((await runtime.executeHandler('return $args', { args: { p: new Point() } })).returnValue, { p: { x: 1 } });
});

test('built-ins replaced after the module loaded change nothing', () => {
  const saved = { stringify: JSON.stringify, keys: Object.keys, isArray: Array.isArray };
  JSON.stringify = () => '"hijacked"';
  Object.keys = () => ['injected'];
  Array.isArray = () => false;
  try {
    assert.equal(jsonText({ a: [1] }), '{"a":[1]}');
  } finally {
    Object.assign(JSON, { stringify: saved.stringify });
    Object.keys = saved.keys;
    Array.isArray = saved.isArray;
  }
});

test('a key a setter on Object.prototype intercepts is left to the native walk, and crosses', async (t) => {
  const runtime = new NexusRuntime();
  t.after(() => runtime.shutdown());
  Object.defineProperty(Object.prototype, 'intercepted', { set() {}, configurable: true });
  try {
    assert.equal(jsonText({ intercepted: 1 }), undefined);
    const result = await runtime.executeHandler('return $args.intercepted;', { args: { intercepted: 1 } });
    assert.equal(result.returnValue, 1);
  } finally {
    delete Object.prototype.intercepted;
  }
});

test('each property is read once', () => {
  let reads = 0;
  const value = {
    get once() {
      reads += 1;
      return reads;
    },
  };
  assert.equal(jsonText(value), '{"once":1}');
  assert.equal(reads, 1);
});

test('whatever JSON text would change or the native converter refuses is left to it', () => {
  const deep = [];
  let inner = deep;
  for (let i = 0; i < 130; i++) inner = inner[0] = [];
  const cyclic = {};
  cyclic.self = cyclic;
  const leftToNative = {
    'negative zero': -0,
    'an integer beyond 2^53': 2 ** 60,
    'a non-finite number': Infinity,
    NaN: NaN,
    'a Date (its toJSON)': new Date(0),
    'a boxed primitive': Object(1),
    'a typed array': new Uint8Array(2),
    'an ArrayBuffer': new ArrayBuffer(2),
    'a Proxy of an array': new Proxy([1], {}),
    'a Proxy of an object': new Proxy({ a: 1 }, {}),
    'a function': { f() {} },
    'a symbol': [Symbol('s')],
    'a BigInt': { n: 1n },
    'a __proto__ own key': JSON.parse('{"__proto__": 1}'),
    'undefined as a whole': undefined,
    'a getter that throws': { get x() { throw new Error('boom'); } },
    'nesting past the limit': deep,
    'a cycle': cyclic,
  };
  for (const [what, value] of Object.entries(leftToNative)) {
    assert.equal(jsonText(value), undefined, what);
  }
});

test('values left to the native converter cross as they did before the fast path', async (t) => {
  const runtime = new NexusRuntime();
  t.after(() => runtime.shutdown());
  const roundTrip = async (value) => {
    const result = await runtime.executeHandler('return $args.v;', { args: { v: value } });
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    return result.returnValue;
  };
  assert.equal(await roundTrip(2 ** 60), 2 ** 60);
  assert.deepEqual(await roundTrip(new Proxy([1, 2], {})), { 0: 1, 1: 2 });
  assert.equal(await roundTrip('a\ud800b'), 'a\ufffdb', 'a lone surrogate is replaced, as N-API does');
  assert.equal(await roundTrip(5e-324), 5e-324);
  // Doubles cross exactly both ways (in as JSON text, out from the guest's JSON.stringify).
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const bits = new DataView(new ArrayBuffer(8));
  const doubles = [];
  while (doubles.length < 400) {
    bits.setUint32(0, Math.floor(random() * 2 ** 32));
    bits.setUint32(4, Math.floor(random() * 2 ** 32));
    const d = bits.getFloat64(0);
    if (Number.isFinite(d) && !Number.isInteger(d)) doubles.push(d);
  }
  const back = await roundTrip(doubles);
  assert.equal(back.filter((d, i) => !Object.is(d, doubles[i])).length, 0, 'every double comes back with the same bits');
  await assert.rejects(runtime.executeHandler('return 1', { args: { list: [1, { f: () => 1 }] } }), {
    code: 'INVALID_ARGUMENT',
    message: /context\.args\.list\[1\]\.f: a Function is not JSON data/,
  });
});

test('an object with a toJSON method crosses as what it returns, on the fast path and the native walk alike', async (t) => {
  const runtime = new NexusRuntime({ poolSize: 1 });
  t.after(() => runtime.shutdown());
  class Money {
    constructor(cents) {
      this.cents = cents;
    }
    toJSON() {
      return `${this.cents / 100} EUR`;
    }
  }
  class Box {
    #inside;
    constructor(inside) {
      this.#inside = inside;
    }
    toJSON() {
      return this.#inside;
    }
  }
  const keys = [];
  const value = {
    url: new URL('https://example.com/a?b=1'),
    price: new Money(1234),
    box: new Box({ secret: 42, again: new Money(5) }),
    list: [{ toJSON: (key) => (keys.push(key), key) }, { toJSON: () => undefined }],
    gone: { toJSON: () => undefined },
    once: { toJSON: () => ({ toJSON: 'kept: its own toJSON is not called' }) },
  };
  const expected = JSON.parse(JSON.stringify(value));
  keys.length = 0;
  assert.equal(jsonText(value), JSON.stringify(value));
  const fast = (await runtime.executeHandler('return $args', { args: value })).returnValue;
  assert.deepEqual(fast, expected);
  // -0 sends the whole value to the native walk, which must agree.
  const walked = (await runtime.executeHandler('return $args', { args: { ...value, zero: -0 } })).returnValue;
  assert.deepEqual(walked, { ...expected, zero: 0 });
  assert.ok(keys.length > 0 && keys.every((key) => key === '0'), 'toJSON gets the key, as from JSON.stringify');
  // At the top, and in a Proxy (always walked).
  assert.equal((await runtime.executeHandler('return $args', { args: new Money(250) })).returnValue, '2.5 EUR');
  assert.equal((await runtime.executeHandler('return $args', { args: new Proxy(new Money(1), {}) })).returnValue, '0.01 EUR');
  // A Date and binary data stay refused (Buffer has a toJSON), and a toJSON that throws is named.
  await assert.rejects(runtime.executeHandler('return 1', { args: { d: new Date(0) } }), { code: 'INVALID_ARGUMENT', message: /^context\.args\.d: a Date is not JSON data/ });
  await assert.rejects(runtime.executeHandler('return 1', { args: { b: Buffer.from('x') } }), { code: 'INVALID_ARGUMENT', message: /^context\.args\.b: binary data is not JSON data/ });
  const broken = { toJSON() { throw new Error('no JSON for you'); } };
  await assert.rejects(runtime.executeHandler('return 1', { args: { list: [1, broken] } }), {
    code: 'INVALID_ARGUMENT',
    message: 'context.args.list[1]: its toJSON() threw Error: no JSON for you',
  });
  // What toJSON returns is refused as any other value that is not JSON data.
  await assert.rejects(runtime.executeHandler('return 1', { args: { m: { toJSON: () => new Map() } } }), { code: 'INVALID_ARGUMENT', message: /^context\.args\.m: a Map is not JSON data/ });
});
