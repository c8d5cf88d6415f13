'use strict';

// An extension call the handler never awaits is still performed: the executor drives the
// execution until every call is settled, and returns the value the handler settled with. A
// failure nothing awaited is a warn log line, not a failed handler.
const test = require('node:test');
const assert = require('node:assert/strict');
const { WasmSandboxExecutor } = require('..');

const executor = new WasmSandboxExecutor();
test.after(() => executor.shutdown());

test('a call never awaited is performed and its continuation runs', async () => {
  const tracked = [];
  const logs = [];
  const value = await executor.executeHandler(
    "$ext.analytics.track('opened').then((r) => $log('tracked', r)); return 'done';",
    {
      capabilities: ['ext:analytics'],
      extensions: { analytics: { track: async (what) => (tracked.push(what), 'ok') } },
      onLog: (line) => logs.push(line),
    },
  );
  assert.equal(value, 'done');
  assert.deepEqual(tracked, ['opened']);
  assert.deepEqual(logs.map((line) => line.message), ['tracked ok']);
});

test('a failure nothing awaited is a warning', async () => {
  const logs = [];
  const value = await executor.executeHandler("$ext.analytics.track('x'); return 1;", {
    capabilities: ['ext:analytics'],
    extensions: {
      analytics: {
        track: async () => {
          throw new Error('service down');
        },
      },
    },
    onLog: (line) => logs.push(line),
  });
  assert.equal(value, 1);
  assert.equal(logs.length, 1);
  assert.equal(logs[0].level, 'warn');
  assert.match(logs[0].message, /\$ext\.analytics\.track \(call 1\).*service down/);
});
