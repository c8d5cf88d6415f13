'use strict';

// Checks and coerces a tool's arguments against its declared parameters, a JSON-schema subset:
// `type` (string, number, integer, boolean, object, array, null), `properties`, `required`,
// `enum`, `default`, `items`, `additionalProperties: false`. Strings that spell a number or a
// boolean become one when the parameter says so, and numbers and booleans become strings;
// nothing else is coerced. The first violation throws a SandboxError with code
// INVALID_ARGUMENT naming the parameter.

const { SandboxError } = require('./errors');

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

function coerceArguments(toolName, parameters, args) {
  const fail = (path, message) => {
    throw new SandboxError('INVALID_ARGUMENT', `tool ${toolName}: ${path ? `parameter "${path}" ` : ''}${message}`, {
      toolName,
    });
  };
  const schema = parameters ?? { type: 'object', properties: {} };
  return coerce(schema.type === undefined ? { ...schema, type: 'object' } : schema, args ?? {}, '', fail);
}

function coerce(schema, value, path, fail) {
  if (schema.type !== undefined && !TYPES.has(schema.type)) {
    fail(path, `has an unsupported type ${JSON.stringify(schema.type)} in its declaration`);
  }
  const coerced = schema.type === undefined ? value : coerceType(schema.type, value, path, fail);
  if (Array.isArray(schema.enum) && !schema.enum.some((allowed) => allowed === coerced)) {
    fail(path, `must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')} (got ${describe(value)})`);
  }
  if (schema.type === 'object') return coerceObject(schema, coerced, path, fail);
  if (schema.type === 'array' && schema.items) {
    return coerced.map((item, index) => coerce(schema.items, item, `${path}[${index}]`, fail));
  }
  return coerced;
}

function coerceObject(schema, object, path, fail) {
  const properties = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const result = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(properties, key)) {
      if (schema.additionalProperties === false) fail(join(path, key), 'is not a declared parameter');
      set(result, key, value);
    }
  }
  for (const [key, property] of Object.entries(properties)) {
    const name = join(path, key);
    const given = Object.hasOwn(object, key) ? object[key] : undefined;
    if (given === undefined) {
      if (property.default !== undefined) set(result, key, structuredClone(property.default));
      else if (required.has(key)) fail(name, 'is required');
      continue;
    }
    set(result, key, coerce(property, given, name, fail));
  }
  return result;
}

/**
 * Sets an own data property whatever the key: assigning `__proto__` (an own key of parsed JSON)
 * would replace the result's prototype and drop the argument.
 */
function set(object, key, value) {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

function coerceType(type, value, path, fail) {
  const mismatch = () => fail(path, `must be ${article(type)} (got ${describe(value)})`);
  switch (type) {
    case 'number':
    case 'integer': {
      let number = value;
      if (typeof value === 'string' && value.trim() !== '') number = Number(value);
      if (typeof number !== 'number' || !Number.isFinite(number)) mismatch();
      if (type === 'integer' && !Number.isInteger(number)) mismatch();
      return number;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true') return true;
      if (value === 'false') return false;
      return mismatch();
    case 'string':
      if (typeof value === 'string') return value;
      if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
      return mismatch();
    case 'object':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) mismatch();
      return value;
    case 'array':
      if (!Array.isArray(value)) mismatch();
      return value;
    case 'null':
      if (value !== null) mismatch();
      return value;
  }
  return value;
}

function join(path, key) {
  return path ? `${path}.${key}` : key;
}

function article(type) {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

module.exports = { coerceArguments };
