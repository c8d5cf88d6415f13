'use strict';

// index.d.ts against the code: compiled with a TypeScript program using the package
// (`tsc --noEmit --strict`), and its error codes, nesting limit and result and statistics
// shapes compared with the Rust definitions (the error codes' names in crates/abi, the rest
// as the native module produces them).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const ts = require('typescript');
const { NexusRuntime, MAX_NESTING } = require('..');

const crate = path.join(__dirname, '..');
const declarations = path.join(crate, 'index.d.ts');

test('the TypeScript usage example compiles with tsc --noEmit --strict', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--types', 'node'];
  const run = spawnSync(process.execPath, [tsc, ...args, path.join(__dirname, 'types', 'usage.ts')], {
    cwd: crate,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stdout + run.stderr);
});

/** The checker's view of index.d.ts: `type(name)` of an exported type, `value(name)` of a value. */
let view;
function declared() {
  view ??= check();
  return view;
}

function check() {
  const program = ts.createProgram([declarations], { strict: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(declarations));
  const exports = new Map(checker.getExportsOfModule(module).map((symbol) => [symbol.name, symbol]));
  const symbol = (name) => {
    const found = exports.get(name);
    assert.ok(found, `index.d.ts exports ${name}`);
    return found;
  };
  const type = (name) => checker.getDeclaredTypeOfSymbol(symbol(name));
  const properties = (t) =>
    Object.fromEntries(
      checker.getPropertiesOfType(t).map((p) => [p.name, (p.flags & ts.SymbolFlags.Optional) !== 0]),
    );
  return {
    checker,
    exports: [...exports.values()],
    type,
    properties,
    property: (t, name) => checker.getNonNullableType(checker.getTypeOfSymbol(t.getProperty(name))),
    value: (name) => checker.getTypeOfSymbol(symbol(name)),
  };
}

test('ErrorCode lists exactly the codes of the Rust ErrorCode', () => {
  const rust = fs.readFileSync(path.join(crate, '..', 'abi', 'src', 'lib.rs'), 'utf8');
  // `ErrorCode::as_str`: an exhaustive match, so every variant has its arm there.
  const body = /pub fn as_str\(self\) -> &'static str \{([\s\S]*?)\n {4}\}/.exec(rust)?.[1];
  assert.ok(body, 'ErrorCode::as_str found in crates/abi/src/lib.rs');
  const codes = [...body.matchAll(/Self::\w+ => "([A-Z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 13, codes.join(' '));
  const { type } = declared();
  const union = type('ErrorCode').types.map((t) => t.value);
  assert.deepEqual([...union].sort(), [...codes].sort());
});

test('MAX_NESTING is the native limit, in the types and at run time', () => {
  const { value } = declared();
  assert.equal(value('MAX_NESTING').value, MAX_NESTING);
  assert.equal(MAX_NESTING, 128);
});

test('ExecutionResult, its parts and RuntimeStats have the shape the runtime produces', async () => {
  const { type, properties, property } = declared();
  const runtime = new NexusRuntime();
  try {
    const success = await runtime.executeHandler('$log("x"); return 1');
    // A thrown error with a code of the handler's own: every optional key of the error is there.
    const failed = await runtime.executeHandler("const a = 1;\nthrow Object.assign(new TypeError('boom'), { code: 'E_MINE' });");
    const suspended = await runtime.executeHandler('return await $ext.w.get(1)', {
      capabilities: ['ext:w'],
      extensionRegistry: { w: ['get'] },
    });
    assert.deepEqual([success.status, failed.status, suspended.status], ['success', 'error', 'suspended']);

    /** Every key of `objects` is declared, and every declared key that is not optional is in each. */
    const conforms = (t, objects, what) => {
      const shape = properties(t);
      for (const object of objects) {
        for (const key of Object.keys(object)) assert.ok(key in shape, `${what}.${key} is not in index.d.ts`);
        for (const [key, optional] of Object.entries(shape)) {
          if (!optional) assert.ok(key in object, `${what}.${key} of index.d.ts is missing at run time`);
        }
      }
    };
    const result = type('ExecutionResult');
    conforms(result, [success, failed, suspended], 'ExecutionResult');
    conforms(type('ExecutionMetrics'), [success.metrics], 'ExecutionResult.metrics');
    conforms(type('ExecutionErrorInfo'), [failed.error], 'ExecutionResult.error');
    // Every optional key of the error is seen too: the runtime has nothing the types lack.
    assert.deepEqual(Object.keys(properties(type('ExecutionErrorInfo'))).sort(), Object.keys(failed.error).sort());
    conforms(property(result, 'suspension'), [suspended.suspension], 'ExecutionResult.suspension');
    conforms(type('PendingCall'), suspended.suspension.calls, 'PendingCall');
    conforms(type('LogLine'), success.logs, 'LogLine');
    await runtime.resumeHandler(suspended.suspension.id, 1, { value: 2 });
    conforms(type('RuntimeStats'), [await runtime.getStats()], 'RuntimeStats');
    conforms(type('CapabilityInference'), [await runtime.inferCapabilities('return $state.a')], 'CapabilityInference');
  } finally {
    await runtime.shutdown();
  }
});

test('the classes and functions the package exports are the ones index.d.ts declares', () => {
  const { checker, value, exports } = declared();
  const pkg = require('..');
  const values = exports.filter((symbol) => symbol.flags & ts.SymbolFlags.Value).map((symbol) => symbol.name);
  assert.deepEqual([...values].sort(), Object.keys(pkg).sort());
  // Each class's methods, as the native module and the JavaScript layer define them.
  for (const name of ['NexusRuntime', 'WasmSandboxExecutor']) {
    const instance = checker.getTypeOfSymbol(value(name).getProperty('prototype'));
    const declaredMethods = checker
      .getPropertiesOfType(instance)
      .filter((p) => checker.getTypeOfSymbol(p).getCallSignatures().length > 0)
      .map((p) => p.name);
    // Read through descriptors: a getter of the native class (suspensionTimeoutMs) throws
    // when read on the prototype itself.
    const own = Object.getOwnPropertyDescriptors(pkg[name].prototype);
    const actual = Object.keys(own).filter((key) => key !== 'constructor' && typeof own[key].value === 'function');
    assert.deepEqual([...declaredMethods].sort(), [...actual].sort(), name);
  }
});
