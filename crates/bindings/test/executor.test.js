'use strict';

// WasmSandboxExecutor end to end: the suspend/resume loop against real async extension
// functions, state applied to the application's object, events and view commands forwarded.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { WasmSandboxExecutor, SandboxExecutor, SandboxError, NexusRuntime, inferCapabilities } = require('..');

const executor = new WasmSandboxExecutor();
test.after(() => executor.shutdown());

const COUNTER = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'examples', 'counter.js'), 'utf8');
const COUNTER_CAPS = ['state:read:count', 'state:write:count', 'events:emit:changed', 'view:update:counter-label'];
const delay = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms));

test('the counter example runs end to end', async () => {
  const state = { count: 1 };
  const events = [];
  const views = [];
  const value = await executor.executeHandler(COUNTER, {
    state,
    capabilities: COUNTER_CAPS,
    onEvent: (event) => events.push(event),
    onViewCommand: (command) => views.push(command),
  });
  assert.equal(value, 2);
  assert.deepEqual(state, { count: 2 });
  assert.deepEqual(events, [{ name: 'changed', payload: { value: 2 } }]);
  assert.deepEqual(views, [{ type: 'update', componentId: 'counter-label', args: { text: 'Count: 2' } }]);
});

test('two sequential extension calls are driven by real async functions', async () => {
  const calls = [];
  const extensions = {
    weather: {
      get: async (city) => {
        calls.push(['weather.get', city]);
        return delay(5, { city, celsius: city === 'Paris' ? 18 : 25 });
      },
    },
    units: {
      toFahrenheit: async (celsius) => {
        calls.push(['units.toFahrenheit', celsius]);
        return delay(5, (celsius * 9) / 5 + 32);
      },
    },
  };
  const value = await executor.executeHandler(
    `const w = await $ext.weather.get($args.city);
     const f = await $ext.units.toFahrenheit(w.celsius);
     return { city: w.city, f };`,
    { args: { city: 'Paris' }, capabilities: ['ext:weather', 'ext:units'], extensions },
  );
  assert.deepEqual(value, { city: 'Paris', f: 64.4 });
  assert.deepEqual(calls, [
    ['weather.get', 'Paris'],
    ['units.toFahrenheit', 18],
  ]);
});

test('an extension function that throws rejects inside the handler', async () => {
  const extensions = {
    payments: {
      charge: async () => {
        const error = new Error('card declined');
        error.code = 'DECLINED';
        throw error;
      },
    },
  };
  const value = await executor.executeHandler(
    `try { await $ext.payments.charge(10); return 'charged'; }
     catch (e) { return { message: e.message, code: e.code ?? null }; }`,
    { capabilities: ['ext:payments'], extensions },
  );
  assert.deepEqual(value, { message: 'card declined', code: 'DECLINED' });
});

test('an extension may be a class instance: its methods are called on it', async () => {
  class Counter {
    constructor() {
      this.total = 10;
    }
    async add(n) {
      this.total += n;
      return this.total;
    }
  }
  const counter = new Counter();
  const value = await executor.executeHandler('return await $ext.counter.add(5);', {
    capabilities: ['ext:counter'],
    extensions: { counter },
  });
  assert.equal(value, 15);
  assert.equal(counter.total, 15);
});

test("an extension's methods are its own and its class's, never a base class's (EventEmitter's emit)", async () => {
  const { EventEmitter } = require('node:events');
  class Weather extends EventEmitter {
    constructor() {
      super();
      this.unit = 'C';
      this.own = () => 'own';
    }
    async get(city) {
      return `${city}: 21${this.unit}`;
    }
    get accessor() {
      throw new Error('a getter is not read');
    }
  }
  const weather = new Weather();
  let heard = 0;
  weather.on('changed', () => (heard += 1));
  const attempt = (call) =>
    executor.executeHandler(`try { return await ${call}; } catch (e) { return e.code + ': ' + e.message; }`, {
      capabilities: ['ext:weather'],
      extensions: { weather },
    });
  assert.equal(await attempt('$ext.weather.get("Paris")'), 'Paris: 21C');
  assert.equal(await attempt('$ext.weather.own()'), 'own');
  for (const inherited of ['emit("changed", 1)', 'removeAllListeners()', 'setMaxListeners(0)', 'on("x", 1)', 'constructor()', 'accessor()', 'hasOwnProperty("x")']) {
    assert.match(await attempt(`$ext.weather.${inherited}`), /^UNKNOWN_EXTENSION: unknown extension: weather\./, inherited);
  }
  assert.equal(heard, 0);
  assert.equal(weather.listenerCount('changed'), 1);
});

test('an uncaught extension failure fails the handler with RUNTIME_ERROR', async () => {
  const extensions = { flaky: { call: () => { throw new Error('boom'); } } };
  await assert.rejects(
    executor.executeHandler('await $ext.flaky.call(); return 1;', { capabilities: ['ext:flaky'], extensions }),
    (error) => error instanceof SandboxError && error.code === 'RUNTIME_ERROR' && /boom/.test(error.message),
  );
});

test('interim mutations are applied before the extension function runs', async () => {
  const state = { status: 'idle' };
  let seen;
  const extensions = {
    loader: {
      load: async () => {
        seen = { ...state };
        return 'data';
      },
    },
  };
  const value = await executor.executeHandler(
    `$state.status = 'loading';
     const data = await $ext.loader.load();
     $state.status = 'done';
     return data;`,
    { state, capabilities: ['state:write:status', 'ext:loader'], extensions },
  );
  assert.equal(value, 'data');
  assert.deepEqual(seen, { status: 'loading' });
  assert.deepEqual(state, { status: 'done' });
});

test('Promise.all over extension calls performs them concurrently', async () => {
  let running = 0;
  let most = 0;
  const extensions = {
    slow: {
      echo: async (x) => {
        running += 1;
        most = Math.max(most, running);
        await delay(10);
        running -= 1;
        return x;
      },
    },
  };
  const value = await executor.executeHandler('return Promise.all([1, 2, 3].map((x) => $ext.slow.echo(x)));', {
    capabilities: ['ext:slow'],
    extensions,
  });
  assert.deepEqual(value, [1, 2, 3]);
  assert.equal(most, 3);
});

test('each extension call is resumed as soon as it settles, first settled first', async () => {
  // The slow call is listed first; resumed in list order, or only once both had settled, its
  // result would arrive first.
  const performed = [];
  const extensions = {
    slow: { call: async () => (performed.push('slow'), delay(200, 'slow')) },
    fast: { call: async () => (performed.push('fast'), delay(10, 'fast')) },
  };
  const value = await executor.executeHandler(
    `const arrived = [];
     const record = (call) => call.then((value) => { arrived.push(value); });
     await Promise.all([record($ext.slow.call()), record($ext.fast.call())]);
     return arrived;`,
    { capabilities: ['ext:slow', 'ext:fast'], extensions },
  );
  assert.deepEqual(value, ['fast', 'slow']);
  assert.deepEqual(performed, ['slow', 'fast'], 'each call performed once');
});

test('an extension value that is not JSON data rejects the call inside the handler', async () => {
  const extensions = { odd: { fn: async () => () => 1 } };
  const value = await executor.executeHandler(
    'try { await $ext.odd.fn(); return "accepted"; } catch (e) { return e.code; }',
    { capabilities: ['ext:odd'], extensions },
  );
  assert.equal(value, 'INVALID_ARGUMENT');
});

test('a handler error is a SandboxError with code, location and snippet', async () => {
  await assert.rejects(executor.executeHandler('const a = 1;\nnull.boom();\nreturn a;'), (error) => {
    assert.ok(error instanceof SandboxError);
    assert.equal(error.code, 'RUNTIME_ERROR');
    assert.equal(error.location.line, 2);
    assert.equal(typeof error.location.column, 'number');
    assert.equal(error.snippet, 'null.boom();');
    return true;
  });
});

test('a TIMEOUT surfaces as a SandboxError with its code', async () => {
  await assert.rejects(
    executor.executeHandler('for (;;) {}', { timeoutMs: 50 }),
    (error) => error instanceof SandboxError && error.code === 'TIMEOUT',
  );
  // The runtime keeps serving.
  assert.equal(await executor.executeHandler('return 7'), 7);
});

test('an extension call that never settles rejects with TIMEOUT once its suspension expires', { timeout: 20000 }, async () => {
  const short = new WasmSandboxExecutor({ config: { suspensionTimeoutMs: 200 } });
  try {
    assert.equal(short.runtime.suspensionTimeoutMs, 200);
    const reports = [];
    short.onMetrics((report) => reports.push(report));
    const started = Date.now();
    await assert.rejects(
      short.executeHandler('const [a] = await Promise.all([$ext.slow.never(), $ext.slow.never()]); return a', {
        capabilities: ['ext:slow'],
        extensions: { slow: { never: () => new Promise(() => {}) } },
      }),
      (error) =>
        error instanceof SandboxError &&
        error.code === 'TIMEOUT' &&
        /suspension timeout \(200 ms\)/.test(error.message) &&
        /still pending: slow\.never$/.test(error.message),
    );
    assert.ok(Date.now() - started >= 190, 'not before the suspension expires');
    assert.deepEqual(
      reports.map((report) => [report.status, report.code]),
      [['error', 'TIMEOUT']],
    );
    assert.equal((await short.getStats()).parked, 0, 'the suspension is gone');
    // A call that settles in time is unaffected, and the runtime keeps serving.
    const value = await short.executeHandler('return await $ext.slow.soon()', {
      capabilities: ['ext:slow'],
      extensions: { slow: { soon: () => delay(50, 'in time') } },
    });
    assert.equal(value, 'in time');
  } finally {
    await short.shutdown();
  }
  const defaults = new NexusRuntime();
  assert.equal(defaults.suspensionTimeoutMs, 60000, 'the default');
  await defaults.shutdown();
});

test('more extension calls pending at once than the limit fail with MEMORY_LIMIT, even when caught', async () => {
  const code = (n) => `const ps = [];
    for (let i = 0; i < ${n}; i++) { try { ps.push($ext.x.m(i)); } catch { return 'caught'; } }
    return (await Promise.all(ps)).length;`;
  const context = { capabilities: ['ext:x'], extensions: { x: { m: async (i) => i } } };
  assert.equal(await executor.executeHandler(code(1000), context), 1000);
  await assert.rejects(
    executor.executeHandler(code(1001), context),
    (error) => error.code === 'MEMORY_LIMIT' && /more than 1000 extension calls pending at once/.test(error.message),
  );
});

test('a callback that throws rejects with its own error, after every record of the step, and the suspension is dropped', async () => {
  const mine = new Error('the bus is down');
  const events = [];
  const logs = [];
  const reports = [];
  let calls = 0;
  const extensions = { w: { get: async () => (calls += 1) } };
  const unsubscribe = executor.onMetrics((report) => reports.push(report));
  const before = (await executor.getStats()).cancellations;
  try {
    await assert.rejects(
      executor.executeHandler(
        '$emit("a", 1); $emit("b", 2); $log("hi"); await $ext.w.get(); $emit("c", 3); return 1',
        {
          capabilities: ['events:emit:a', 'events:emit:b', 'events:emit:c', 'ext:w'],
          extensions,
          onEvent: (event) => {
            events.push(event.name);
            throw mine;
          },
          onLog: (line) => logs.push(line.message),
        },
      ),
      (error) => error === mine,
    );
  } finally {
    unsubscribe();
  }
  assert.deepEqual(events, ['a', 'b']);
  assert.deepEqual(logs, ['hi']);
  assert.equal(calls, 0, 'no extension call runs after the application refused a record');
  assert.equal((await executor.getStats()).cancellations, before + 1);
  assert.equal(reports.length, 1);
  assert.equal(reports[0].status, 'error');
  assert.equal(reports[0].code, null);
});

test('a callback that returns a promise is waited for, in order, and its rejection rejects as a throw would', async () => {
  const order = [];
  const value = await executor.executeHandler('$emit("a", 1); $emit("b", 2); $log("hi"); await $ext.w.get(); $emit("c", 3); return 1', {
    capabilities: ['events:emit:a', 'events:emit:b', 'events:emit:c', 'ext:w'],
    extensions: { w: { get: async () => order.push('get') } },
    onEvent: async (event) => {
      await delay(event.name === 'a' ? 30 : 0);
      order.push(event.name);
    },
    onLog: (line) => order.push(line.message),
  });
  assert.equal(value, 1);
  assert.deepEqual(order, ['a', 'b', 'hi', 'get', 'c']);

  const mine = new Error('bus down');
  const delivered = [];
  let calls = 0;
  const before = (await executor.getStats()).cancellations;
  await assert.rejects(
    executor.executeHandler('$emit("a", 1); $emit("b", 2); $log("hi"); await $ext.w.get(); return 1', {
      capabilities: ['events:emit:a', 'events:emit:b', 'ext:w'],
      extensions: { w: { get: async () => (calls += 1) } },
      onEvent: async (event) => {
        delivered.push(event.name);
        if (event.name === 'a') throw mine;
      },
      onLog: (line) => delivered.push(line.message),
    }),
    (error) => error === mine,
  );
  assert.deepEqual(delivered, ['a', 'b', 'hi']);
  assert.equal(calls, 0, 'no extension call runs after a callback rejected');
  assert.equal((await executor.getStats()).cancellations, before + 1);
  // At the end of a handler too (no suspension to cancel); a thenable counts as a promise.
  await assert.rejects(
    executor.executeHandler('$log("x"); return 1', {
      onLog: () => ({ then: (resolve, reject) => setTimeout(() => reject(mine), 5) }),
    }),
    (error) => error === mine,
  );
});

test('a callback that is not a function is refused before anything runs', async () => {
  const refused = (field) => (error) =>
    error instanceof SandboxError && error.code === 'INVALID_ARGUMENT' && error.message.startsWith(`${field}: expected a function, got`);
  assert.throws(() => new WasmSandboxExecutor({ runtime: executor.runtime, onEvent: 'console.log' }), refused('options.onEvent'));
  assert.throws(() => new WasmSandboxExecutor({ runtime: executor.runtime, onLog: {} }), refused('options.onLog'));
  const state = {};
  let charged = 0;
  await assert.rejects(
    executor.executeHandler('$state.step = "started"; return await $ext.pay.charge()', {
      state,
      capabilities: ['state:write:step', 'ext:pay'],
      extensions: { pay: { charge: () => (charged += 1) } },
      onViewCommand: 5,
    }),
    refused('context.onViewCommand'),
  );
  assert.deepEqual(state, {});
  assert.equal(charged, 0);
  // null stands for none, as undefined.
  assert.equal(await executor.executeHandler('$log("x"); return 2', { onLog: null }), 2);
});

test('a state object that refuses a mutation rejects with its own error, after the rest of the step is applied', async () => {
  const events = [];
  const state = Object.freeze({ a: 1 });
  await assert.rejects(
    executor.executeHandler('$state.a = 2; $emit("e", 1); return 1', {
      state,
      capabilities: ['state:write:a', 'events:emit:e'],
      onEvent: (event) => events.push(event.name),
    }),
    (error) => error instanceof TypeError && !(error instanceof SandboxError) && /property: a/.test(error.message),
  );
  assert.deepEqual(events, ['e']);
  assert.deepEqual(state, { a: 1 });
  // A Proxy refusing one key still gets the others.
  const seen = {};
  const picky = new Proxy(seen, {
    defineProperty(target, key, descriptor) {
      if (key === 'locked') throw new RangeError('locked is read-only');
      return Reflect.defineProperty(target, key, descriptor);
    },
  });
  await assert.rejects(
    executor.executeHandler('$state.locked = 1; $state.free = 2; return 1', {
      state: picky,
      capabilities: ['state:write:locked', 'state:write:free'],
    }),
    { name: 'RangeError', message: 'locked is read-only' },
  );
  assert.deepEqual(seen, { free: 2 });
});

test('a misspelt or foreign field of the options or the context is refused, naming it', async () => {
  const refused = (field, pattern) => (error) =>
    error instanceof SandboxError && error.code === 'INVALID_ARGUMENT' && error.message.startsWith(field) && pattern.test(error.message);
  await assert.rejects(
    executor.executeHandler('return 1', { capabilites: ['state:read:a'] }),
    refused('context.capabilites: unknown field "capabilites"', /"capabilities"/),
  );
  await assert.rejects(
    executor.executeHandler('return $state.a', { stateSnapshot: { a: 1 }, capabilities: ['state:read:a'] }),
    refused('context.stateSnapshot', /the executor takes `state`/),
  );
  await assert.rejects(executor.executeHandler('return 1', { state: 5 }), refused('context.state', /the number 5/));
  await assert.rejects(executor.executeHandler('return 1', { state: [] }), refused('context.state', /an array/));
  await assert.rejects(
    executor.executeHandler('return 1', { extensions: { weather: 5 } }),
    refused('extensions.weather', /an object of functions, got the number 5/),
  );
  await assert.rejects(
    executor.executeTool({ name: 't', handler: 'return 1' }, {}, { capabilites: [] }),
    refused('context.capabilites', /unknown field/),
  );
  assert.throws(() => new WasmSandboxExecutor({ extension: {} }), refused('options.extension: unknown field', /"extensions"/));
  await assert.rejects(executor.executeHandler(async () => 1), refused('a handler is source text', /a function would close over the application/));
  await assert.rejects(executor.executeHandler({ source: 'return 1' }), refused('a handler is source text', /neither a string `code` nor `bytecode`/));
  await assert.rejects(executor.executeHandler(undefined), refused('a handler is source text', /, not undefined$/));
  // Every documented field is taken.
  const value = await executor.executeHandler('return [$state.a, $args.b, $scope.c]', {
    state: { a: 1 },
    args: { b: 2 },
    scope: { c: 3 },
    capabilities: ['state:read:a'],
    extensions: {},
    panelId: 'p',
    handlerName: 'h',
    timeoutMs: 1000,
    memoryLimit: 16 << 20,
    language: 'javascript',
    onEvent: () => {},
    onViewCommand: () => {},
    onLog: () => {},
  });
  assert.deepEqual(value, [1, 2, 3]);
});

test('the constructor refuses what it cannot use, as a SandboxError naming the option', () => {
  const refused = (pattern) => (error) => error instanceof SandboxError && error.code === 'INVALID_ARGUMENT' && pattern.test(error.message);
  assert.throws(() => new WasmSandboxExecutor({ runtime: {} }), refused(/^options\.runtime: expected a NexusRuntime, got an object$/));
  assert.throws(() => new WasmSandboxExecutor({ runtime: 'x' }), refused(/^options\.runtime: expected a NexusRuntime/));
  assert.throws(() => executor.onMetrics(5), refused(/^onMetrics: expected a function, got the number 5$/));
  assert.throws(
    () => new WasmSandboxExecutor({ runtime: executor.runtime, config: { poolSize: 1 } }),
    refused(/^options\.config: is for a new runtime, not with options\.runtime/),
  );
  assert.throws(() => new WasmSandboxExecutor({ runtime: executor.runtime, preload: [] }), refused(/^options\.preload: is for a new runtime/));
  assert.throws(() => new WasmSandboxExecutor({ config: 'x' }), refused(/^options\.config: expected an object of runtime options, got the string "x"$/));
  assert.throws(() => new WasmSandboxExecutor({ config: { poolSize: 0 } }), refused(/^options\.config: the pool size is 0/));
  assert.throws(() => new WasmSandboxExecutor({ config: { poolSiz: 1 } }), refused(/^options\.config\.poolSiz: unknown field/));
  assert.throws(() => new WasmSandboxExecutor({ preload: [{ name: 'a' }] }), refused(/^options\.preload\[0\]: missing field "source"$/));
  // The runtime given is used as it is.
  assert.equal(new WasmSandboxExecutor({ runtime: executor.runtime }).runtime, executor.runtime);
});

test("a refused value in the application's state is named by the executor's field, context.state", async () => {
  await assert.rejects(
    executor.executeHandler('return 1', { state: { when: new Date(0) } }),
    (error) =>
      error instanceof SandboxError &&
      error.code === 'INVALID_ARGUMENT' &&
      error.message === 'context.state.when: a Date is not JSON data (pass date.toISOString())',
  );
});

test('a denied access is reported to onMetrics, and the handler sees PERMISSION_DENIED', async () => {
  const seen = [];
  const unsubscribe = executor.onMetrics((metrics) => seen.push(metrics));
  try {
    const value = await executor.executeHandler(
      'try { $state.secret = 1; return "wrote"; } catch (e) { return e.code; }',
      { handlerName: 'probe', state: {} },
    );
    assert.equal(value, 'PERMISSION_DENIED');
  } finally {
    unsubscribe();
  }
  assert.equal(seen.length, 1);
  assert.equal(seen[0].handlerName, 'probe');
  assert.equal(seen[0].status, 'success');
  assert.deepEqual(seen[0].denials, [
    { capability: 'state:write:secret', kind: 'state:write', resource: 'secret', operation: 'state.set' },
  ]);
  assert.ok(seen[0].executionTimeUs > 0);
});

test('precompiled bytecode gives the same result as source', async () => {
  const source = 'return { sum: $args.a + $args.b, seen: $args };';
  const bytecode = await executor.precompileHandler(source);
  assert.ok(Buffer.isBuffer(bytecode) && bytecode.length > 0);
  const context = { args: { a: 2, b: 40 } };
  const fromSource = await executor.executeHandler(source, context);
  const fromBytecode = await executor.executeHandler(bytecode, context);
  assert.deepEqual(fromBytecode, fromSource);
  assert.deepEqual(fromSource, { sum: 42, seen: { a: 2, b: 40 } });
});

test('precompiling bad source rejects with SYNTAX_ERROR and a location', async () => {
  await assert.rejects(
    executor.precompileHandler('return 1 +;'),
    (error) => error instanceof SandboxError && error.code === 'SYNTAX_ERROR' && error.location?.line === 1,
  );
});

test('state mutations land as own data properties whatever the key: __proto__, constructor, prototype', async () => {
  const state = {};
  const value = await executor.executeHandler(
    `$state['__proto__'] = { isAdmin: true };
     $state.constructor = { name: 'forged' };
     $state.prototype = { polluted: true };
     $state.hasOwnProperty = 1;
     return Object.keys($state).length;`,
    { state, capabilities: ['state:write:*', 'state:read:*'] },
  );
  assert.equal(value, 4);
  // The application's object keeps its prototype, and Object.prototype is untouched.
  assert.equal(Object.getPrototypeOf(state), Object.prototype);
  assert.equal(state.isAdmin, undefined);
  assert.equal({}.isAdmin, undefined);
  assert.equal({}.polluted, undefined);
  for (const key of ['__proto__', 'constructor', 'prototype', 'hasOwnProperty']) {
    const own = Object.getOwnPropertyDescriptor(state, key);
    assert.ok(own, `${key} is an own property`);
    assert.deepEqual([own.writable, own.enumerable, own.configurable], [true, true, true], key);
  }
  assert.deepEqual(Object.getOwnPropertyDescriptor(state, '__proto__').value, { isAdmin: true });
  assert.deepEqual(state.constructor, { name: 'forged' });
  assert.deepEqual(JSON.parse(JSON.stringify(state)).prototype, { polluted: true });

  // A setter the application defined is replaced, not called with the handler's value.
  let called = false;
  const guarded = {
    set role(value) {
      called = true;
    },
  };
  await executor.executeHandler('$state.role = "admin"; delete $state.__proto__;', {
    state: guarded,
    capabilities: ['state:write:*'],
  });
  assert.equal(called, false);
  assert.equal(guarded.role, 'admin');
  assert.equal(Object.getPrototypeOf(guarded), Object.prototype, 'deleting __proto__ deletes no prototype');
});

test('SandboxExecutor is WasmSandboxExecutor under its legacy name', async () => {
  assert.equal(SandboxExecutor, WasmSandboxExecutor);
  const legacy = new SandboxExecutor();
  try {
    // Real isolation: the handler sees no host globals.
    assert.equal(await legacy.executeHandler('return typeof process + "/" + typeof require'), 'undefined/undefined');
  } finally {
    await legacy.shutdown();
  }
});

test('a positional timeoutMs wins over context.timeoutMs, which wins over the executor option', async () => {
  const spin = 'const end = Date.now() + 300; while (Date.now() < end) {} return "done";';
  // The executor's option alone, then context.timeoutMs over it, then the positional argument
  // over both: the same order as NexusRuntime's methods.
  const strict = new WasmSandboxExecutor({ runtime: executor.runtime, timeoutMs: 50 });
  await assert.rejects(strict.executeHandler(spin), { code: 'TIMEOUT' });
  assert.equal(await strict.executeHandler(spin, { timeoutMs: 5000 }), 'done');
  await assert.rejects(strict.executeHandler(spin, { timeoutMs: 5000 }, 50), { code: 'TIMEOUT' });
  assert.equal(await strict.executeHandler(spin, { timeoutMs: 50 }, 5000), 'done');
  const tool = { name: 'slow', handler: spin };
  await assert.rejects(strict.executeTool(tool, {}, { timeoutMs: 5000 }, 50), { code: 'TIMEOUT', toolName: 'slow' });
  // NexusRuntime: the positional argument wins over context.timeoutMs.
  const runtime = executor.runtime;
  assert.equal((await runtime.executeHandler(spin, { timeoutMs: 50 }, 5000)).status, 'success');
  assert.equal((await runtime.executeHandler(spin, { timeoutMs: 50 })).error.code, 'TIMEOUT');
});

test('inferCapabilities is a module-level function (no runtime), a method of both classes too', async () => {
  const source = '$state.count = $state.count + 1; $emit("changed");';
  const expected = await executor.runtime.inferCapabilities(source);
  assert.deepEqual(await inferCapabilities(source), expected);
  assert.deepEqual(await executor.inferCapabilities(source), expected);
  assert.ok(expected.capabilities.includes('state:write:count'));
  const pending = inferCapabilities('return (;');
  assert.ok(pending instanceof Promise, 'a syntax error rejects, it does not throw');
  await assert.rejects(pending, (error) => {
    assert.ok(error instanceof SandboxError);
    assert.equal(error.code, 'SYNTAX_ERROR');
    assert.equal(error.location.line, 1);
    return true;
  });
  await assert.rejects(inferCapabilities(42), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(executor.runtime.inferCapabilities(42), { code: 'INVALID_ARGUMENT' });
  assert.equal(typeof NexusRuntime.prototype.inferCapabilities, 'function');
});

test('inferCapabilities works off the event loop: timers run while a large source is parsed', async () => {
  const source = `let n = 0;\n${'n += $state.count ?? 1;\n'.repeat(40_000)}return n;`;
  for (const infer of [inferCapabilities, (code) => executor.runtime.inferCapabilities(code)]) {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = process.hrtime.bigint();
    const inference = await infer(source);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    clearInterval(timer);
    assert.deepEqual(inference.capabilities, ['state:read:count']);
    // A loop blocked for the whole parse would have run no timer at all.
    if (ms > 20) assert.ok(ticks > 0, `no timer ran in ${ms.toFixed(1)} ms of inference`);
  }
});

test('a step with more denials than fit in a call argument list is reported, not an INTERNAL failure', async () => {
  // 32 MiB of output budget holds ~220,000 denials: spread into one push, they overflowed
  // the engine's argument limit and the executor failed INTERNAL, its mutations unapplied.
  const runtime = new NexusRuntime({ outputLimit: 32 * 2 ** 20 });
  const own = new WasmSandboxExecutor({ runtime });
  const state = {};
  const code = "$state.before = 1; for (;;) { try { $ext[''].x(); } catch (e) {} }";
  const error = await own.executeHandler(code, { state, capabilities: ['state:write:before'] }, 20000).then(
    () => assert.fail('resolved'),
    (e) => e,
  );
  assert.equal(error.code, 'MEMORY_LIMIT', String(error.message));
  await runtime.shutdown();
});

test('an extension that throws a value with no string form still rejects inside the handler', async () => {
  const own = new WasmSandboxExecutor({
    extensions: {
      odd: {
        bare: () => {
          throw Object.create(null);
        },
        getter: () => {
          throw Object.defineProperty(new Error(), 'message', { get() { throw new Error('no'); } });
        },
      },
    },
  });
  for (const method of ['bare', 'getter']) {
    const code = `try { await $ext.odd.${method}(); return 'resolved'; } catch (e) { return e.message; }`;
    const message = await own.executeHandler(code, { capabilities: ['ext:odd'] });
    assert.equal(message, 'the extension threw a value that has no string form', method);
  }
  await own.shutdown();
});

test('a resume refused while the queue is full is sent again: every call is performed once and every handler ends', async () => {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  let performed = 0;
  const own = new WasmSandboxExecutor({
    config: { poolSize: 1, queueBound: 2 },
    extensions: { pay: { charge: async (x) => { await gate; performed++; return x; } } },
  });
  const runs = [];
  for (let i = 0; i < 12; i++) {
    const code = 'const v = await $ext.pay.charge($args.i); $state.charged = v; return v';
    runs.push(own.executeHandler(code, { state: {}, args: { i }, capabilities: ['ext:pay', 'state:write:charged'] }));
    // Each suspends (and hibernates) before the next arrives: the queue never refuses a start.
    await delay(15);
  }
  release();
  const values = await Promise.all(runs);
  assert.deepEqual(values, [...Array(12).keys()]);
  assert.equal(performed, 12, 'each call once');
  await own.shutdown();
});

test("shutdown ends an execution waiting on its extension calls with SHUTTING_DOWN, not its suspension's expiry", async () => {
  const own = new WasmSandboxExecutor({
    config: { suspensionTimeoutMs: 60000 },
    extensions: { api: { fetch: () => new Promise(() => {}) } },
  });
  const started = Date.now();
  const waiting = own.executeHandler('return await $ext.api.fetch()', { capabilities: ['ext:api'] });
  await delay(50);
  await own.shutdown(0);
  await assert.rejects(waiting, { code: 'SHUTTING_DOWN' });
  assert.ok(Date.now() - started < 5000, 'at once');
});
