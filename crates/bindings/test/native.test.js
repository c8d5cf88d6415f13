'use strict';

// NexusRuntime, the native class: results in the camelCase shape of docs/results-and-errors.md, and
// bad input rejected with an Error carrying `code`.
const test = require('node:test');
const assert = require('node:assert/strict');
const { NexusRuntime, MAX_NESTING } = require('..');

const runtime = new NexusRuntime({ poolSize: 16 });
test.after(() => runtime.shutdown());

const rejectsWithCode = (promise, code, pattern) =>
  assert.rejects(promise, (error) => {
    assert.ok(error instanceof Error);
    assert.equal(error.code, code);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });

test('a result has the documented camelCase fields', async () => {
  const result = await runtime.executeHandler(
    '$state.count = $state.count + 1; $view.update("label", { text: "x" }); return $state.count;',
    {
      panelId: 'panel-1',
      handlerName: 'increment',
      stateSnapshot: { count: 41 },
      capabilities: ['state:read:count', 'state:write:count', 'view:update:label'],
    },
    1000,
  );
  assert.equal(result.status, 'success');
  assert.equal(result.returnValue, 42);
  assert.deepEqual(result.stateMutations, [{ op: 'set', key: 'count', value: 42 }]);
  assert.deepEqual(result.viewCommands, [{ type: 'update', componentId: 'label', args: { text: 'x' } }]);
  assert.equal(result.suspension, null);
  assert.equal(result.error, null);
  for (const key of ['executionTimeUs', 'compileTimeUs', 'hostCalls', 'memoryBytes']) {
    assert.equal(typeof result.metrics[key], 'number', key);
  }
  assert.equal(result.metrics.cacheHit, false);
  // Every result has every field, in this order (JSON.stringify of a result is stable).
  assert.deepEqual(Object.keys(result), RESULT_KEYS);
  assert.deepEqual(Object.keys(result.metrics), METRICS_KEYS);
});

const RESULT_KEYS = ['status', 'returnValue', 'stateMutations', 'events', 'viewCommands', 'logs', 'denials', 'suspension', 'error', 'metrics'];
const METRICS_KEYS = ['executionTimeUs', 'compileTimeUs', 'hostCalls', 'memoryBytes', 'cacheHit'];

test('a failed or suspended result has the same fields as a successful one', async () => {
  const failed = await runtime.executeHandler('$log.info("before"); null.x;');
  assert.equal(failed.status, 'error');
  assert.equal(failed.error.code, 'RUNTIME_ERROR');
  assert.deepEqual(failed.error.location, { line: 1, column: 21 });
  assert.equal(failed.logs.length, 1);
  assert.deepEqual(Object.keys(failed), RESULT_KEYS);
  const suspended = await runtime.executeHandler('return await $ext.kv.get(1);', {
    capabilities: ['ext:kv'],
    extensionRegistry: { kv: ['get'] },
  });
  assert.equal(suspended.status, 'suspended');
  assert.deepEqual(suspended.suspension.calls[0].args, [1]);
  assert.deepEqual(Object.keys(suspended), RESULT_KEYS);
  assert.deepEqual(Object.keys(suspended.metrics), METRICS_KEYS);
});

test('values cross without loss: integers, doubles, unicode, nesting, undefined dropped', async () => {
  const args = { safe: 2 ** 53 - 1, big: 2 ** 60, now: 1_764_000_000_000, neg: -7, pi: 3.25, text: 'żółw 🐢', nested: { list: [1, [2, [3]]] }, gone: undefined };
  const result = await runtime.executeHandler('return $args;', { args });
  const { gone, ...expected } = args;
  assert.deepEqual(result.returnValue, expected);
  // A `__proto__` key made in the sandbox comes back as an own property, not as a prototype.
  const proto = await runtime.executeHandler('return JSON.parse(\'{"__proto__": {"polluted": 1}, "a": 2}\');');
  assert.deepEqual(Object.keys(proto.returnValue), ['__proto__', 'a']);
  assert.equal(Object.getPrototypeOf(proto.returnValue), Object.prototype);
  assert.equal(proto.returnValue.polluted, undefined);
});

test('suspension and resume through the native class', async () => {
  const context = { capabilities: ['ext:weather'], extensionRegistry: { weather: ['get'] } };
  const first = await runtime.executeHandler('const t = await $ext.weather.get("Paris"); return t + 1;', context);
  assert.equal(first.status, 'suspended');
  assert.match(first.suspension.id, /^[0-9a-f]{32}(-[0-9a-f]+)?$/);
  assert.deepEqual(first.suspension.calls, [{ callId: first.suspension.calls[0].callId, extension: 'weather', method: 'get', args: ['Paris'] }]);
  const done = await runtime.resumeHandler(first.suspension.id, first.suspension.calls[0].callId, { value: 20 });
  assert.equal(done.status, 'success');
  assert.equal(done.returnValue, 21);
  // Single use: the same id again is unknown.
  await rejectsWithCode(runtime.resumeHandler(first.suspension.id, 1, { value: 1 }), 'SUSPENSION_NOT_FOUND');
});

test('bad input rejects with an Error carrying code', async () => {
  await rejectsWithCode(runtime.executeHandler(42), 'INVALID_ARGUMENT', /code: expected a string/);
  await rejectsWithCode(
    runtime.executeHandler('return 1', { capabilities: ['state:read'] }),
    'INVALID_ARGUMENT',
    /malformed capability/,
  );
  await rejectsWithCode(runtime.executeHandler('return 1', { capabilites: [] }), 'INVALID_ARGUMENT', /unknown field/);
  await rejectsWithCode(
    runtime.executeHandler('return 1', { capabilities: ['state:read:a', 3] }),
    'INVALID_ARGUMENT',
    /^context\.capabilities\[1\]: invalid type: the number 3, expected a string/,
  );
  await rejectsWithCode(
    runtime.executeHandler('return 1', { extensionRegistry: { weather: { get: true } } }),
    'INVALID_ARGUMENT',
    /^context\.extensionRegistry\.weather: /,
  );
  await rejectsWithCode(runtime.executeHandler('return 1', {}, 'soon'), 'INVALID_ARGUMENT', /timeoutMs/);
  await rejectsWithCode(runtime.executeHandler('return 1', { args: { f: () => 1 } }), 'INVALID_ARGUMENT', /args\.f/);
  await rejectsWithCode(runtime.executeHandler('return 1', { args: { n: NaN } }), 'INVALID_ARGUMENT', /args\.n/);
  await rejectsWithCode(runtime.executeHandler('return 1', { args: { d: new Date() } }), 'INVALID_ARGUMENT', /Date/);
  const cyclic = {};
  cyclic.self = cyclic;
  await rejectsWithCode(runtime.executeHandler('return 1', { args: cyclic }), 'INVALID_ARGUMENT', /cyclic/);
  const throwingGetter = { get x() { throw new Error('getter boom'); } };
  await rejectsWithCode(runtime.executeHandler('return 1', { args: throwingGetter }), 'INVALID_ARGUMENT', /args\.x: reading it threw Error: getter boom/);
  const throwingProxy = new Proxy({}, { ownKeys() { throw new Error('trap boom'); } });
  await rejectsWithCode(runtime.executeHandler('return 1', { stateSnapshot: throwingProxy }), 'INVALID_ARGUMENT', /trap boom/);
  await rejectsWithCode(runtime.executeCompiledHandler('not bytes', {}), 'INVALID_ARGUMENT', /Buffer/);
  await rejectsWithCode(runtime.executeCompiledHandler(Buffer.from('garbage!garbage!'), {}), 'INVALID_ARGUMENT');
  await rejectsWithCode(runtime.resumeHandler('0'.repeat(32), 1, { value: 1 }), 'SUSPENSION_NOT_FOUND');
  await rejectsWithCode(runtime.resumeHandler('id', 'one', { value: 1 }), 'INVALID_ARGUMENT', /callId/);
  await rejectsWithCode(
    runtime.resumeHandler('id', 1, { value: 1, error: { message: 'x' } }),
    'INVALID_ARGUMENT',
    /^result: either \{ value \} or \{ error \}, not both$/,
  );
  await rejectsWithCode(runtime.executeHandler('return 1', { memoryLimit: 2 ** 40 }), 'INVALID_ARGUMENT', /memory limit/);
  assert.throws(() => new NexusRuntime({ poolSiz: 1 }), (error) => error.code === 'INVALID_ARGUMENT');
  // A configuration that could not serve a request is refused at once (poolSize 0 used to hang every request).
  const unusable = [
    [{ poolSize: 0 }, /^config: the pool size is 0: a runtime needs at least one instance$/],
    [{ defaultMemoryLimit: 1 }, /^config: the default memory limit, 1 bytes, is outside \d+ to 268435456 bytes/],
    [{ defaultMemoryLimit: 64 << 20, maxMemoryLimit: 32 << 20 }, /^config: the default memory limit, 67108864 bytes, is outside/],
    [{ defaultMemoryLimit: 1, maxMemoryLimit: 1 }, /^config: the largest memory limit, 1 bytes, is below the snapshot's own memory, \d+ bytes/],
    [{ poolSize: 1_000_000 }, /^config: configuring wasmtime for \d+ memory slots of 268435456 bytes each: .*fewer instances or a smaller largest memory limit need less\)$/],
    [{ poolSize: 10_000_000 }, /^config: the pool size, 10000000, is above 1048576/],
    [{ suspensionTimeoutMs: 0 }, /^config: suspension_timeout is 0: every suspension would expire as it is made$/],
  ];
  for (const [config, wording] of unusable) {
    assert.throws(() => new NexusRuntime(config), (error) => error.code === 'INVALID_ARGUMENT' && wording.test(error.message));
  }
  // A value of the wrong kind says what was expected, in the terms of this API.
  await rejectsWithCode(runtime.executeHandler('return 1', 'x'), 'INVALID_ARGUMENT', /^context: .*expected an object of execution context fields$/);
  await rejectsWithCode(runtime.resumeHandler('id', 1, 'x'), 'INVALID_ARGUMENT', /^result: .*expected an object \{ value \} or \{ error \}$/);
  await rejectsWithCode(runtime.precompileHandler('return 1', 'ts'), 'INVALID_ARGUMENT', /^options: .*expected an object \{ language \}$/);
  assert.throws(() => new NexusRuntime('x'), /^Error: config: .*expected an object of runtime options$/);
  assert.throws(() => NexusRuntime(), { name: 'TypeError', message: "Class constructor NexusRuntime cannot be invoked without 'new'" });
  // ... and of what was passed, not in Rust's (`sequence`, `u64`, `inf`, `..=`).
  const wordings = [
    [{ capabilities: 'state:read:a' }, /^context\.capabilities: invalid type: the string "state:read:a", expected an array$/],
    [{ stateSnapshot: [1] }, /^context\.stateSnapshot: invalid type: an array, expected an object$/],
    [{ timeoutMs: -1 }, /^context\.timeoutMs: invalid value: -1, expected a whole number ≥ 0$/],
    [{ timeoutMs: 1.5 }, /^context\.timeoutMs: invalid type: the number 1\.5, expected a whole number ≥ 0$/],
    [{ timeoutMs: Infinity }, /^context\.timeoutMs: Infinity is not a JSON number$/],
    [{ memoryLimit: true }, /^context\.memoryLimit: invalid type: true, expected a whole number ≥ 0$/],
    [{ language: 'perl' }, /^context\.language: unknown variant "perl", expected "javascript" or "typescript"$/],
    [{ timeout: 5 }, /^context\.timeout: unknown field "timeout", expected one of "panelId", /],
    [{ memoryLimit: 1 }, /^memory limit 1 bytes is outside \d+ to \d+ bytes/],
  ];
  for (const [context, wording] of wordings) {
    await rejectsWithCode(runtime.executeHandler('return 1', context), 'INVALID_ARGUMENT', wording);
  }
  // The runtime keeps serving.
  assert.equal((await runtime.executeHandler('return "still here"')).returnValue, 'still here');
});

test('outputLimit bounds what a handler returns or throws, not only its records', async () => {
  const small = new NexusRuntime({ poolSize: 2, outputLimit: 1 << 20 });
  try {
    for (const code of [
      "return 'x'.repeat(2 << 20)",
      "throw new Error('x'.repeat(2 << 20))",
      'return new Array(100000).fill(0)',
    ]) {
      const result = await small.executeHandler(code, {});
      assert.equal(result.status, 'error', code);
      assert.equal(result.error.code, 'MEMORY_LIMIT', code);
      assert.match(result.error.message, /output limit of 1048576 bytes/);
    }
    const within = await small.executeHandler("return 'x'.repeat(512 << 10)", {});
    assert.equal(within.status, 'success');
    assert.equal(within.returnValue.length, 512 << 10);
  } finally {
    await small.shutdown();
  }
});

test('memoryBudget bounds the memory of all executions together: past it OVERLOADED', async () => {
  const small = new NexusRuntime({ poolSize: 4, memoryBudget: 24 << 20 });
  try {
    const fill = (mib) => `const held = new Uint8Array(${mib} << 20); held.fill(1); return held.length >> 20;`;
    const over = await small.executeHandler(fill(32), {});
    assert.equal(over.status, 'error');
    assert.equal(over.error.code, 'OVERLOADED');
    assert.match(over.error.message, /memory is spent: .* budget of 25165824 bytes/);
    const within = await small.executeHandler(fill(16), {});
    assert.equal(within.returnValue, 16, 'within its limit and the budget');
  } finally {
    await small.shutdown();
  }
});

test('compileCacheBytes bounds the bytecode the compile cache holds', async () => {
  const small = new NexusRuntime({ poolSize: 1, compileCacheBytes: 4096 });
  try {
    const big = `const a = [${'0,'.repeat(4000)}]; return a.length;`;
    const hits = [];
    for (const source of ['return 1', 'return 1', big, big]) {
      const result = await small.executeHandler(source, {});
      assert.equal(result.status, 'success');
      hits.push(result.metrics.cacheHit);
    }
    assert.deepEqual(hits, [false, true, false, false], 'bytecode larger than the bound is not kept');
  } finally {
    await small.shutdown();
  }
});

test('a value may nest MAX_NESTING arrays and objects, whatever holds it, and no more', async () => {
  const nest = (n, leaf = 1) => { let v = leaf; for (let i = 0; i < n; i++) v = i % 2 ? { a: v } : [v]; return v; };
  const code = (promise) => promise.then(() => 'ok', (error) => error.code);
  for (const [n, expected] of [[MAX_NESTING, 'ok'], [MAX_NESTING + 1, 'INVALID_ARGUMENT']]) {
    for (const context of [{ args: nest(n) }, { scope: nest(n) }, { stateSnapshot: { k: nest(n) } }]) {
      assert.equal(await code(runtime.executeHandler('return 1', context)), expected, `${n}: ${Object.keys(context)}`);
    }
    const suspended = await runtime.executeHandler('return await $ext.e.m()', { capabilities: ['ext:e'], extensionRegistry: { e: ['m'] } });
    assert.equal(await code(runtime.resumeHandler(suspended.suspension.id, 1, { value: nest(n) })), expected, `${n}: a call's result`);
    await runtime.cancelSuspension(suspended.suspension.id);
  }
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(runtime.executeHandler('return 1', { args: cyclic }), (error) => error.code === 'INVALID_ARGUMENT');
});

test('numbers the handler makes come out as JavaScript numbers', async () => {
  const result = await runtime.executeHandler('return { now: 1764000000000, big: 2 ** 60, neg: -(2 ** 40), half: 0.5 };');
  assert.deepEqual(result.returnValue, { now: 1764000000000, big: 2 ** 60, neg: -(2 ** 40), half: 0.5 });
});

test('a handler failure resolves to an error result, not a rejection', async () => {
  const result = await runtime.executeHandler('throw new TypeError("bad")');
  assert.equal(result.status, 'error');
  assert.equal(result.error.code, 'RUNTIME_ERROR');
  assert.match(result.error.message, /bad/);
});

test('inferCapabilities lists the tokens, and locates syntax errors', async () => {
  const inference = await runtime.inferCapabilities('$state.count = $state.count + 1; $emit("changed");');
  assert.deepEqual(inference.capabilities, ['state:read:count', 'state:write:count', 'events:emit:changed']);
  await assert.rejects(runtime.inferCapabilities('return (;'), (error) => {
    assert.equal(error.code, 'SYNTAX_ERROR');
    assert.deepEqual(error.location, { line: 1, column: 9 });
    return true;
  });
});

test('a syntax error from precompileHandler or inferCapabilities has its snippet, as one from executeHandler', async () => {
  const source = 'const a = 1;\nconst b = (;\nreturn a';
  for (const [what, attempt] of [
    ['precompileHandler', () => runtime.precompileHandler(source)],
    ['inferCapabilities', () => runtime.inferCapabilities(source)],
    ['precompileHandler, TypeScript', () => runtime.precompileHandler('const a: number = 1;\nconst b = (;', { language: 'typescript' })],
  ]) {
    await assert.rejects(attempt(), (error) => {
      assert.equal(error.code, 'SYNTAX_ERROR', what);
      assert.equal(error.location.line, 2, what);
      assert.equal(error.snippet, 'const b = (;', what);
      return true;
    });
  }
});

test('getStats and getPrometheusMetrics report executions', async () => {
  await runtime.executeHandler('return 1');
  const stats = await runtime.getStats();
  assert.ok(stats.executions.success >= 1);
  const text = await runtime.getPrometheusMetrics();
  assert.match(text, /^# TYPE nexus_executions counter$/m);
  assert.match(text, /^nexus_executions_total\{status="success",code=""\} \d+$/m);
});

test('callerResets: a lone execution leaves its reset to the next call, unless turned off', async (t) => {
  for (const callerResets of [true, false]) {
    const own = new NexusRuntime({ callerResets });
    t.after(() => own.shutdown());
    const bytecode = await own.precompileHandler('return 1');
    // The sweep (at most once a second) also resets what waits: look right after an execution.
    let seen = 0;
    for (let i = 0; i < 20 && seen === 0; i++) {
      await own.executeCompiledHandler(bytecode);
      seen = (await own.getStats()).awaitingReset;
    }
    assert.equal(seen, callerResets ? 1 : 0, `callerResets: ${callerResets}`);
  }
  assert.throws(() => new NexusRuntime({ callerResets: 'yes' }), { code: 'INVALID_ARGUMENT' });
});

test('after shutdown, work is refused with SHUTTING_DOWN', async () => {
  const own = new NexusRuntime({ poolSize: 2 });
  assert.equal((await own.executeHandler('return 1')).returnValue, 1);
  await own.shutdown(100);
  await rejectsWithCode(own.executeHandler('return 1'), 'SHUTTING_DOWN');
  // In words of this API, not of the runtime's actors ("Mailbox has closed").
  await rejectsWithCode(own.precompileHandler('return 1'), 'SHUTTING_DOWN', /^the runtime is shutting down \(precompileHandler after shutdown\(\)\)$/);
});

test('a resume result is exactly one of { value } and { error }: anything else is refused, the suspension left as it was', async () => {
  const context = { capabilities: ['ext:e'], extensionRegistry: { e: ['m'] } };
  const code = 'try { return ["value", await $ext.e.m()]; } catch (e) { return ["error", e.message, e.code ?? null]; }';
  const suspended = await runtime.executeHandler(code, context);
  const { id } = suspended.suspension;
  const callId = suspended.suspension.calls[0].callId;
  const refusals = [
    [{}, /^result: expected \{ value \} or \{ error: \{ message, code\? \} \}, got an object with neither$/],
    [{ error: undefined }, /^result\.error: expected an object \{ message, code\? \}, got undefined$/],
    [{ value: 1, error: undefined }, /^result\.error: expected an object \{ message, code\? \}, got undefined$/],
    [{ error: null }, /^result\.error: invalid type: null, expected an object \{ message, code\? \}$/],
    [{ error: 'boom' }, /^result\.error: invalid type: the string "boom", expected an object \{ message, code\? \}$/],
    [{ error: {} }, /^result\.error: missing field "message"$/],
    [{ value: undefined, error: { message: 'x' } }, /^result: either \{ value \} or \{ error \}, not both$/],
    [{ valeu: 1 }, /^result\.valeu: unknown field "valeu"/],
  ];
  for (const [result, wording] of refusals) {
    await rejectsWithCode(runtime.resumeHandler(id, callId, result), 'INVALID_ARGUMENT', wording);
  }
  // A value given as undefined is given: the extension returned nothing (the handler sees null).
  const done = await runtime.resumeHandler(id, callId, { value: undefined });
  assert.equal(done.status, 'success');
  assert.deepEqual(done.returnValue, ['value', null]);
  const again = await runtime.executeHandler(code, context);
  const failed = await runtime.resumeHandler(again.suspension.id, again.suspension.calls[0].callId, { error: { message: 'no', code: 'E_NO' } });
  assert.deepEqual(failed.returnValue, ['error', 'no', 'E_NO']);
});

test('shutdown takes a grace period of 0 to 2^31 - 1 ms, or none: anything else rejects with INVALID_ARGUMENT', async () => {
  const own = new NexusRuntime({ poolSize: 1 });
  for (const graceMs of ['soon', {}, -1, 2 ** 32 + 100, 2 ** 31, NaN, Infinity, true, [5]]) {
    const answer = own.shutdown(graceMs);
    assert.ok(answer instanceof Promise, `shutdown(${String(graceMs)}) returns a Promise`);
    await rejectsWithCode(answer, 'INVALID_ARGUMENT', /^graceMs: expected a number of milliseconds from 0 to 2147483647, got /);
  }
  assert.equal((await own.executeHandler('return "still serving"')).returnValue, 'still serving');
  const { WasmSandboxExecutor, SandboxError } = require('..');
  const executor = new WasmSandboxExecutor({ runtime: own });
  await assert.rejects(executor.shutdown(-5), (error) => error instanceof SandboxError && error.code === 'INVALID_ARGUMENT' && /^graceMs: /.test(error.message));
  await own.shutdown(0.5);
  await rejectsWithCode(own.executeHandler('return 1'), 'SHUTTING_DOWN');
});
