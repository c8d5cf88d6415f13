'use strict';

// Thousands of concurrent executions from one Node process make progress together, and the
// event loop stays free while they run.
const test = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { WasmSandboxExecutor, NexusRuntime } = require('..');

const COUNT = 2000;
const HANDLER = `let sum = 0;
for (let k = 0; k < 20000; k++) sum += k % 7;
$state.n = $args.i * 2;
return { i: $args.i, twice: $state.n, sum };`;

test(`${COUNT} concurrent executeHandler calls resolve correctly while a setInterval ticks`, async () => {
  const executor = new WasmSandboxExecutor();
  try {
    let completed = 0;
    const progressAtTicks = [];
    const ticker = setInterval(() => progressAtTicks.push(completed), 1);
    const runs = Array.from({ length: COUNT }, (_, i) =>
      executor
        // About a millisecond of work each: the burst keeps both cores busy for a while.
        .executeHandler(HANDLER, {
          args: { i },
          state: {},
          capabilities: ['state:write:n', 'state:read:n'],
        })
        .finally(() => {
          completed += 1;
        }),
    );
    const results = await Promise.all(runs);
    clearInterval(ticker);
    results.forEach((value, i) => assert.deepEqual(value, { i, twice: i * 2, sum: 59997 }));
    // The interval ran while executions were completing, not only before or after them.
    const during = progressAtTicks.filter((done) => done > 0 && done < COUNT);
    assert.ok(during.length >= 2, `ticks while executions completed: ${during.length} of ${progressAtTicks.length}`);
    const stats = await executor.getStats();
    assert.ok(stats.executions.success >= COUNT);
  } finally {
    await executor.shutdown();
  }
});

test('10,000 concurrent executions with the default configuration all succeed, and a 1 ms interval keeps firing', async () => {
  const BURST = 10_000;
  const runtime = new NexusRuntime();
  try {
    let completed = 0;
    const progressAtTicks = [];
    let last = performance.now();
    let longestGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      progressAtTicks.push(completed);
    }, 1);
    const started = performance.now();
    const runs = Array.from({ length: BURST }, (_, i) =>
      runtime
        .executeHandler('let s = 0; for (let k = 0; k < 100; k++) s += k; return s + $args.i;', { args: { i } })
        .finally(() => {
          completed += 1;
        }),
    );
    const issued = performance.now() - started;
    const results = await Promise.allSettled(runs);
    const elapsed = performance.now() - started;
    clearInterval(ticker);
    const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason.code);
    assert.deepEqual(refused.slice(0, 3), [], `${refused.length} of ${BURST} refused`);
    results.forEach((r, i) => {
      assert.equal(r.value.status, 'success');
      assert.equal(r.value.returnValue, 4950 + i);
    });
    const during = progressAtTicks.filter((done) => done > 0 && done < BURST);
    const report = `${BURST} in ${elapsed.toFixed(0)} ms (calls issued in ${issued.toFixed(0)} ms), ${progressAtTicks.length} ticks, ${during.length} while executions completed, longest gap ${longestGap.toFixed(0)} ms`;
    console.log(report);
    // The event loop ran all along: ticks while results arrived, and no long stall after the
    // calls were issued (issuing 10,000 calls is itself one synchronous stretch of JavaScript).
    assert.ok(during.length >= 10, report);
    assert.ok(longestGap < issued + 250, report);
    const stats = await runtime.getStats();
    assert.equal(stats.executions.success, BURST);
    assert.equal(stats.queued, 0);
  } finally {
    await runtime.shutdown();
  }
});

test('OVERLOADED still refuses real overload: beyond the pool and the queue bound, at once', async () => {
  const runtime = new NexusRuntime({ poolSize: 1, workers: 1, queueBound: 3 });
  try {
    const busy = runtime.executeHandler('const end = Date.now() + 300; while (Date.now() < end) {} return "busy";');
    const queued = Array.from({ length: 3 }, (_, i) => runtime.executeHandler('return $args.i', { args: { i } }));
    const started = performance.now();
    await assert.rejects(runtime.executeHandler('return "too many"'), {
      code: 'OVERLOADED',
      message: /queue is full/,
    });
    assert.ok(performance.now() - started < 200, 'refused at once, not after the busy one ended');
    assert.equal((await busy).returnValue, 'busy');
    assert.deepEqual((await Promise.all(queued)).map((r) => r.returnValue), [0, 1, 2]);
    // Room again once the queue drained.
    assert.equal((await runtime.executeHandler('return "again"')).returnValue, 'again');
  } finally {
    await runtime.shutdown();
  }
});
