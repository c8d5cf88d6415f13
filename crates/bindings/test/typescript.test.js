'use strict';

// TypeScript handlers from Node: `language: "typescript"` on NexusRuntime's context, on
// precompileHandler's options and on WasmSandboxExecutor's handler; every location an error
// reports is a line of the TypeScript. And handler.d.ts: the handler's globals for editors,
// compiled against a handler-shaped program with tsc.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { NexusRuntime, WasmSandboxExecutor, SandboxError, inferCapabilities } = require('..');

const runtime = new NexusRuntime({ poolSize: 8 });
test.after(() => runtime.shutdown());

const FEATURES = `interface Point { x: number; y?: number }
type Pair<T> = [T, T];
enum Direction { Up = 1, Down }
function pair<T>(value: T): Pair<T> { return [value, value]; }
const point = $args as Point;
return { pair: pair<number>(point.x), y: point?.y ?? -1, down: Direction.Down };`;

// Line 5 throws.
const THROWS = `interface Input {
  n: number;
}
const input = $args as Input;
const v: number = (input as any).missing.deep;
return v;`;

const assertLine5 = (error) => {
  assert.equal(error.code, 'RUNTIME_ERROR');
  assert.equal(error.location.line, 5);
  assert.equal(error.snippet, 'const v: number = (input as any).missing.deep;');
  const stack = error.stack ?? error.handlerStack;
  assert.match(stack, /handler\.ts:5:/);
  assert.doesNotMatch(stack, /handler\.js/);
};

test('executeHandler runs TypeScript with language: "typescript"', async () => {
  const result = await runtime.executeHandler(FEATURES, { args: { x: 3 }, language: 'typescript' });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(result.returnValue, { pair: [3, 3], y: -1, down: 2 });
  // The same text as JavaScript does not parse.
  const javascript = await runtime.executeHandler(FEATURES, { args: { x: 3 } });
  assert.equal(javascript.error.code, 'SYNTAX_ERROR');
});

test('errors of TypeScript point into the TypeScript', async () => {
  assertLine5((await runtime.executeHandler(THROWS, { language: 'typescript' })).error);
  const syntax = await runtime.executeHandler('type A = number;\nconst a: A = ;', { language: 'typescript' });
  assert.equal(syntax.error.code, 'SYNTAX_ERROR');
  assert.equal(syntax.error.location.line, 2);
  assert.equal(syntax.error.snippet, 'const a: A = ;');
  const denied = await runtime.executeHandler('type K = string;\nconst key: K = "secret";\nreturn $state[key as K];', {
    language: 'typescript',
    stateSnapshot: { secret: 1 },
  });
  assert.equal(denied.error.code, 'PERMISSION_DENIED');
  assert.equal(denied.error.location.line, 3);
});

test('precompileHandler keeps the source map of TypeScript with its bytecode', async () => {
  const bytecode = await runtime.precompileHandler(THROWS, { language: 'typescript' });
  assertLine5((await runtime.executeCompiledHandler(bytecode)).error);
  await assert.rejects(runtime.precompileHandler('const a: = 1;', { language: 'typescript' }), (error) => {
    assert.equal(error.code, 'SYNTAX_ERROR');
    assert.equal(error.location.line, 1);
    return true;
  });
  await assert.rejects(runtime.precompileHandler('return 1', { language: 'rust' }), { code: 'INVALID_ARGUMENT' });
});

test('WasmSandboxExecutor runs { code, language: "typescript" } and throws in TypeScript lines', async () => {
  const executor = new WasmSandboxExecutor({ runtime });
  const state = { count: 1 };
  const value = await executor.executeHandler(
    { code: 'const n: number = ($state.count as number) + 1;\n$state.count = n;\nreturn n;', language: 'typescript' },
    { state, capabilities: ['state:read:count', 'state:write:count'] },
  );
  assert.equal(value, 2);
  assert.equal(state.count, 2);
  await assert.rejects(executor.executeHandler({ code: THROWS, language: 'typescript' }), (error) => {
    assert.ok(error instanceof SandboxError);
    assert.equal(error.location.line, 5);
    assert.match(error.handlerStack, /handler\.ts:5:/);
    return true;
  });
  const bytecode = await executor.precompileHandler(FEATURES, { language: 'typescript' });
  assert.deepEqual(await executor.executeHandler(bytecode, { args: { x: 1, y: 2 } }), { pair: [1, 1], y: 2, down: 2 });
});

test('inferCapabilities takes { language: "typescript" }: the module function and both classes', async () => {
  const source = `interface Order { total: number }
const order = $state.order as Order;
$state.count = (($state.count as number) ?? 0) + order.total;
$emit('counted', { by: order.total });`;
  const expected = ['events:emit:counted', 'state:read:count', 'state:read:order', 'state:write:count'];
  const executor = new WasmSandboxExecutor({ runtime });
  for (const infer of [inferCapabilities, (c, o) => runtime.inferCapabilities(c, o), (c, o) => executor.inferCapabilities(c, o)]) {
    const inference = await infer(source, { language: 'typescript' });
    assert.deepEqual([...inference.capabilities].sort(), expected);
    // As JavaScript, the same source does not parse; its error is in the source's own lines.
    await assert.rejects(infer(source), (error) => error.code === 'SYNTAX_ERROR' && error.location.line === 1);
  }
  // A syntax error of the TypeScript is located in it.
  await assert.rejects(inferCapabilities('const a = 1;\nconst b: = 2;', { language: 'typescript' }), (error) => {
    assert.equal(error.code, 'SYNTAX_ERROR');
    assert.equal(error.location.line, 2);
    return true;
  });
  await assert.rejects(inferCapabilities('return 1', { language: 'perl' }), (error) => {
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.match(error.message, /^options\.language: unknown variant "perl"/);
    return true;
  });
});

test('handler.d.ts gives an editor the handler globals (tsc --strict)', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const crate = path.join(__dirname, '..');
  const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--types', 'node'];
  const files = [path.join(crate, 'handler.d.ts'), path.join(__dirname, 'types', 'handler.ts')];
  const run = spawnSync(process.execPath, [tsc, ...args, ...files], { cwd: crate, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
});
