// Resident memory after 256 executions were parked live at once (each holding a memory slot),
// then finished: the slots stay as their reset left them. With and without lodash preloaded,
// one process each: `node slot-memory.js none` and `node slot-memory.js lodash` (release binding).
const fs = require('fs');
const path = require('path');
const { NexusRuntime, WasmSandboxExecutor } = require('../../crates/bindings');
const withLodash = process.argv[2] === 'lodash';
const rss = () => Number(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096 / 1048576;
const lodash = fs.readFileSync(path.join(__dirname, '..', 'libraries', 'lodash-4.17.21.min.js'), 'utf8');
const runtime = new NexusRuntime({ hibernateAfterMs: 60000, ...(withLodash ? { preload: [{ name: 'lodash.min.js', source: lodash }] } : {}) });
const executor = new WasmSandboxExecutor({ runtime, extensions: { io: { wait: () => new Promise((r) => setTimeout(() => r(1), 300)) } } });
const body = withLodash ? "_.map(_.sortBy(_.keys(_.groupBy($args.xs, 'k'))), _.toUpper)"
                        : "Object.keys(Object.groupBy($args.xs, (x) => x.k)).sort().map((k) => k.toUpperCase())";
const handler = { code: `const v = ${body}; await $ext.io.wait(); return v;`, capabilities: ['ext:io'] };
(async () => {
  await executor.executeHandler(handler, { args: { xs: [{ k: 'a' }] } });
  const before = rss();
  let peak = 0;
  const timer = setInterval(() => { peak = Math.max(peak, rss()); }, 20);
  for (let round = 0; round < 2; round++) {
    await Promise.all(Array.from({ length: 256 }, () => executor.executeHandler(handler, { args: { xs: [{ k: 'b' }, { k: 'a' }] } })));
  }
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 500));
  const after = rss();
  const stats = await runtime.getStats();
  console.log(`${withLodash ? 'lodash' : 'none  '}: RSS ${before.toFixed(0)} MiB after one execution, peak ${peak.toFixed(0)} MiB with 256 parked, ${after.toFixed(0)} MiB once all finished (+${(after - before).toFixed(0)} MiB); hibernations ${stats.hibernations}`);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
