'use strict';

// Thousands of concurrent executions from one Node process make progress together, and the
// event loop stays free while they run.
const test = require('node:test');
const assert = require('node:assert/strict');
const { WasmSandboxExecutor } = require('..');

const COUNT = 2000;
const HANDLER = `let sum = 0;
for (let k = 0; k < 20000; k++) sum += k % 7;
$state.n = $args.i * 2;
return { i: $args.i, twice: $state.n, sum };`;

test(`${COUNT} concurrent executeHandler calls resolve correctly while a setInterval ticks`, async () => {
  // The default queue (1,024 waiting beyond the 256-instance pool) would answer part of this
  // burst with OVERLOADED; a service expecting such bursts sizes its queue for them.
  const executor = new WasmSandboxExecutor({ config: { queueBound: 4 * COUNT } });
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
