'use strict';

// The fast path of the binding's argument conversion (src/convert.rs): the JSON text of a value
// that is plain JSON data, reading every property once; `undefined` for anything else, which
// the native converter then walks itself, to refuse it naming where the problem is, or to keep
// what JSON text would change (-0, integers beyond 2^53, a Proxy of an array). One call into
// JavaScript and one parse of the text replace a dozen N-API calls per property.
//
// What is "plain" here is what the native converter accepts and JSON.stringify writes the same:
// strings, booleans, null, safe integers (not -0), finite non-integers, arrays, and objects
// (own enumerable string keys, `undefined` values left out) that are not Dates, boxed
// primitives, binary data, Proxies or the built-ins `notJson` names, nested less than MAX_DEPTH,
// and whose every key the copy takes as its own (not `__proto__`, nor a key a setter on
// Object.prototype intercepts). An object with a `toJSON` method (a URL, a class of the
// application's) is what that method returns, called once with its key as JSON.stringify
// calls it (its result's own `toJSON` is not called; `undefined` leaves the property out), as
// the native walk does; a Date and binary data are refused there instead. The copy has no
// getters, Proxies or toJSON methods, so JSON.stringify reads nothing a second time.
const { types } = require('node:util');

// The built-ins it uses, as they are when this module loads (an application replacing one
// later does not change what crosses).
const { isProxy, isDate, isBoxedPrimitive, isAnyArrayBuffer } = types;
const { isMap, isSet, isWeakMap, isWeakSet, isRegExp, isNativeError, isPromise } = types;
const { isView } = ArrayBuffer;
const { isArray } = Array;
const { keys, hasOwn, is, getPrototypeOf } = Object;
const OBJECT_PROTOTYPE = Object.prototype;
const { stringify } = JSON;
const { apply } = Reflect;
const { isSafeInteger, isFinite: isFiniteNumber, isInteger } = Number;

/**
 * As the native converter's WALK_LIMIT + 1 (128 levels of a value below the context and its
 * stateSnapshot); anything as deep goes to the native converter.
 */
const MAX_DEPTH = 130;
const NOT_PLAIN = Symbol('not plain JSON data');

/**
 * The plain copy of `value`, the property `key` (an index for an array's element) of its
 * holder; `undefined` when its `toJSON` (honoured when `replace`) returns that. Throws
 * NOT_PLAIN for anything else.
 */
function plain(value, depth, key, replace) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (isSafeInteger(value) ? !is(value, -0) : isFiniteNumber(value) && !isInteger(value)) {
        return value;
      }
      throw NOT_PLAIN;
    case 'object': {
      if (value === null) return null;
      if (depth >= MAX_DEPTH || isProxy(value) || isDate(value) || isBoxedPrimitive(value)) throw NOT_PLAIN;
      if (isAnyArrayBuffer(value) || isView(value)) throw NOT_PLAIN;
      if (replace) {
        const toJSON = value.toJSON;
        if (typeof toJSON === 'function') {
          const replaced = apply(toJSON, value, [typeof key === 'number' ? `${key}` : key]);
          return replaced === undefined ? undefined : plain(replaced, depth, key, false);
        }
      }
      if (isArray(value)) {
        const length = value.length;
        const copy = new Array(length);
        for (let i = 0; i < length; i++) {
          const item = value[i];
          const copied = item === undefined ? undefined : plain(item, depth + 1, i, true);
          copy[i] = copied === undefined ? null : copied;
        }
        return copy;
      } else {
        // An object of a class of its own may be a built-in whose data JSON text drops.
        const prototype = getPrototypeOf(value);
        if (prototype !== OBJECT_PROTOTYPE && prototype !== null && notJson(value) !== undefined) throw NOT_PLAIN;
        const copy = {};
        for (const key of keys(value)) {
          const item = value[key];
          if (item === undefined) continue;
          const copied = plain(item, depth + 1, key, true);
          if (copied === undefined) continue;
          copy[key] = copied;
          // A setter (`__proto__`, or one an application put on Object.prototype) took it.
          if (!hasOwn(copy, key)) throw NOT_PLAIN;
        }
        return copy;
      }
    }
    default:
      // undefined (as a whole value), functions, symbols, BigInts.
      throw NOT_PLAIN;
  }
}

/**
 * Why `value`, an object, is not JSON data though JSON text would take it (as `{}`, dropping
 * its data): a Map, Set, WeakMap, WeakSet, RegExp, Error or Promise. `undefined` for any other.
 * The native converter refuses such a value with this text.
 */
function notJson(value) {
  if (isMap(value)) return 'a Map is not JSON data (pass Object.fromEntries(map))';
  if (isSet(value)) return 'a Set is not JSON data (pass [...set])';
  if (isWeakMap(value) || isWeakSet(value)) return `a ${isWeakMap(value) ? 'WeakMap' : 'WeakSet'} is not JSON data`;
  if (isRegExp(value)) return 'a RegExp is not JSON data (pass regexp.source)';
  if (isNativeError(value)) return 'an Error is not JSON data (pass error.message)';
  if (isPromise(value)) return 'a Promise is not JSON data (await it first)';
  return undefined;
}

/** The JSON text of `value` when it is plain JSON data, else `undefined`. */
function jsonText(value) {
  try {
    const copied = plain(value, 0, '', true);
    // A toJSON that returned undefined: the native walk makes that null too.
    return copied === undefined ? 'null' : stringify(copied);
  } catch {
    // Not plain, or a getter or Proxy trap threw: the native converter reports it.
    return undefined;
  }
}

module.exports = { jsonText, notJson };
