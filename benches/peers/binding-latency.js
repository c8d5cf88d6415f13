#!/usr/bin/env node
// One figure, alone: the latency of a precompiled trivial execution through the Node binding
// (`executeCompiledHandler`, awaited one at a time: p50 of 8,000 after 2,000 for warm-up), and
// the rate with 64 in flight for one second. For A/B comparisons of the binding: pass another
// build of the native module, or a spin budget.
//
//   node binding-latency.js [--binding path/to/nexus.node] [--spin µs] [--rounds N]
'use strict';

const path = require('node:path');

function options(argv) {
  const parsed = { binding: path.join(__dirname, '..', '..', 'crates', 'bindings'), spin: undefined, rounds: 1 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--binding') parsed.binding = path.resolve(argv[++i]);
    else if (argv[i] === '--spin') parsed.spin = Number(argv[++i]);
    else if (argv[i] === '--rounds') parsed.rounds = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return parsed;
}

// The native module at `file`. One loaded directly (another build's nexus.node) is given the
// JSON-text fast path that the package's lib/native.js hands to its own.
function loadBinding(file) {
  const native = require(file);
  // The package says which build it loaded; a native module loaded directly, itself.
  const profile = native.binding?.profile ?? native.definitions?.().profile ?? 'unknown';
  console.error(`nexus binding: ${native.binding?.file ?? file} (${profile} build)`);
  if (profile === 'debug') {
    console.error('refusing to measure a debug build: run `bash scripts/pack-node.sh` (a release build) first');
    process.exit(2);
  }
  if (typeof native.useJsonText === 'function') {
    native.useJsonText(require(path.join(__dirname, '..', '..', 'crates', 'bindings', 'lib', 'json-text')).jsonText);
  }
  return native;
}

// A runtime and `once`, one precompiled trivial execution awaited and checked, warmed up.
async function trivialCaller(NexusRuntime, config = {}) {
  const runtime = new NexusRuntime(config);
  const bytecode = await runtime.precompileHandler('return $args.a + $args.b');
  const context = { args: { a: 1, b: 2 } };
  const once = async () => {
    const result = await runtime.executeCompiledHandler(bytecode, context);
    if (result.returnValue !== 3) throw new Error(`wrong result: ${JSON.stringify(result)}`);
  };
  for (let i = 0; i < 2000; i++) await once();
  return { runtime, once };
}

async function round(NexusRuntime, spin) {
  const { runtime, once } = await trivialCaller(NexusRuntime, spin === undefined ? {} : { spinBeforeParkUs: spin });
  const micros = [];
  for (let i = 0; i < 8000; i++) {
    const start = process.hrtime.bigint();
    await once();
    micros.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  micros.sort((a, b) => a - b);
  const started = Date.now();
  let done = 0;
  while (Date.now() - started < 1000) {
    await Promise.all(Array.from({ length: 64 }, once));
    done += 64;
  }
  const perSecond = (done * 1000) / (Date.now() - started);
  await runtime.shutdown();
  return { p50: micros[4000], p99: micros[7920], perSecond };
}

async function main() {
  const { binding, spin, rounds } = options(process.argv.slice(2));
  const { NexusRuntime } = loadBinding(binding);
  for (let i = 0; i < rounds; i++) {
    const { p50, p99, perSecond } = await round(NexusRuntime, spin);
    console.log(
      `trivial through the binding: p50 ${p50.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs; ` +
        `64 in flight: ${Math.round(perSecond)}/s (spinBeforeParkUs ${spin ?? 'default'})`,
    );
  }
}

module.exports = { loadBinding, trivialCaller };

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
