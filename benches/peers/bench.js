#!/usr/bin/env node
// Peer comparison: the workloads of ../workloads through this project's Node binding,
// quickjs-emscripten (a fresh QuickJS runtime and context per execution) and isolated-vm (a
// fresh context per execution in one isolate), in one process, one isolated execution at a
// time. Prints µs per execution and the ratios peer / nexus (of the means, and of the p50s).
// `nexus` is the native class (NexusRuntime, resuming suspensions itself); `nexus-executor` is
// WasmSandboxExecutor, the JavaScript layer with its suspend/resume loop and state application.
//
//   npm ci && node --no-node-snapshot bench.js [--iterations-scale F] [--rounds N] [--only a,b] [--json]
//
// Build the binding first: `bash scripts/pack-node.sh` (or `npm run build:release` in
// crates/bindings). The harness prints which native module it loaded and refuses a debug build
// (its own crates unoptimized: several times slower, and silently so). isolated-vm needs
// --no-node-snapshot on Node 20.
//
// Fairness notes. The peers run the same handler sources behind a small shim that gives them
// $args, $state, $emit, $view and $ext without any capability check, and their extension call
// is a synchronous host function whose value is wrapped in a resolved Promise; Nexus checks
// every access on the host and really suspends and resumes the execution (a second call
// into the runtime). Each system's result is checked against the workload's `expect`, so a
// broken run is never timed. Every system is warmed up on a workload before any is timed, and
// the systems are timed in rounds, each round starting with the next system, so that none is
// always timed first; a round times each system for at least the workload's iterations and at
// least 300 ms (both scaled by --iterations-scale); a system's figures are those of its round
// with the median mean.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { performance } = require('node:perf_hooks');

const WORKLOADS_DIR = path.join(__dirname, '..', 'workloads');
const BINDING = path.join(__dirname, '..', '..', 'crates', 'bindings');

/** Sequential executions per workload and round at scale 1 (after a tenth as many for warm-up). */
const ITERATIONS = { trivial: 3000, state: 2000, compute: 40, suspend: 2000, cold: 600, lodash: 100 };
/** The least time each system is timed per workload and round at scale 1, in ms (iterations go on until both hold). */
const MIN_ROUND_MS = 300;

function parseArgs(argv) {
  const options = { scale: 1, rounds: 3, only: null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') options.json = true;
    else if (arg === '--iterations-scale') options.scale = Number(argv[++i]);
    else if (arg === '--rounds') options.rounds = Number(argv[++i]);
    else if (arg === '--only') options.only = argv[++i].split(',');
    else {
      console.error(`unknown argument ${arg}`);
      process.exit(2);
    }
  }
  if (!(options.scale > 0)) {
    console.error('--iterations-scale needs a positive number');
    process.exit(2);
  }
  if (!(Number.isInteger(options.rounds) && options.rounds > 0)) {
    console.error('--rounds needs a positive integer');
    process.exit(2);
  }
  return options;
}

function loadWorkloads() {
  const table = JSON.parse(fs.readFileSync(path.join(WORKLOADS_DIR, 'workloads.json'), 'utf8'));
  return Object.entries(table).map(([name, spec]) => ({
    name,
    ...spec,
    code: fs.readFileSync(path.join(WORKLOADS_DIR, spec.source), 'utf8'),
    // Libraries the handler starts with: preloaded by Nexus, evaluated in each fresh context by the peers.
    preload: (spec.preload ?? []).map((file) => ({
      name: path.basename(file),
      source: fs.readFileSync(path.join(WORKLOADS_DIR, file), 'utf8'),
    })),
  }));
}

let uniqueCounter = 0;
/** The source of one execution: made unique for `uniquePerExecution` workloads. */
function sourceOf(workload) {
  return workload.uniquePerExecution ? `${workload.code}\n// ${process.pid}-${uniqueCounter++}` : workload.code;
}

// ---------------------------------------------------------------------------------------------
// Nexus, through the binding's native class (the executor layer adds only the JS loop).

/** One Nexus runtime (or executor) per set of preloaded libraries, made by `make(preload)`. */
function perPreload(make) {
  const made = new Map();
  const of = (w) => {
    const key = w.preload.map((library) => library.name).join('\n');
    if (!made.has(key)) made.set(key, make(w.preload));
    return made.get(key);
  };
  return { of, all: () => [...made.values()] };
}

async function nexusSystem() {
  const { NexusRuntime } = require(BINDING);
  const runtimes = perPreload((preload) => new NexusRuntime({ queueBound: 100_000, preload }));
  const contexts = new Map();
  const contextOf = (w) => {
    if (!contexts.has(w.name)) {
      contexts.set(w.name, {
        args: w.args,
        stateSnapshot: w.state,
        capabilities: w.capabilities,
        extensionRegistry: w.extensions,
      });
    }
    return contexts.get(w.name);
  };
  async function run(w) {
    const runtime = runtimes.of(w);
    let result = await runtime.executeHandler(sourceOf(w), contextOf(w));
    while (result.status === 'suspended') {
      const call = result.suspension.calls[0];
      const value = w.extensionResults[`${call.extension}.${call.method}`];
      result = await runtime.resumeHandler(result.suspension.id, call.callId, { value });
    }
    if (result.status !== 'success') throw new Error(`nexus: ${result.error.code}: ${result.error.message}`);
    return result.returnValue;
  }
  const close = () => Promise.all(runtimes.all().map((runtime) => runtime.shutdown()));
  return { name: 'nexus', run, close };
}

/** The same through WasmSandboxExecutor (the JS layer applications use), on its own runtime. */
async function nexusExecutorSystem() {
  const { WasmSandboxExecutor } = require(BINDING);
  const executors = perPreload((preload) => new WasmSandboxExecutor({ config: { queueBound: 100_000 }, preload }));
  const extensionsOf = (w) =>
    Object.fromEntries(
      Object.entries(w.extensions).map(([name, methods]) => [
        name,
        Object.fromEntries(methods.map((m) => [m, async () => w.extensionResults[`${name}.${m}`]])),
      ]),
    );
  const contexts = new Map();
  async function run(w) {
    if (!contexts.has(w.name)) {
      contexts.set(w.name, { args: w.args, capabilities: w.capabilities, extensions: extensionsOf(w) });
    }
    // A fresh copy of the state each time: the executor applies mutations to it.
    return executors.of(w).executeHandler(sourceOf(w), { ...contexts.get(w.name), state: { ...w.state } });
  }
  const close = () => Promise.all(executors.all().map((executor) => executor.shutdown()));
  return { name: 'nexus-executor', run, close };
}

// ---------------------------------------------------------------------------------------------
// The shim the peers run the handler in: the same handler API, records kept in the sandbox.

function shimmed(w, code) {
  const extensions = Object.entries(w.extensions)
    .map(([name, methods]) => {
      const fns = methods.map((m) => `${JSON.stringify(m)}: (...a) => Promise.resolve(JSON.parse(__ext(${JSON.stringify(`${name}.${m}`)}, JSON.stringify(a))))`);
      return `${JSON.stringify(name)}: { ${fns.join(', ')} }`;
    })
    .join(', ');
  return `(() => {
  const __records = { stateMutations: [], events: [], viewCommands: [] };
  const $args = JSON.parse(${JSON.stringify(JSON.stringify(w.args))});
  const $scope = {};
  const $state = new Proxy(JSON.parse(${JSON.stringify(JSON.stringify(w.state))}), {
    set(target, key, value) { target[key] = value; __records.stateMutations.push({ op: 'set', key, value }); return true; },
    deleteProperty(target, key) { delete target[key]; __records.stateMutations.push({ op: 'delete', key }); return true; },
  });
  const $emit = (name, payload) => { __records.events.push({ name, payload }); };
  const $view = { update: (componentId, args) => { __records.viewCommands.push({ type: 'update', componentId, args }); } };
  const $ext = { ${extensions} };
  const $log = () => {};
  return (async function () {
${code}
  })().then((returnValue) => JSON.stringify({ returnValue, ...__records }));
})()`;
}

function cannedExtension(w) {
  return (name) => JSON.stringify(w.extensionResults[name] ?? null);
}

// ---------------------------------------------------------------------------------------------
// quickjs-emscripten: a fresh runtime + context per execution.

async function quickjsSystem() {
  const { getQuickJS } = require('quickjs-emscripten');
  const QuickJS = await getQuickJS();
  async function run(w) {
    const vm = QuickJS.newContext();
    try {
      const answer = cannedExtension(w);
      const ext = vm.newFunction('__ext', (name) => vm.newString(answer(vm.getString(name))));
      vm.setProp(vm.global, '__ext', ext);
      ext.dispose();
      for (const library of w.preload) vm.unwrapResult(vm.evalCode(library.source, library.name)).dispose();
      const promise = vm.unwrapResult(vm.evalCode(shimmed(w, sourceOf(w))));
      vm.runtime.executePendingJobs();
      const state = vm.getPromiseState(promise);
      promise.dispose();
      if (state.type !== 'fulfilled') {
        const error = state.type === 'rejected' ? vm.dump(state.error) : 'pending';
        if (state.error) state.error.dispose();
        throw new Error(`quickjs-emscripten: ${JSON.stringify(error)}`);
      }
      const text = vm.getString(state.value);
      state.value.dispose();
      return JSON.parse(text).returnValue;
    } finally {
      vm.dispose();
    }
  }
  return { name: 'quickjs-emscripten', run, close: async () => {} };
}

// ---------------------------------------------------------------------------------------------
// isolated-vm: one isolate, a fresh context per execution.

async function isolatedVmSystem() {
  const ivm = require('isolated-vm');
  const isolate = new ivm.Isolate({ memoryLimit: 128 });
  // Each library compiled once for the isolate (its best case), run in every fresh context.
  const scripts = new Map();
  const scriptOf = (library) => {
    if (!scripts.has(library.name)) scripts.set(library.name, isolate.compileScriptSync(library.source, { filename: library.name }));
    return scripts.get(library.name);
  };
  async function run(w) {
    const context = await isolate.createContext();
    try {
      for (const library of w.preload) await scriptOf(library).run(context);
      const answer = cannedExtension(w);
      await context.global.set('__ext', new ivm.Callback((name) => answer(name)));
      const text = await context.eval(shimmed(w, sourceOf(w)), { promise: true, copy: true });
      return JSON.parse(text).returnValue;
    } finally {
      context.release();
    }
  }
  return { name: 'isolated-vm', run, close: async () => isolate.dispose() };
}

// ---------------------------------------------------------------------------------------------

function checker(system, w) {
  return (value) => {
    if (JSON.stringify(value) !== JSON.stringify(w.expect)) {
      throw new Error(`${system.name} ${w.name}: returned ${JSON.stringify(value)}, expected ${JSON.stringify(w.expect)}`);
    }
  };
}

async function warmUp(system, w, iterations) {
  const check = checker(system, w);
  for (let i = 0; i < Math.max(1, Math.ceil(iterations / 10)); i++) check(await system.run(w));
}

/**
 * Times `system` on `w`: at least `iterations` executions, and on for at least `minMs` (a
 * workload of ~100 µs timed 100 times is a 10 ms sample, which this VM's slow stretches move by
 * half; every system gets the same rule).
 */
async function measure(system, w, iterations, minMs) {
  const check = checker(system, w);
  const times = [];
  const start = performance.now();
  while (times.length < iterations || performance.now() - start < minMs) {
    const t0 = performance.now();
    check(await system.run(w));
    times.push(performance.now() - t0);
  }
  const total = performance.now() - start;
  const n = times.length;
  times.sort((a, b) => a - b);
  return {
    meanUs: (total * 1000) / n,
    p50Us: times[Math.floor(n / 2)] * 1000,
    p99Us: times[Math.min(n - 1, Math.floor(n * 0.99))] * 1000,
    iterations: n,
  };
}

/** Nexus with `concurrency` executions in flight: the throughput a Node service sees. */
async function measureConcurrent(system, w, iterations, concurrency) {
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    while (next < iterations) {
      next += 1;
      const value = await system.run(w);
      if (JSON.stringify(value) !== JSON.stringify(w.expect)) throw new Error(`nexus ${w.name}: wrong result`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  return { executionsPerSecond: iterations / seconds, concurrency, iterations };
}

/** Says which native module the binding loaded; exits unless it is a release build. */
function checkBinding() {
  const { binding } = require(BINDING);
  console.error(`nexus binding: ${binding.file} (${binding.profile} build)`);
  if (binding.profile !== 'release') {
    console.error('refusing to measure a debug build: run `bash scripts/pack-node.sh` (a release build) first');
    process.exit(2);
  }
  return binding;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const binding = checkBinding();
  const workloads = loadWorkloads().filter((w) => !options.only || options.only.includes(w.name));
  const systems = [await nexusSystem(), await nexusExecutorSystem(), await quickjsSystem(), await isolatedVmSystem()];
  const rows = [];
  for (const w of workloads) {
    const iterations = Math.max(5, Math.round(ITERATIONS[w.name] * options.scale));
    const row = { workload: w.name, systems: {} };
    for (const system of systems) await warmUp(system, w, iterations);
    const rounds = Object.fromEntries(systems.map((s) => [s.name, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (let k = 0; k < systems.length; k++) {
        const system = systems[(round + k) % systems.length];
        rounds[system.name].push(await measure(system, w, iterations, MIN_ROUND_MS * options.scale));
      }
    }
    for (const system of systems) {
      const sorted = rounds[system.name].sort((a, b) => a.meanUs - b.meanUs);
      row.systems[system.name] = { ...sorted[Math.floor(sorted.length / 2)], roundMeansUs: sorted.map((r) => r.meanUs) };
    }
    row.nexusConcurrent = await measureConcurrent(systems[0], w, iterations, 64);
    const nexus = row.systems.nexus.meanUs;
    row.ratios = Object.fromEntries(
      systems.slice(1).map((s) => [s.name, row.systems[s.name].meanUs / nexus]),
    );
    // The same on the medians, which the host's slow stretches move less than the means.
    const nexusP50 = row.systems.nexus.p50Us;
    row.ratiosP50 = Object.fromEntries(
      systems.slice(1).map((s) => [s.name, row.systems[s.name].p50Us / nexusP50]),
    );
    // The peers against what an application calls: the executor.
    const executor = row.systems['nexus-executor'].meanUs;
    row.ratiosToExecutor = Object.fromEntries(
      systems.slice(2).map((s) => [s.name, row.systems[s.name].meanUs / executor]),
    );
    rows.push(row);
    if (!options.json) printRow(row, systems);
  }
  for (const system of systems) await system.close();
  const machine = { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown' };
  if (options.json) console.log(JSON.stringify({ machine, binding, rows }, null, 2));
  else console.log(`\n${machine.cpus} × ${machine.cpu}, Node ${machine.node}, nexus binding ${binding.file} (${binding.profile})`);
}

let headerPrinted = false;
function printRow(row, systems) {
  if (!headerPrinted) {
    const names = systems.map((s) => s.name.padStart(20)).join('');
    console.log(`${'workload'.padEnd(10)}${names}   ratios peer/nexus (µs per execution, mean; nexus ×64 concurrent)`);
    headerPrinted = true;
  }
  const cells = systems.map((s) => `${row.systems[s.name].meanUs.toFixed(1)} µs`.padStart(20)).join('');
  const ratios = Object.entries(row.ratios)
    .map(([name, ratio]) => `${name} ${ratio.toFixed(1)}×`)
    .join(', ');
  const medians = Object.entries(row.ratiosP50)
    .slice(1)
    .map(([name, ratio]) => `${name} ${ratio.toFixed(1)}×`)
    .join(', ');
  const concurrent = `${Math.round(row.nexusConcurrent.executionsPerSecond)}/s`;
  console.log(`${row.workload.padEnd(10)}${cells}   ${ratios} (p50s: ${medians}); nexus ×64: ${concurrent}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
