// The handler prelude: evaluated once when the guest is pre-initialized (so it is part of the
// snapshot), it builds the handler API over the native `host` functions and returns the
// entry points the guest calls. It decides nothing about permissions: every native call is
// checked by the host. Built-ins it relies on are captured here, before any handler runs,
// so a handler that patches them only confuses itself.
(function (host) {
  'use strict';
  const { freeze, isFrozen, getOwnPropertyNames, defineProperty, create } = Object;
  const { stringify } = JSON;
  const { apply } = Reflect;
  const ProxyCtor = Proxy;
  const PromiseCtor = Promise;
  const ErrorCtor = Error;
  const StringCtor = String;
  const { get: weakGet, set: weakSet } = WeakMap.prototype;

  // The errors the runtime raised (a denial, an unknown extension, a spent output budget),
  // each with the code it was raised with and its message and stack as they were then.
  // Private: the host trusts an uncaught error's code only when the error is found here, never
  // because of its properties, and reports it with what was recorded (a handler may rewrite
  // the error's `message` and `stack` before it throws it again).
  const raisedErrors = new WeakMap();
  // Each extension call's promise, with the call it stands for (for the warning when a call the
  // handler never awaited fails).
  const callPromises = new WeakMap();

  // The engine's own accessors of `Error.prepareStackTrace` and `Error.stackTraceLimit` (they
  // set what the engine uses, whatever property a handler puts in their place later): an error
  // the runtime raises is made without the handler's, or its code would run inside the raising
  // and could rewrite the stack the error is reported with, or break the raising.
  const stackAccessors = ['prepareStackTrace', 'stackTraceLimit'].map((key) => {
    const { get, set } = Object.getOwnPropertyDescriptor(ErrorCtor, key);
    return [get, set];
  });

  // Call sites (through `Error.prepareStackTrace`) must not hand out the functions on the
  // stack: they would give handler code the prelude's own functions and the `$state` proxy's
  // handlers. `getFunction` is the only way to them; it goes, before any handler runs. The
  // methods the runtime's own stacks are written with are kept (a handler may replace them).
  let siteMethods = null;
  {
    const prepare = ErrorCtor.prepareStackTrace;
    ErrorCtor.prepareStackTrace = (_, sites) => sites;
    const sites = new ErrorCtor().stack;
    ErrorCtor.prepareStackTrace = prepare;
    if (typeof sites === 'object' && sites !== null && sites.length > 0) {
      const site = Object.getPrototypeOf(sites[0]);
      siteMethods = [site.getFunctionName, site.isNative, site.getFileName, site.getLineNumber, site.getColumnNumber];
      delete site.getFunction;
    }
  }

  // A function's name as a stack frame shows it: on one line. A handler may name a function
  // `x (handler.js:2:4)\n    at y`, which the engine's own format would print as a frame of
  // its choosing. Indexing and `+` only: no method a handler can replace.
  function oneLine(name) {
    let line = '';
    for (let i = 0; i < name.length; i++) {
      const c = name[i];
      line += c === '\n' || c === '\r' || c === '\u2028' || c === '\u2029' ? ' ' : c;
    }
    return line;
  }

  // The stack of an error the runtime raises, in the engine's own format
  // (`    at NAME (FILE:LINE:COLUMN)`), each function's name on one line.
  function engineStack(_, sites) {
    const [name, isNative, file, line, column] = siteMethods;
    let stack = '';
    for (let i = 0; i < sites.length; i++) {
      const site = sites[i];
      const named = apply(name, site, []);
      stack += '    at ' + (typeof named === 'string' && named !== '' ? oneLine(named) : '<anonymous>');
      if (apply(isNative, site, [])) {
        stack += ' (native)\n';
        continue;
      }
      const at = apply(line, site, []);
      stack += ' (' + apply(file, site, []) + (at === -1 ? '' : ':' + at + ':' + apply(column, site, [])) + ')\n';
    }
    return stack;
  }
  const ENGINE_STACK = [siteMethods === null ? undefined : engineStack, 10];

  // Lookups the engine makes on its own, on any object it is handed (`await`, a returned value,
  // `JSON.stringify`): on the API objects they find nothing and reach no host function.
  function engineLookup(key) {
    return key === 'then' || key === 'toJSON';
  }

  // An index loop, not for-of: no iterator objects on every execution.
  function deepFreeze(value) {
    if (value !== null && typeof value === 'object' && !isFrozen(value)) {
      freeze(value);
      const keys = getOwnPropertyNames(value);
      for (let i = 0; i < keys.length; i++) deepFreeze(value[keys[i]]);
    }
    return value;
  }

  const $state = new ProxyCtor(create(null), {
    get(_, key) {
      return typeof key === 'string' && !engineLookup(key) ? host.stateGet(key) : undefined;
    },
    set(_, key, value) {
      if (typeof key !== 'string') return false;
      host.stateSet(key, value);
      return true;
    },
    deleteProperty(_, key) {
      if (typeof key === 'string') host.stateDelete(key);
      return true;
    },
    has(_, key) {
      return typeof key === 'string' && host.stateHas(key);
    },
    ownKeys() {
      return host.stateKeys();
    },
    getOwnPropertyDescriptor(_, key) {
      if (typeof key !== 'string') return undefined;
      const value = host.stateGet(key);
      return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true };
    },
    defineProperty(_, key, descriptor) {
      // A non-configurable property is one the proxy could never report (the engine would
      // throw after the trap): refused before anything is written.
      if (typeof key !== 'string' || !('value' in descriptor) || descriptor.configurable === false) return false;
      host.stateSet(key, descriptor.value);
      return true;
    },
    getPrototypeOf() {
      return null;
    },
    setPrototypeOf() {
      return false;
    },
    preventExtensions() {
      return false;
    },
  });

  function $emit(name, payload) {
    host.emit(name, payload);
  }

  const $view = freeze({
    update(componentId, patch) {
      host.view('update', componentId, patch);
    },
    command(type, componentId, args) {
      host.view(type, componentId, args);
    },
  });

  // callId -> [resolve, reject] of the promise the handler awaits.
  const pending = create(null);

  let pendingCount = 0;

  function callExtension(extension, method, args) {
    const callId = host.extCall(extension, method, args);
    const promise = new PromiseCtor((resolve, reject) => {
      pending[callId] = [resolve, reject];
    });
    pendingCount++;
    apply(weakSet, callPromises, [promise, `$ext.${extension}.${method} (call ${callId})`]);
    return promise;
  }

  const $ext = new ProxyCtor(create(null), {
    get(_, extension) {
      if (typeof extension !== 'string' || engineLookup(extension)) return undefined;
      return new ProxyCtor(create(null), {
        get(_, method) {
          if (typeof method !== 'string' || engineLookup(method)) return undefined;
          return (...args) => callExtension(extension, method, args);
        },
      });
    },
  });

  // `JSON.stringify`'s replacer for a log line: what JSON cannot write is shown rather than
  // failing the whole value: an object met again inside itself as "[Circular]", a BigInt as its
  // digits and `n`, an Error as `String(error)`.
  function logReplacer() {
    const ancestors = [];
    return function (_, value) {
      if (typeof value === 'bigint') return StringCtor(value) + 'n';
      if (typeof value !== 'object' || value === null) return value;
      if (value instanceof ErrorCtor) return StringCtor(value);
      // `this` holds `value`: the ancestors are those up to it.
      let depth = ancestors.length;
      while (depth > 0 && ancestors[depth - 1] !== this) depth--;
      ancestors.length = depth;
      for (let i = 0; i < depth; i++) if (ancestors[i] === value) return '[Circular]';
      ancestors[depth] = value;
      return value;
    };
  }

  function show(value) {
    if (typeof value === 'string') return value;
    if (typeof value === 'bigint') return StringCtor(value) + 'n';
    try {
      if (value instanceof ErrorCtor) return StringCtor(value);
      const json = stringify(value, logReplacer());
      if (json !== undefined) return json;
    } catch (_) {
      // fall through to String()
    }
    try {
      return StringCtor(value);
    } catch (_) {
      return '[unprintable]';
    }
  }

  function logger(level) {
    return (...args) => {
      let line = '';
      for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + show(args[i]);
      host.log(level, line);
    };
  }

  const $log = logger(1);
  $log.debug = logger(0);
  $log.info = logger(1);
  $log.warn = logger(2);
  $log.error = logger(3);
  freeze($log);

  const console = freeze({ log: logger(1), debug: logger(0), info: logger(1), warn: logger(2), error: logger(3) });
  defineProperty(globalThis, 'console', { value: console, writable: true, configurable: true });
  defineProperty(Math, 'random', { value: host.random, writable: true, configurable: true });

  return freeze({
    // Returns the handler's promise; the guest reads its state once the job queue is empty.
    start(handler, args, scope) {
      return apply(handler, undefined, [$state, deepFreeze(args), deepFreeze(scope), $emit, $view, $ext, $log]);
    },
    resume(callId, ok, value, code, message) {
      const settle = pending[callId];
      if (settle === undefined) return false;
      delete pending[callId];
      pendingCount--;
      if (ok) {
        settle[0](value);
      } else {
        const error = new ErrorCtor(message);
        // Defined, not assigned: a library may have made `code` read-only on a prototype.
        if (code !== undefined && code !== null) {
          defineProperty(error, 'code', { value: code, writable: true, enumerable: true, configurable: true });
        }
        settle[1](error);
      }
      return true;
    },
    // Extension calls not settled yet.
    pendingCalls() {
      return pendingCount;
    },
    // Marks an error the runtime raises with `code`, as it is now.
    raise(error, code) {
      apply(weakSet, raisedErrors, [error, [code, error.message, error.stack]]);
    },
    // Sets the engine's stack formatting for an error the runtime is about to make; returns
    // what the handler had set, for `restoreStacks`.
    engineStacks() {
      const saved = [];
      for (let i = 0; i < stackAccessors.length; i++) {
        saved[i] = apply(stackAccessors[i][0], ErrorCtor, []);
        apply(stackAccessors[i][1], ErrorCtor, [ENGINE_STACK[i]]);
      }
      return saved;
    },
    restoreStacks(saved) {
      for (let i = 0; i < stackAccessors.length; i++) apply(stackAccessors[i][1], ErrorCtor, [saved[i]]);
    },
    // `[code, message, stack]` of a raised error when it was raised; undefined for anything else.
    raisedAs(value) {
      return apply(weakGet, raisedErrors, [value]);
    },
    // The extension call a promise stands for; undefined for any other promise.
    callOf(promise) {
      return apply(weakGet, callPromises, [promise]);
    },
    // Logs a warning (the rejection of a call the handler never awaited).
    warn(line) {
      host.log(2, line);
    },
  });
});
