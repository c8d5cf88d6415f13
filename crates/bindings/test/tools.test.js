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

test('a misspelt field of a handler object, a tool or a parameter declaration is refused, naming it', async () => {
  const refused = (pattern) => (error) => {
    assert.ok(error instanceof SandboxError, `expected a SandboxError, got ${error}`);
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.match(error.message, pattern);
    return true;
  };
  await assert.rejects(
    executor.executeHandler({ code: 'return $state.a', capabilites: ['state:read:a'] }, { state: { a: 1 } }),
    refused(/^handler\.capabilites: unknown field "capabilites", expected one of "code", "bytecode", "language", "name", "capabilities"$/),
  );
  await assert.rejects(executor.executeHandler({ code: 'const n: number = 1; return n', lang: 'typescript' }), refused(/^handler\.lang: unknown field "lang"/));
  let ran = 0;
  const transfer = {
    name: 'transfer',
    parameter: { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] },
    handler: { code: 'return $args' },
  };
  await assert.rejects(
    executor.executeTool(transfer, { amount: 'lots' }, { extensions: { x: { m: () => (ran += 1) } } }),
    refused(/^tool transfer: tool\.parameter: unknown field "parameter", expected one of "name", "description", "parameters", "handler"$/),
  );
  const declared = (parameters, pattern) =>
    assert.rejects(executor.executeTool({ name: 't', parameters, handler: 'return $args' }, {}), refused(pattern));
  await declared({ type: 'object', require: ['mode'] }, /^tool t: parameters\.require: unknown field "require", expected one of "type", /);
  await declared(
    { type: 'object', properties: { mode: { type: 'string', enums: ['a', 'b'] } } },
    /^tool t: parameters\.properties\.mode\.enums: unknown field "enums"/,
  );
  await declared({ properties: { n: { type: 'number', minimum: 0 } } }, /^tool t: parameters\.properties\.n\.minimum: unknown field "minimum".*\(nothing else is checked\)$/);
  await declared({ properties: { a: { type: 'array', items: { typ: 'number' } } } }, /^tool t: parameters\.properties\.a\.items\.typ: unknown field/);
  await declared({ properties: { a: { type: ['string', 'null'] } } }, /^tool t: parameters\.properties\.a\.type: unsupported type \["string","null"\]/);
  await declared({ required: 'city' }, /^tool t: parameters\.required: expected an array of parameter names/);
  await declared({ properties: { a: { default: () => 1 } } }, /^tool t: parameters\.properties\.a\.default: expected JSON data, got a function$/);
  await declared(
    { type: 'object', required: ['city'], additionalProperties: false },
    /^tool t: parameters\.required: "city" is required but not among the properties, and additionalProperties is false/,
  );
  await assert.rejects(executor.executeTool({ name: 't', code: 'return 1' }, {}), refused(/^tool t: tool\.code: unknown field "code"/));
  await assert.rejects(executor.executeTool({ name: 't', handler: { code: 'return 1', capabilites: [] } }, {}), refused(/^tool t: tool\.handler\.capabilites: unknown field/));
  assert.equal(ran, 0);
  // The annotations of JSON schema are taken, and check nothing.
  const annotated = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Args',
    type: 'object',
    properties: { city: { type: 'string', description: 'where', title: 'City', examples: ['Oslo'], $comment: 'c' } },
  };
  assert.deepEqual(await executor.executeTool({ name: 't', description: 'd', parameters: annotated, handler: 'return $args' }, { city: 'Oslo' }), { city: 'Oslo' });
});

test('arguments that are not a plain object are refused, not read as {}; required holds without a declaration', async () => {
  const echo = { name: 'echo', handler: 'return $args' };
  const refused = (pattern) => (error) => error instanceof SandboxError && error.code === 'INVALID_ARGUMENT' && error.toolName === 'echo' && pattern.test(error.message);
  await assert.rejects(executor.executeTool(echo, new Map([['city', 'Paris']])), refused(/^tool echo: arguments must be a plain object \(got a Map\)$/));
  await assert.rejects(executor.executeTool(echo, new Date(0)), refused(/^tool echo: arguments must be a plain object \(got a Date\)$/));
  await assert.rejects(executor.executeTool(echo, new URLSearchParams('city=Paris')), refused(/\(got a URLSearchParams\)$/));
  class Args {
    constructor() {
      this.city = 'Paris';
    }
  }
  await assert.rejects(executor.executeTool(echo, new Args()), refused(/\(got an instance of Args\)$/));
  await assert.rejects(
    executor.executeTool({ ...echo, parameters: { properties: { o: { type: 'object' } } } }, { o: new Map([['k', 1]]) }),
    refused(/^tool echo: parameter "o" must be a plain object \(got a Map\)$/),
  );
  assert.deepEqual(await executor.executeTool(echo, Object.assign(Object.create(null), { a: 1 })), { a: 1 });
  assert.deepEqual(await executor.executeTool(echo, undefined), {});
  const needsCity = { name: 'echo', parameters: { type: 'object', required: ['city'] }, handler: 'return $args.city' };
  await assert.rejects(executor.executeTool(needsCity, {}), refused(/^tool echo: parameter "city" is required$/));
  assert.equal(await executor.executeTool(needsCity, { city: 'Oslo' }), 'Oslo');
  const nested = { name: 'echo', parameters: { properties: { o: { type: 'object', required: ['k'] } } }, handler: 'return $args' };
  await assert.rejects(executor.executeTool(nested, { o: {} }), refused(/^tool echo: parameter "o\.k" is required$/));
});
