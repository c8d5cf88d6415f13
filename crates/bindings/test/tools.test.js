'use strict';

// executeTool: arguments checked and coerced against the tool's declared parameters before
// the handler runs; a violation rejects with INVALID_ARGUMENT and the tool's name.
const test = require('node:test');
const assert = require('node:assert/strict');
const { WasmSandboxExecutor, SandboxError } = require('..');

const executor = new WasmSandboxExecutor();
test.after(() => executor.shutdown());

const forecast = {
  name: 'forecast',
  parameters: {
    type: 'object',
    properties: {
      city: { type: 'string' },
      days: { type: 'number', default: 3 },
      units: { type: 'string', enum: ['metric', 'imperial'], default: 'metric' },
      detailed: { type: 'boolean' },
    },
    required: ['city'],
  },
  // Returns its arguments with their JavaScript types, as the handler saw them.
  handler: 'return Object.fromEntries(Object.entries($args).map(([k, v]) => [k, [typeof v, v]]));',
};

test('a numeric string becomes a number and defaults are filled', async () => {
  const seen = await executor.executeTool(forecast, { city: 'Oslo', days: '3', detailed: 'true' });
  assert.deepEqual(seen, {
    city: ['string', 'Oslo'],
    days: ['number', 3],
    units: ['string', 'metric'],
    detailed: ['boolean', true],
  });
});

test('numbers given for a string parameter become strings', async () => {
  const seen = await executor.executeTool(forecast, { city: 1234 });
  assert.deepEqual(seen.city, ['string', '1234']);
});

const rejectsWith = (promise, pattern) =>
  assert.rejects(promise, (error) => {
    assert.ok(error instanceof SandboxError, `expected a SandboxError, got ${error}`);
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.equal(error.toolName, 'forecast');
    assert.match(error.message, pattern);
    return true;
  });

test('a missing required parameter is rejected', async () => {
  await rejectsWith(executor.executeTool(forecast, { days: 2 }), /parameter "city" is required/);
});

test('an enum violation is rejected', async () => {
  await rejectsWith(
    executor.executeTool(forecast, { city: 'Oslo', units: 'kelvin' }),
    /parameter "units" must be one of "metric", "imperial" \(got "kelvin"\)/,
  );
});

test('a value that cannot be coerced is rejected', async () => {
  await rejectsWith(executor.executeTool(forecast, { city: 'Oslo', days: 'three' }), /"days" must be a number/);
  await rejectsWith(executor.executeTool(forecast, { city: 'Oslo', detailed: 'yes' }), /"detailed" must be a boolean/);
  await rejectsWith(executor.executeTool(forecast, { city: { name: 'Oslo' } }), /"city" must be a string/);
});

test('nested objects, arrays, integers and closed parameter sets', async () => {
  const tool = {
    name: 'batch',
    parameters: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ids: { type: 'array', items: { type: 'integer' } },
        options: { type: 'object', properties: { limit: { type: 'integer', default: 10 } } },
      },
      required: ['ids'],
    },
    handler: { code: 'return $args;' },
  };
  assert.deepEqual(await executor.executeTool(tool, { ids: ['1', 2], options: {} }), {
    ids: [1, 2],
    options: { limit: 10 },
  });
  await assert.rejects(executor.executeTool(tool, { ids: [1.5] }), /parameter "ids\[0\]" must be an integer/);
  await assert.rejects(executor.executeTool(tool, { ids: [], extra: 1 }), /parameter "extra" is not a declared/);
});

test('a failing tool handler carries the tool name', async () => {
  const tool = { name: 'broken', handler: 'throw new Error("nope")' };
  await assert.rejects(
    executor.executeTool(tool, {}),
    (error) => error instanceof SandboxError && error.code === 'RUNTIME_ERROR' && error.toolName === 'broken',
  );
});

test('an argument named __proto__ (an own key of parsed JSON) reaches the handler as a plain key', async () => {
  const args = JSON.parse('{ "__proto__": { "polluted": 1 }, "city": "Oslo" }');
  const seen = await executor.executeTool(
    { name: 'keys', parameters: { properties: { city: { type: 'string' } } }, handler: 'return [Object.keys($args), $args.__proto__];' },
    args,
  );
  assert.deepEqual(seen, [['__proto__', 'city'], { polluted: 1 }]);
  const { coerceArguments } = require('..');
  const coerced = coerceArguments('keys', undefined, args);
  assert.equal(Object.getPrototypeOf(coerced), Object.prototype);
  assert.equal(coerced.polluted, undefined);
});
