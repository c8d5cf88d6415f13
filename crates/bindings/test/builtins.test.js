'use strict';

// The binding's JavaScript helpers hold the built-ins they use as they were when the package
// loaded: an application replacing JSON.parse or JSON.stringify afterwards (before its first
// execution, here) changes neither what crosses nor the results. Its own process, so that no
// execution ran before the replacement.
const test = require('node:test');
const assert = require('node:assert/strict');
const { NexusRuntime } = require('..');

test('results and arguments do not depend on JSON as the application left it', async (t) => {
  const saved = { parse: JSON.parse, stringify: JSON.stringify };
  JSON.parse = () => ({ hijacked: true });
  JSON.stringify = () => '"hijacked"';
  t.after(() => Object.assign(JSON, saved));
  const runtime = new NexusRuntime();
  t.after(() => runtime.shutdown());
  const result = await runtime.executeHandler('return { ok: [$args.n, 2] };', { args: { n: 1 } });
  assert.equal(result.status, 'success');
  assert.deepEqual(result.returnValue, { ok: [1, 2] });
});
