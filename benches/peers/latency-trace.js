#!/usr/bin/env node
// Where the binding's mean goes above its p50: every call of a sequential trivial execution
// (`executeCompiledHandler`, 8,000 timed after 2,000 for warm-up) written to OUT as JSON
// (`t0Us`: CLOCK_MONOTONIC at the first call; `startUs`, `tookUs`: per call), to be laid
// over a scheduler trace taken at the same time with the same clock:
//
//   perf record -k CLOCK_MONOTONIC -e sched:sched_switch -e sched:sched_wakeup -a -o sched.data \
//     node benches/peers/latency-trace.js calls.json [--binding path/to/nexus.node]
//   perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
//   python3 benches/peers/attribute-tail.py calls.json sched.txt
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { loadBinding, trivialCaller } = require('./binding-latency');

async function main() {
  const [out, flag, file] = process.argv.slice(2);
  if (!out || (flag !== undefined && flag !== '--binding')) {
    throw new Error('usage: latency-trace.js OUT.json [--binding path/to/nexus.node]');
  }
  const { NexusRuntime } = loadBinding(file ? path.resolve(file) : path.join(__dirname, '..', '..', 'crates', 'bindings'));
  const { runtime, once } = await trivialCaller(NexusRuntime);
  const calls = 8000;
  const startUs = new Array(calls);
  const tookUs = new Array(calls);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) {
    const start = process.hrtime.bigint();
    await once();
    tookUs[i] = Number(process.hrtime.bigint() - start) / 1000;
    startUs[i] = Number(start - t0) / 1000;
  }
  await runtime.shutdown();
  fs.writeFileSync(out, JSON.stringify({ t0Us: Number(t0) / 1000, startUs, tookUs }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
