'use strict';

// Libraries preloaded into the snapshot: NexusRuntime's `preload` and WasmSandboxExecutor's,
// with lodash from the npm registry (pinned, shipped in benches/libraries).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { NexusRuntime, WasmSandboxExecutor } = require('..');

const LODASH = fs.readFileSync(
  path.join(__dirname, '..', '..', '..', 'benches', 'libraries', 'lodash-4.17.21.min.js'),
  'utf8',
);
const preload = [
  { name: 'lodash.min.js', source: LODASH },
  { name: 'helpers.js', source: 'var helpers = { hits: 0, label: (s) => _.upperFirst(s) };' },
];

const runtime = new NexusRuntime({ poolSize: 4, preload });
test.after(() => runtime.shutdown(1000));

test('a handler calls the preloaded libraries', async () => {
  const result = await runtime.executeHandler("return [_.chunk($args, 2), helpers.label('total')];", {
    args: [1, 2, 3],
  });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(result.returnValue, [[[1, 2], [3]], 'Total']);
});

test('what a handler changes in a library is gone in the next execution', async () => {
  const mutate = 'helpers.hits++; _.chunk = null; return helpers.hits;';
  assert.equal((await runtime.executeHandler(mutate)).returnValue, 1);
  assert.equal((await runtime.executeHandler(mutate)).returnValue, 1);
  const fresh = await runtime.executeHandler('return [helpers.hits, typeof _.chunk];');
  assert.deepEqual(fresh.returnValue, [0, 'function']);
});

test('a library that throws at load makes the constructor throw, naming it and its line', () => {
  const broken = [{ name: 'broken.js', source: 'var a = 1;\nmissing();' }];
  assert.throws(
    () => new NexusRuntime({ preload: broken }),
    (error) => error.code === 'INVALID_ARGUMENT' && /broken\.js at line 2/.test(error.message) && /missing/.test(error.message),
  );
  const host = [{ name: 'chatty.js', source: "console.log('hello');" }];
  assert.throws(() => new NexusRuntime({ preload: host }), (error) => /chatty\.js.*reached the host/.test(error.message));
});

test('a malformed preload entry is refused, naming where it is', () => {
  const refused = (preload, pattern) =>
    assert.throws(
      () => new NexusRuntime({ preload }),
      (error) => error.code === 'INVALID_ARGUMENT' && pattern.test(error.message),
    );
  refused([{ name: 'a.js', source: '1' }, { name: 'b.js' }], /^config\.preload\[1\]: missing field "source"/);
  refused([{ name: 'a.js', source: 1 }], /^config\.preload\[0\]\.source: invalid type: the number 1, expected a string/);
  refused(['a.js'], /^config\.preload\[0\]: .*expected an object \{ name, source \}/);
  refused({ name: 'a.js', source: '1' }, /^config\.preload: invalid type: an object, expected an array$/);
  // Errors and stack frames tell libraries apart by name.
  refused([{ name: '', source: '1' }], /^config\.preload: preloading library number 1: its name is empty/);
  refused([{ name: 'a.js', source: '1' }, { name: 'a.js', source: '2' }], /a\.js: another library has the same name/);
  refused([{ name: 'a\nb.js', source: '1' }], /its name has a control character/);
});

test('WasmSandboxExecutor takes preload too', async () => {
  const executor = new WasmSandboxExecutor({ preload, config: { poolSize: 2 } });
  try {
    assert.equal(await executor.executeHandler('return _.sum([1, 2, 3]) + helpers.hits;'), 6);
  } finally {
    await executor.shutdown();
  }
  assert.throws(() => new WasmSandboxExecutor({ runtime, preload }), { code: 'INVALID_ARGUMENT' });
});
