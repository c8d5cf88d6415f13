'use strict';

// A runtime nobody shuts down: once it is garbage, its finalizer stops it, and its threads and
// memory are given back. Run in a child process of its own (it counts the process's threads,
// and needs --expose-gc).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const BINDING = path.join(__dirname, '..');

const script = `
  const fs = require('node:fs');
  const { NexusRuntime, WasmSandboxExecutor } = require(${JSON.stringify(BINDING)});
  const threads = () => Number(/^Threads:\\s+(\\d+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
  const rssMb = () => process.memoryUsage().rss / 2 ** 20;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // Collects until the thread count is down to at most 'target' (or 20 s passed).
  async function collect(target) {
    const deadline = Date.now() + 20_000;
    do {
      global.gc();
      await sleep(20);
    } while (threads() > target && Date.now() < deadline);
    global.gc();
    await sleep(200);
  }
  async function useOnce(i) {
    // Half of them bare runtimes, half executors (each makes its own runtime).
    if (i % 2 === 0) {
      const runtime = new NexusRuntime();
      const result = await runtime.executeHandler('return $args.i * 2', { args: { i } });
      if (result.returnValue !== i * 2) throw new Error('wrong result ' + JSON.stringify(result));
    } else {
      const executor = new WasmSandboxExecutor();
      const value = await executor.executeHandler('return $args.i * 2', { args: { i } });
      if (value !== i * 2) throw new Error('wrong value ' + value);
    }
  }
  (async () => {
    // Warm up: whatever the first runtime starts for the whole process stays.
    for (let i = 0; i < 4; i++) await useOnce(i);
    await collect(0);
    const before = { threads: threads(), rss: rssMb() };
    let peak = { ...before };
    for (let i = 0; i < 200; i++) {
      await useOnce(i);
      peak = { threads: Math.max(peak.threads, threads()), rss: Math.max(peak.rss, rssMb()) };
      // Nothing calls shutdown() or gc() here: V8 collects the garbage runtimes by itself, told
      // what they cost (without that, their small objects let a few hundred pile up, until
      // the address space their instance pools reserve runs out).
    }
    await collect(before.threads);
    const after = { threads: threads(), rss: rssMb() };
    console.log(JSON.stringify({ before, peak, after }));
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
`;

test('200 runtimes never shut down are collected, and give their threads and memory back', () => {
  const run = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 240_000 });
  assert.equal(run.error, undefined, 'the child ended in time');
  assert.equal(run.status, 0, run.stderr);
  const { before, peak, after } = JSON.parse(run.stdout.trim().split('\n').pop());
  const report = `threads ${before.threads} -> peak ${peak.threads} -> ${after.threads}; RSS ${before.rss.toFixed(0)} -> peak ${peak.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MB`;
  console.log(report);
  assert.ok(peak.threads > before.threads, `runtimes run threads of their own: ${report}`);
  // Collected along the way, not all at the end: 200 runtimes at once would be 800 threads.
  assert.ok(peak.threads < before.threads + 200, `garbage runtimes were collected as they piled up: ${report}`);
  assert.ok(after.threads <= before.threads, `every runtime's threads ended: ${report}`);
  // Memory: back to where it started, give or take what the allocators keep for reuse.
  assert.ok(after.rss <= before.rss + 40, `memory came back: ${report}`);
});
