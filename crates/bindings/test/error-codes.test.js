'use strict';

// Engine-owned error codes cannot be forged by a handler: whatever `code` it puts on what it
// throws, the result is a RUNTIME_ERROR carrying that code as `handlerCode`, and a forged
// INVALID_ARGUMENT is a handler failure, never a rejection as if the request were bad. And a
// source cannot leave the function it is compiled in to run code outside it.
const test = require('node:test');
const assert = require('node:assert/strict');
const { NexusRuntime, WasmSandboxExecutor, SandboxError } = require('..');

const runtime = new NexusRuntime({ poolSize: 4 });
const executor = new WasmSandboxExecutor();
test.after(() => Promise.all([runtime.shutdown(), executor.shutdown()]));

const FORGED = "const e = new Error('you sent a bad request'); e.code = 'INVALID_ARGUMENT'; throw e;";

test('a handler throwing code INVALID_ARGUMENT resolves with a RUNTIME_ERROR result', async () => {
  const result = await runtime.executeHandler(FORGED, {}, 2000);
  assert.equal(result.status, 'error');
  assert.equal(result.error.code, 'RUNTIME_ERROR');
  assert.equal(result.error.handlerCode, 'INVALID_ARGUMENT');
  assert.match(result.error.message, /you sent a bad request/);
});

test('every engine code a handler throws is its own code, not the result code', async () => {
  for (const code of ['TIMEOUT', 'MEMORY_LIMIT', 'STACK_OVERFLOW', 'INTERNAL', 'PERMISSION_DENIED', 'UNSETTLED']) {
    const result = await runtime.executeHandler(`throw Object.assign(new Error('x'), { code: '${code}' });`, {}, 2000);
    assert.equal(result.error.code, 'RUNTIME_ERROR', code);
    assert.equal(result.error.handlerCode, code);
  }
});

test('the executor fails the handler with RUNTIME_ERROR and keeps the handler code', async () => {
  await assert.rejects(executor.executeHandler(FORGED), (error) => {
    assert.ok(error instanceof SandboxError);
    assert.equal(error.code, 'RUNTIME_ERROR');
    assert.equal(error.handlerCode, 'INVALID_ARGUMENT');
    return true;
  });
});

test('a genuine denial is still PERMISSION_DENIED, with no handler code', async () => {
  const result = await runtime.executeHandler('return $state.secret;', { stateSnapshot: { secret: 1 } }, 2000);
  assert.equal(result.error.code, 'PERMISSION_DENIED');
  assert.equal(result.error.handlerCode, undefined);
  assert.deepEqual(result.denials.map((denial) => denial.capability), ['state:read:secret']);
});

test('a source that closes its function early is a SYNTAX_ERROR in run and precompile', async () => {
  const escape = 'return 1;\n}); for (;;) {} (async function () {';
  const result = await runtime.executeHandler(escape, {}, 500);
  assert.equal(result.error.code, 'SYNTAX_ERROR');
  assert.equal(result.error.location.line, 2);
  await assert.rejects(runtime.precompileHandler(escape), (error) => {
    assert.equal(error.code, 'SYNTAX_ERROR');
    assert.equal(error.location.line, 2);
    return true;
  });
});
