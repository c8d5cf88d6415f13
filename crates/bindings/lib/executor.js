'use strict';

// WasmSandboxExecutor: runs handlers to completion for a Node application. The native
// NexusRuntime returns a result at every suspension; this layer applies that result at once
// (state mutations to the application's state object, events and view commands to its
// callbacks), performs the pending extension calls with the application's own async
// functions (each started as soon as it is pending, all concurrently), resumes the handler
// with each outcome as soon as its call settles (first settled, first resumed), and repeats
// until the handler settles.

const { SandboxError } = require('./errors');
const { coerceArguments } = require('./tool-arguments');

class WasmSandboxExecutor {
  /** Whether `shutdown` was called: no more waits for extension calls. */
  #shutDown = false;
  /** Ends each execution's wait for its extension calls (see `shutdown`). */
  #waiting = new Set();

  /**
   * @param {object} [options]
   * @param {object} [options.runtime] a NexusRuntime to use (default: a new one with `config`)
   * @param {object} [options.config] NexusRuntime configuration
   * @param {Array<{name: string, source: string}>} [options.preload] libraries evaluated into
   *   the snapshot every handler starts from (NexusRuntime's `preload`; not with `runtime`)
   * @param {object} [options.extensions] `{ name: { method: async (...args) => value } }`
   * @param {Function} [options.onEvent] `(event, context)` for every `$emit`
   * @param {Function} [options.onViewCommand] `(command, context)` for every `$view` command
   * @param {Function} [options.onLog] `(line, context)` for every `$log` / console line
   * @param {number} [options.timeoutMs] default execution timeout (see `executeHandler`)
   */
  constructor(options = {}) {
    const { NexusRuntime } = require('./native');
    options ??= {};
    checkFields(options, EXECUTOR_OPTIONS, 'options');
    checkSinks(options, 'options');
    const given = (field) => options[field] !== undefined && options[field] !== null;
    if (given('runtime')) {
      if (!(options.runtime instanceof NexusRuntime)) {
        throw new SandboxError('INVALID_ARGUMENT', `options.runtime: expected a NexusRuntime, got ${describe(options.runtime)}`);
      }
      for (const field of ['config', 'preload']) {
        if (!given(field)) continue;
        throw new SandboxError(
          'INVALID_ARGUMENT',
          `options.${field}: is for a new runtime, not with options.runtime (give it to the NexusRuntime passed)`,
        );
      }
      this.runtime = options.runtime;
    } else {
      if (given('config') && (typeof options.config !== 'object' || Array.isArray(options.config))) {
        throw new SandboxError('INVALID_ARGUMENT', `options.config: expected an object of runtime options, got ${describe(options.config)}`);
      }
      const config = given('preload') ? { ...options.config, preload: options.preload } : (options.config ?? {});
      try {
        this.runtime = new NexusRuntime(config);
      } catch (error) {
        // NexusRuntime names its configuration `config`: here it is the option's.
        if (typeof error?.message === 'string') {
          const preload = given('preload') ? 'options.preload' : 'options.config.preload';
          error.message = error.message.replace(/^config\.preload\b/, preload).replace(/^config\b/, 'options.config');
        }
        throw SandboxError.fromNative(error);
      }
    }
    this.extensions = options.extensions ?? {};
    this.onEvent = options.onEvent ?? null;
    this.onViewCommand = options.onViewCommand ?? null;
    this.onLog = options.onLog ?? null;
    this.timeoutMs = options.timeoutMs;
    this.metricsListeners = new Set();
  }

  /**
   * Runs a handler to completion and returns its value.
   *
   * `handler`: source text, a Buffer of bytecode, or `{ code | bytecode, name?, capabilities?,
   * language? }` (`language: "typescript"` for TypeScript source).
   * `context`: `{ state, args, scope, capabilities, extensions, panelId, handlerName, timeoutMs,
   * memoryLimit, onEvent, onViewCommand, onLog }`. `state` is the application's state object
   * itself (where NexusRuntime takes `stateSnapshot`, a copy): the handler's mutations are
   * applied to it as they happen (before any extension call runs), each as an own data
   * property whatever the key's name.
   * `timeoutMs`: the handler's running-time budget in milliseconds (time parked waiting for an
   * extension call does not count); it wins over `context.timeoutMs`, which wins over the
   * executor's `timeoutMs` option; default 5000. NexusRuntime's methods take it the same way.
   */
  async executeHandler(handler, context = {}, timeoutMs = undefined) {
    return this.#run(normalizeHandler(handler), context ?? {}, timeoutMs, null);
  }

  /**
   * Validates and coerces `args` against `tool.parameters`, then runs `tool.handler` with them.
   * `tool`: `{ name, parameters?, handler: code | bytecode | { code | bytecode, capabilities? } }`.
   * `context` and `timeoutMs` as for `executeHandler`.
   */
  async executeTool(tool, args, context = {}, timeoutMs = undefined) {
    const toolName = tool?.name ?? null;
    if (typeof toolName !== 'string' || toolName === '') {
      throw new SandboxError('INVALID_ARGUMENT', 'tool.name: a tool needs a name, a non-empty string');
    }
    checkFields(tool, TOOL_FIELDS, 'tool', toolName);
    const coerced = coerceArguments(toolName, tool.parameters, args);
    const handler = normalizeHandler(tool.handler, 'tool.handler', toolName);
    return this.#run(handler, { handlerName: toolName, ...context, args: coerced }, timeoutMs, toolName);
  }

  /**
   * Compiles source to bytecode inside the sandbox (a Buffer for `executeHandler`);
   * `options.language: "typescript"` for TypeScript.
   */
  async precompileHandler(code, options = undefined) {
    try {
      return await this.runtime.precompileHandler(code, options);
    } catch (error) {
      throw SandboxError.fromNative(error);
    }
  }

  /**
   * Calls `callback(metrics)` after every execution (success or failure) with
   * `{ panelId, handlerName, toolName, status, code, executionTimeUs, compileTimeUs, hostCalls,
   * memoryBytes, cacheHit, suspensions, denials }`; returns a function that unsubscribes.
   */
  onMetrics(callback) {
    if (typeof callback !== 'function') {
      throw new SandboxError('INVALID_ARGUMENT', `onMetrics: expected a function, got ${describe(callback)}`);
    }
    this.metricsListeners.add(callback);
    return () => this.metricsListeners.delete(callback);
  }

  /** The capability tokens a handler's source needs (as the module's `inferCapabilities`). */
  inferCapabilities(code, options) {
    return inferCapabilities(code, options);
  }

  getStats() {
    return this.runtime.getStats();
  }

  getPrometheusMetrics() {
    return this.runtime.getPrometheusMetrics();
  }

  /**
   * As NexusRuntime's: `graceMs` (default 5000) is undefined or a number of milliseconds from
   * 0 to 2^31 - 1, anything else rejects with INVALID_ARGUMENT.
   */
  async shutdown(graceMs) {
    try {
      return await this.runtime.shutdown(graceMs);
    } catch (error) {
      throw SandboxError.fromNative(error);
    } finally {
      // Executions waiting on extension calls end now, rather than when their suspension
      // would expire (their timers would also keep the process alive until then).
      this.#shutDown = true;
      for (const stop of this.#waiting) stop();
    }
  }

  async #run(handler, context, positionalTimeoutMs, toolName) {
    checkFields(context, CONTEXT_FIELDS, 'context');
    checkSinks(context, 'context');
    const extensions = context.extensions ?? this.extensions;
    const state = context.state ?? {};
    if (typeof state !== 'object' || Array.isArray(state)) {
      throw new SandboxError('INVALID_ARGUMENT', `context.state: expected the application's state object, got ${describe(state)}`);
    }
    const native = {
      panelId: context.panelId ?? '',
      handlerName: context.handlerName ?? handler.name ?? '',
      stateSnapshot: state,
      args: context.args ?? {},
      scope: context.scope ?? {},
      capabilities: context.capabilities ?? handler.capabilities ?? [],
      extensionRegistry: registryOf(extensions),
      memoryLimit: context.memoryLimit,
    };
    const language = handler.language ?? context.language;
    if (language !== undefined) native.language = language;
    const timeoutMs = positionalTimeoutMs ?? context.timeoutMs ?? this.timeoutMs;
    const sinks = {
      onEvent: context.onEvent ?? this.onEvent,
      onViewCommand: context.onViewCommand ?? this.onViewCommand,
      onLog: context.onLog ?? this.onLog,
    };
    const totals = { executionTimeUs: 0, compileTimeUs: 0, hostCalls: 0, memoryBytes: 0, cacheHit: false };
    const report = { suspensions: 0, denials: [] };
    const native$ = (promise) =>
      promise.catch((error) => Promise.reject(SandboxError.fromNative(inTheExecutorsTerms(error), toolName)));

    let result;
    try {
      result = await native$(
        handler.bytecode
          ? this.runtime.executeCompiledHandler(handler.bytecode, native, timeoutMs)
          : this.runtime.executeHandler(handler.code, native, timeoutMs),
      );
      // Every call starts once, as soon as a suspension lists it; `settled` holds the outcomes
      // not yet delivered, in the order their calls settled (calls go on while a resume runs).
      const started = new Set();
      const settled = [];
      let wake = null;
      for (;;) {
        accumulate(totals, report, result);
        let failure = apply(result, state, sinks, native);
        if (failure instanceof Promise) failure = await failure;
        if (failure) {
          // The application's own code threw: the caller gets its error as it was thrown,
          // after every record of this step was applied, and no further step runs.
          if (result.status === 'suspended') await this.runtime.cancelSuspension(result.suspension.id).catch(() => {});
          throw failure;
        }
        if (result.status !== 'suspended') break;
        report.suspensions += 1;
        for (const call of result.suspension.calls) {
          if (started.has(call.callId)) continue;
          started.add(call.callId);
          perform(extensions, call).then((outcome) => {
            settled.push({ callId: call.callId, outcome });
            wake?.();
          });
        }
        if (settled.length === 0) await this.#settlement(result.suspension, (resolve) => (wake = resolve));
        wake = null;
        const { callId, outcome } = settled.shift();
        result = await this.#resume(result.suspension.id, callId, outcome, toolName);
      }
    } catch (error) {
      if (error instanceof ApplicationFailure) {
        this.#emitMetrics(native, toolName, 'error', null, totals, report);
        throw error.error;
      }
      const failure = SandboxError.fromNative(error, toolName);
      this.#emitMetrics(native, toolName, 'error', failure.code, totals, report);
      throw failure;
    }
    this.#emitMetrics(native, toolName, result.status, result.error?.code ?? null, totals, report);
    if (result.status === 'error') throw SandboxError.fromResult(result.error, toolName);
    return result.returnValue;
  }

  /**
   * Waits until `listen` is called back (a call settled). A suspension is kept for the
   * runtime's `suspensionTimeoutMs` only: when no call settles by then it has expired, and no
   * outcome could resume it any more, so this rejects with `TIMEOUT` naming the calls still
   * pending (an extension function that never settles would otherwise hold `executeHandler`
   * forever).
   */
  async #settlement(suspension, listen) {
    const ms = this.runtime.suspensionTimeoutMs;
    let timer;
    let stop;
    try {
      return await new Promise((resolve, reject) => {
        listen(resolve);
        stop = () => reject(new SandboxError('SHUTTING_DOWN', 'the executor was shut down while the handler waited for its extension calls'));
        if (this.#shutDown) return stop();
        this.#waiting.add(stop);
        // setTimeout takes at most 2^31 - 1 ms; beyond it the suspension outlives any wait.
        if (typeof ms === 'number' && ms <= MAX_TIMER_MS) {
          timer = setTimeout(() => reject(this.#expired(suspension, ms)), ms);
        }
      });
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(stop);
    }
  }

  #expired(suspension, ms) {
    this.runtime.cancelSuspension(suspension.id).catch(() => {});
    const names = [...new Set(suspension.calls.map((call) => `${call.extension}.${call.method}`))].join(', ');
    return new SandboxError(
      'TIMEOUT',
      `no extension call settled within the suspension timeout (${ms} ms), so the suspension expired; ` +
        `still pending: ${names}`,
    );
  }

  /** Resumes; an outcome the runtime cannot take (not JSON data) rejects the call instead. */
  async #resume(id, callId, outcome, toolName) {
    try {
      return await this.#resumeWhenServed(id, callId, outcome);
    } catch (error) {
      if (error?.code !== 'INVALID_ARGUMENT' || outcome.error) throw SandboxError.fromNative(error, toolName);
      const refused = { error: { code: 'INVALID_ARGUMENT', message: `the extension's value: ${error.message}` } };
      return this.#resumeWhenServed(id, callId, refused).catch((e) => {
        throw SandboxError.fromNative(e, toolName);
      });
    }
  }

  /**
   * Resumes, sending the resume again while the runtime refuses it as `OVERLOADED` (its queue
   * full): nothing ran and the suspension is intact, but its calls were performed, so the
   * caller could not send the whole execution again without performing them twice. Waits
   * 1 ms, doubling up to 50 ms, for at most the suspension's timeout.
   */
  async #resumeWhenServed(id, callId, outcome) {
    const limit = Math.min(this.runtime.suspensionTimeoutMs ?? MAX_TIMER_MS, MAX_TIMER_MS);
    for (let wait = 1, waited = 0; ; wait = Math.min(wait * 2, 50)) {
      try {
        return await this.runtime.resumeHandler(id, callId, outcome);
      } catch (error) {
        if (error?.code !== 'OVERLOADED' || waited >= limit || this.#shutDown) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      waited += wait;
    }
  }

  #emitMetrics(native, toolName, status, code, totals, report) {
    if (this.metricsListeners.size === 0) return;
    const metrics = {
      panelId: native.panelId,
      handlerName: native.handlerName,
      toolName,
      status,
      code,
      ...totals,
      suspensions: report.suspensions,
      denials: report.denials,
    };
    for (const listener of this.metricsListeners) {
      try {
        listener(metrics);
      } catch (error) {
        // A listener's failure must not turn a handler's result into an error.
        process.emitWarning(`onMetrics listener threw: ${error?.message ?? error}`);
      }
    }
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const SINKS = ['onEvent', 'onViewCommand', 'onLog'];
const EXECUTOR_OPTIONS = ['runtime', 'config', 'preload', 'extensions', 'timeoutMs', ...SINKS];
const HANDLER_FIELDS = ['code', 'bytecode', 'language', 'name', 'capabilities'];
const TOOL_FIELDS = ['name', 'description', 'parameters', 'handler'];
const CONTEXT_FIELDS = [
  'state',
  'args',
  'scope',
  'capabilities',
  'extensions',
  'panelId',
  'handlerName',
  'timeoutMs',
  'memoryLimit',
  'language',
  ...SINKS,
];

/**
 * Refuses a field the options do not have, as NexusRuntime does: a misspelt `capabilities`
 * would otherwise run the handler with none, and `stateSnapshot` (NexusRuntime's copy of the
 * state) would be ignored here.
 */
function checkFields(object, fields, what, toolName = null) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw new SandboxError('INVALID_ARGUMENT', `${what}: expected an object, got ${describe(object)}`, { toolName });
  }
  for (const key of Object.keys(object)) {
    if (fields.includes(key)) continue;
    const hint = key === 'stateSnapshot' ? " (the executor takes `state`, the application's object itself)" : '';
    const expected = fields.map((field) => `"${field}"`).join(', ');
    const message = `${what}.${key}: unknown field "${key}", expected one of ${expected}${hint}`;
    throw new SandboxError('INVALID_ARGUMENT', toolName ? `tool ${toolName}: ${message}` : message, { toolName });
  }
}

/** A callback that is given must be a function: refused before anything runs. */
function checkSinks(object, what) {
  for (const sink of SINKS) {
    const value = object[sink];
    if (value !== undefined && value !== null && typeof value !== 'function') {
      throw new SandboxError('INVALID_ARGUMENT', `${what}.${sink}: expected a function, got ${describe(value)}`);
    }
  }
}

/**
 * A refusal of NexusRuntime names the field it was given: the executor gave the application's
 * `context.state` as `context.stateSnapshot`, so a refusal of it names `context.state`.
 */
function inTheExecutorsTerms(error) {
  if (error?.code === 'INVALID_ARGUMENT' && typeof error.message === 'string') {
    error.message = error.message.replace(/^context\.stateSnapshot\b/, 'context.state');
  }
  return error;
}

/** What a value of the wrong kind is, in the words of NexusRuntime's messages. */
function describe(value) {
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `the ${typeof value} ${String(value)}`;
}

/**
 * `{ code | bytecode, ... }` of a handler given as source text, bytecode or such an object, whose
 * fields are checked as the options' (a misspelt `capabilities` would run it with none, a
 * misspelt `language` TypeScript as JavaScript).
 */
function normalizeHandler(handler, what = 'handler', toolName = null) {
  if (typeof handler === 'string') return { code: handler };
  if (Buffer.isBuffer(handler) || handler instanceof Uint8Array) return { bytecode: handler };
  if (handler && (typeof handler.code === 'string' || handler.bytecode)) {
    checkFields(handler, HANDLER_FIELDS, what, toolName);
    return handler;
  }
  let hint = `, not ${describe(handler)}`;
  if (typeof handler === 'function') hint = ': a function would close over the application (give its body as source text)';
  else if (typeof handler === 'object' && handler !== null) hint = ', and this object has neither a string `code` nor `bytecode`';
  const message = `a handler is source text, bytecode, or { code | bytecode }${hint}`;
  throw new SandboxError('INVALID_ARGUMENT', what === 'handler' ? message : `tool ${toolName}: ${what}: ${message}`, { toolName });
}

/**
 * `{ name: [methods] }` of the extension objects' methods: an extension's own function-valued
 * properties and, for an instance of a class, the methods that class itself declares (the own
 * properties of the instance's direct prototype, but `constructor`). Nothing inherited from a
 * base class is a method: an extension extending EventEmitter does not let the handler call
 * `emit` or `removeAllListeners`. Accessors are not read (a getter is not a method).
 */
function registryOf(extensions) {
  const registry = {};
  for (const [name, extension] of Object.entries(extensions ?? {})) {
    if (extension === null || (typeof extension !== 'object' && typeof extension !== 'function')) {
      throw new SandboxError('INVALID_ARGUMENT', `extensions.${name}: expected an object of functions, got ${describe(extension)}`);
    }
    const methods = new Set(functionsOf(extension));
    const prototype = typeof extension === 'object' ? Object.getPrototypeOf(extension) : null;
    if (prototype !== null && prototype !== Object.prototype) {
      for (const key of functionsOf(prototype)) if (key !== 'constructor') methods.add(key);
    }
    registry[name] = [...methods];
  }
  return registry;
}

/** The own string-keyed data properties of `object` whose value is a function. */
function functionsOf(object) {
  const descriptors = Object.getOwnPropertyDescriptors(object);
  return Object.keys(descriptors).filter((key) => typeof descriptors[key].value === 'function');
}

/** Calls the extension function; resolves to `{ value }` or `{ error }`, never rejects. */
function perform(extensions, call) {
  return Promise.resolve()
    .then(() => extensions[call.extension][call.method](...call.args))
    .then(
      (value) => ({ value }),
      (error) => ({ error: describeThrown(error) }),
    );
}

/**
 * `{ message, code? }` of what an extension function threw or rejected with. Reading it may
 * throw (an object without a prototype has no string form, a getter may throw): the call then
 * still rejects inside the handler, with a message saying so.
 */
function describeThrown(error) {
  let message;
  let code;
  try {
    message = String(error?.message ?? error);
  } catch {
    message = 'the extension threw a value that has no string form';
  }
  try {
    code = error?.code;
  } catch {
    code = undefined;
  }
  return { message, ...(typeof code === 'string' ? { code } : {}) };
}

/**
 * What the application's own code threw while a step's records were applied (its state object
 * refusing a mutation: frozen, or a Proxy; a callback: onEvent, onViewCommand, onLog), to
 * rethrow as is.
 */
class ApplicationFailure {
  constructor(error) {
    this.error = error;
  }
}

/**
 * Applies a result's records: state mutations to `state`, the rest to the callbacks. A set is
 * an own, enumerable, writable data property whatever the key: plain assignment would run the
 * `__proto__` setter of Object.prototype (a handler with `state:write:*` replacing the state
 * object's prototype) or a setter the application defined. Every record is applied even when
 * the application's code throws for one; the first error thrown comes back wrapped in an
 * ApplicationFailure. A callback that returns a promise (a thenable) is waited for before the
 * next record is delivered, and its rejection counts as a throw: then this returns a Promise of
 * the outcome (synchronous callbacks cost no wait).
 */
function apply(result, state, sinks, context) {
  let failure = null;
  const failed = (error) => {
    failure ??= new ApplicationFailure(error);
  };
  for (const mutation of result.stateMutations) {
    try {
      if (mutation.op === 'set') {
        const property = { value: mutation.value, writable: true, enumerable: true, configurable: true };
        Object.defineProperty(state, mutation.key, property);
      } else {
        delete state[mutation.key];
      }
    } catch (error) {
      failed(error);
    }
  }
  const deliveries = [
    [sinks.onEvent, result.events],
    [sinks.onViewCommand, result.viewCommands],
    [sinks.onLog, result.logs],
  ];
  const next = deliverFrom(deliveries, { d: 0, i: 0 }, context, failed);
  return next === null ? failure : deliverRest(next, deliveries, context, failed, () => failure);
}

/**
 * Delivers the records from record `at.i` of delivery `at.d` on, until a callback returns a
 * promise: then `{ pending, d, i }`, where to go on from once it settles; `null` when all are
 * delivered.
 */
function deliverFrom(deliveries, at, context, failed) {
  for (let d = at.d, i = at.i; d < deliveries.length; d++, i = 0) {
    const [sink, records] = deliveries[d];
    if (!sink) continue;
    for (; i < records.length; i++) {
      try {
        const returned = sink(records[i], context);
        if (isThenable(returned)) return { pending: returned, d, i: i + 1 };
      } catch (error) {
        failed(error);
      }
    }
  }
  return null;
}

/** `apply`'s delivery once a callback returned a promise: each is waited for, in order. */
async function deliverRest(next, deliveries, context, failed, failure) {
  while (next !== null) {
    try {
      await next.pending;
    } catch (error) {
      failed(error);
    }
    next = deliverFrom(deliveries, next, context, failed);
  }
  return failure();
}

/** Whether a callback returned a promise, or another object with a `then` method. */
function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

function accumulate(totals, report, result) {
  const m = result.metrics;
  totals.executionTimeUs += m.executionTimeUs;
  totals.compileTimeUs += m.compileTimeUs;
  totals.hostCalls += m.hostCalls;
  totals.memoryBytes = Math.max(totals.memoryBytes, m.memoryBytes);
  totals.cacheHit ||= m.cacheHit;
  // One at a time: spread as arguments, a step's denials (over 100,000 fit its output budget)
  // would exceed the engine's argument limit.
  for (const denial of result.denials) report.denials.push(denial);
}

/**
 * The capability tokens a handler's source needs, with warnings for its dynamic accesses
 * (no runtime needed); a syntax error rejects with a SandboxError `SYNTAX_ERROR` and `location`.
 * `options.language: 'typescript'` for TypeScript (locations in the TypeScript).
 */
async function inferCapabilities(code, options) {
  const { inferCapabilities: infer } = require('./native');
  try {
    return await infer(code, options);
  } catch (error) {
    throw SandboxError.fromNative(error);
  }
}

module.exports = { WasmSandboxExecutor, inferCapabilities };
