'use strict';

// Checks and coerces a tool's arguments against its declared parameters, a JSON-schema subset:
// `type` (string, number, integer, boolean, object, array, null), `properties`, `required`,
// `enum`, `default`, `items`, `additionalProperties: false`, and the annotations `description`,
// `title`, `examples`, `$comment` and `$schema`, which check nothing. The declaration is checked
// first, whole: any other field (a misspelt `require`, `enums`, or a JSON-schema keyword this
// subset does not enforce, such as `minimum`) is refused naming it, rather than ignored. Strings
// that spell a number or a boolean become one when the parameter says so, and numbers and
// booleans become strings; nothing else is coerced. An object parameter (the arguments
// themselves included) must be a plain object: a Map, a Date or an instance of a class is
// refused, not read as `{}`. The first violation throws a SandboxError with code
// INVALID_ARGUMENT naming the parameter.

const { SandboxError } = require('./errors');

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
const SCHEMA_FIELDS = [
  'type',
  'properties',
  'required',
  'enum',
  'default',
  'items',
  'additionalProperties',
  'description',
  'title',
  'examples',
  '$comment',
  '$schema',
];
/** As deep as values may nest (MAX_NESTING): a deeper declaration is a cycle, or a mistake. */
const MAX_SCHEMA_DEPTH = 128;

function coerceArguments(toolName, parameters, args) {
  const fail = (path, message) => {
    throw new SandboxError('INVALID_ARGUMENT', `tool ${toolName}: ${path ? `parameter "${path}" ` : 'arguments '}${message}`, {
      toolName,
    });
  };
  const declared = (path, message) => {
    throw new SandboxError('INVALID_ARGUMENT', `tool ${toolName}: ${path}: ${message}`, { toolName });
  };
  if (parameters !== undefined && parameters !== null) checkSchema(parameters, 'parameters', 0, declared);
  const schema = parameters ?? { type: 'object', properties: {} };
  return coerce(schema.type === undefined ? { ...schema, type: 'object' } : schema, args ?? {}, '', fail);
}

/** Refuses a declaration this subset would not enforce as written, naming where it is. */
function checkSchema(schema, path, depth, declared) {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    declared(path, `expected a parameter declaration (an object), got ${describe(schema)}`);
  }
  if (depth >= MAX_SCHEMA_DEPTH) declared(path, `nested deeper than ${MAX_SCHEMA_DEPTH} levels (a cyclic declaration?)`);
  for (const key of Object.keys(schema)) {
    if (!SCHEMA_FIELDS.includes(key)) {
      const expected = SCHEMA_FIELDS.map((field) => `"${field}"`).join(', ');
      declared(`${path}.${key}`, `unknown field "${key}", expected one of ${expected} (nothing else is checked)`);
    }
  }
  if (schema.type !== undefined && !TYPES.has(schema.type)) {
    const types = [...TYPES].map((type) => `"${type}"`).join(', ');
    declared(`${path}.type`, `unsupported type ${JSON.stringify(schema.type) ?? String(schema.type)}, expected one of ${types}`);
  }
  const properties = schema.properties;
  if (properties !== undefined) {
    if (properties === null || typeof properties !== 'object' || Array.isArray(properties)) {
      declared(`${path}.properties`, `expected an object of parameter declarations, got ${describe(properties)}`);
    }
    for (const key of Object.keys(properties)) checkSchema(properties[key], `${path}.properties.${key}`, depth + 1, declared);
  }
  if (schema.items !== undefined) checkSchema(schema.items, `${path}.items`, depth + 1, declared);
  if (schema.required !== undefined) {
    if (!Array.isArray(schema.required) || !schema.required.every((key) => typeof key === 'string')) {
      declared(`${path}.required`, `expected an array of parameter names, got ${describe(schema.required)}`);
    }
    if (schema.additionalProperties === false) {
      const undeclared = schema.required.find((key) => !(properties && Object.hasOwn(properties, key)));
      if (undeclared !== undefined) {
        declared(
          `${path}.required`,
          `"${undeclared}" is required but not among the properties, and additionalProperties is false: no arguments could be given`,
        );
      }
    }
  }
  if (schema.enum !== undefined && !Array.isArray(schema.enum)) {
    declared(`${path}.enum`, `expected an array of the values allowed, got ${describe(schema.enum)}`);
  }
  if (schema.additionalProperties !== undefined && typeof schema.additionalProperties !== 'boolean') {
    declared(`${path}.additionalProperties`, `expected true or false, got ${describe(schema.additionalProperties)}`);
  }
  if (schema.default !== undefined) {
    try {
      structuredClone(schema.default);
    } catch {
      declared(`${path}.default`, `expected JSON data, got ${describe(schema.default)}`);
    }
  }
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
  // A required parameter without a declaration of its own is still required.
  for (const key of required) {
    if (Object.hasOwn(properties, key)) continue;
    if (!Object.hasOwn(object, key) || object[key] === undefined) fail(join(path, key), 'is required');
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
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) mismatch();
      // Object.entries of a Map, a Date or a URLSearchParams is empty: refused, not read as {}.
      const prototype = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) {
        fail(path, `must be a plain object (got ${describeInstance(prototype)})`);
      }
      return value;
    }
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

/** What an object of the class whose prototype is `prototype` is: `a Map`, `an instance of Money`. */
function describeInstance(prototype) {
  let name;
  try {
    name = Object.getOwnPropertyDescriptor(prototype, 'constructor')?.value?.name;
  } catch {
    // A Proxy's trap threw: nameless.
  }
  if (typeof name !== 'string' || name === '') return 'an instance of a class';
  const builtin = typeof globalThis[name] === 'function' && globalThis[name].prototype === prototype;
  if (builtin) return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}`;
  return `an instance of ${name}`;
}

function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

module.exports = { coerceArguments };
