// The binding and the event loop: its spin-before-poll handle (src/loop_spin.rs) must never keep
// a loop alive, must close with a worker thread's environment, and can be turned off; results
// it delivers itself resume their callers as the loop's own delivery does.

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const { AsyncLocalStorage } = require('node:async_hooks');
const { NexusRuntime } = require('..');

const BINDING = path.join(__dirname, '..');

const script = `
  const { NexusRuntime } = require(${JSON.stringify(BINDING)});
  const runtime = new NexusRuntime({ poolSize: 2 });
  runtime.executeHandler('return $args.a + $args.b', { args: { a: 2, b: 3 } }).then(async (result) => {
    console.log(JSON.stringify(result.returnValue));
    await runtime.shutdown();
  });
`;

test('a process that used the binding exits by itself once its work is done', () => {
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.error, undefined, 'the process ended before the timeout');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), '5');
});

test('a worker thread runs executions and exits cleanly (its loop closes with no handle left)', async () => {
  const worker = new Worker(
    `
    const { parentPort } = require('node:worker_threads');
    ${script.replace('console.log', 'parentPort.postMessage')}
    `,
    { eval: true },
  );
  const messages = [];
  worker.on('message', (message) => messages.push(message));
  const exitCode = await new Promise((resolve, reject) => {
    worker.on('exit', resolve);
    worker.on('error', reject);
  });
  assert.equal(exitCode, 0);
  assert.deepEqual(messages, ['5']);
});

test('spinning can be turned off, and a bad or too long spin budget is refused with a code', async () => {
  const runtime = new NexusRuntime({ spinBeforeParkUs: 0 });
  const result = await runtime.executeHandler('return 7');
  assert.equal(result.returnValue, 7);
  await runtime.shutdown();
  assert.throws(() => new NexusRuntime({ spinBeforeParkUs: -1 }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => new NexusRuntime({ spinBeforeParkUs: 1_000_000 }), {
    code: 'INVALID_ARGUMENT',
    message: /spinBeforeParkUs: at most 1000/,
  });
  const longest = new NexusRuntime({ spinBeforeParkUs: 1000 });
  assert.equal((await longest.executeHandler('return 8')).returnValue, 8);
  await longest.shutdown();
});

test('a result resumes its caller in the caller\'s async context, with its ticks and microtasks, whether the spin or the loop delivers it', async () => {
  const storage = new AsyncLocalStorage();
  for (const spinBeforeParkUs of [0, 1000]) {
    const runtime = new NexusRuntime({ spinBeforeParkUs });
    const callers = [1, 2, 3].map((caller) =>
      storage.run({ caller }, async () => {
        const seen = [];
        for (let i = 0; i < 40; i++) {
          const result = await runtime.executeHandler('return $args.i * 2', { args: { i } });
          assert.equal(result.returnValue, i * 2);
          await new Promise((resolve) => process.nextTick(resolve));
          await Promise.resolve();
          seen.push(storage.getStore().caller);
        }
        return seen;
      }),
    );
    assert.deepEqual(await Promise.all(callers), [1, 2, 3].map((caller) => new Array(40).fill(caller)));
    await runtime.shutdown();
  }
});
