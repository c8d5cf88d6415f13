// Type declarations of the Nexus Node.js binding (native NexusRuntime) and its JavaScript
// layer (WasmSandboxExecutor, SandboxError). test/types.test.js checks them against the Rust
// definitions (the error codes, the nesting limit, the shape of results and statistics) and
// compiles test/types/usage.ts against them with `tsc --noEmit --strict`.

/// <reference types="node" />

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * What a request takes where JSON data goes: a JsonValue, or an object or array TypeScript
 * cannot see is JSON data (one typed by an interface or a class). The runtime checks the data
 * itself and refuses what is not JSON with INVALID_ARGUMENT, naming where it is.
 */
export type JsonInput = JsonValue | Record<string, any> | readonly unknown[];

export type ErrorCode =
  | 'SYNTAX_ERROR'
  | 'RUNTIME_ERROR'
  | 'TIMEOUT'
  | 'MEMORY_LIMIT'
  | 'STACK_OVERFLOW'
  | 'PERMISSION_DENIED'
  | 'UNKNOWN_EXTENSION'
  | 'INVALID_ARGUMENT'
  | 'UNSETTLED'
  | 'SUSPENSION_NOT_FOUND'
  | 'OVERLOADED'
  | 'SHUTTING_DOWN'
  | 'STORE_UNAVAILABLE'
  | 'INTERNAL';

/** `new NexusRuntime(config)`: every field optional. */
export interface RuntimeConfig {
  /** Instance actors, hence live stores (running or parked): at least 1. Default 256. */
  poolSize?: number;
  /** Worker threads. Default: the machine's cores. */
  workers?: number;
  /** Requests that may wait for an instance; beyond it, OVERLOADED. Default 16384 (see the README). */
  queueBound?: number;
  /** A suspension not resumed within this time is dropped. Default 60000. */
  suspensionTimeoutMs?: number;
  /**
   * How long the runtime's threads, and this JavaScript thread while executions are pending,
   * spin before they block waiting (a hand-off to a blocked thread costs ~20 µs on a VM whose
   * CPU went idle). 0 turns it off; at most 1000 (the event loop runs nothing while it spins).
   * Default 100.
   */
  spinBeforeParkUs?: number;
  /**
   * An execution running alone leaves resetting its finished instance's memory slot (~10 µs) to
   * this JavaScript thread, which does it within the call of the next execution that runs
   * alone, after handing it over, while the worker runs it: the next one does not wait for the
   * reset on the worker. With other executions running, the workers reset. Turn it off to keep
   * those microseconds per call off the event loop when it has other work (~10 µs; with
   * preloaded libraries whose slots are copied back whole, more: ~45 µs with lodash). Default true.
   */
  callerResets?: boolean;
  /** Memory limit in bytes of an execution that names none: from the snapshot's own memory to `maxMemoryLimit`. Default 64 MiB. */
  defaultMemoryLimit?: number;
  /** Largest memory limit a request may ask for. Default 256 MiB. */
  maxMemoryLimit?: number;
  /** Bytes of records, and of its return value or error, one execution may make the host keep. Default 16 MiB. */
  outputLimit?: number;
  /**
   * Bytes all executions together may grow their memory by beyond the snapshot's, running or
   * suspended live: past it an execution fails with `OVERLOADED`. Size it to the machine. Default 4 GiB.
   */
  memoryBudget?: number;
  /** Run a request without capabilities with the ones inferred from its source. Default false. */
  inferMissingCapabilities?: boolean;
  /** Compiled sources kept in memory. Default 1024. */
  compileCacheEntries?: number;
  /** Bytes of bytecode those entries may hold together (bytecode is up to ~4× its source). Default 64 MiB. */
  compileCacheBytes?: number;
  /** Directory where compiled bytecode is also kept across processes. */
  compileCacheDir?: string;
  /** Bytes of entries that directory may hold: past it, the oldest are deleted. Default 1 GiB. */
  compileCacheDirBytes?: number;
  /**
   * A suspended execution stays live this long (or until the pool needs its instance), then it
   * is hibernated into the suspension store as a sealed image. Default 5.
   */
  hibernateAfterMs?: number;
  /**
   * Keep suspensions in a directory, so they survive restarts, or in Redis, so that every
   * process configured with the same Redis, prefix and keys resumes any of them (every
   * suspension is written before its result is returned). Needs `suspensionKeys`. Default: in
   * memory.
   */
  suspensionStore?: SuspensionStore;
  /**
   * Keys sealing suspension images: 32-byte Buffers or 64-character hex strings. The first
   * seals, all open (rotation). Required with `suspensionStore`.
   */
  suspensionKeys?: Array<Buffer | string>;
  /**
   * Libraries (classic scripts: a UMD bundle, a platform SDK) evaluated once, in order, into the
   * snapshot every execution starts from: their globals are every handler's at no cost per
   * execution, and what one handler changes in them is gone in the next. A library that fails
   * to parse, throws, or reaches the host while it loads (`console`, `Math.random`, state,
   * events, extensions) makes the constructor throw INVALID_ARGUMENT naming it and its line.
   * The clock reads 0 while they load. Built at start, cached on disk by content.
   */
  preload?: PreloadLibrary[];
}

/** A library of `RuntimeConfig.preload`. */
export interface PreloadLibrary {
  /** What errors and stack frames call it. */
  name: string;
  /** A classic script (not a module), evaluated in sloppy mode. */
  source: string;
}

/** Where suspensions are kept: a directory, or a Redis shared by every node. */
export type SuspensionStore =
  | { dir: string }
  | {
      /** `redis://[:password@]host:port/db` (or `rediss://`). */
      redis: string;
      /** Prefix of every key written. Default `"nexus:"`. */
      prefix?: string;
      /** Bound on each store operation; past it the request fails with STORE_UNAVAILABLE. Default 1000. */
      timeoutMs?: number;
    };

/**
 * How deep arrays and objects may nest in a request's values (arguments, scope, state) and in
 * an extension call's result; deeper is INVALID_ARGUMENT.
 */
export declare const MAX_NESTING: 128;

/** Which native module was loaded: its file, and the Cargo profile it was built with. */
export declare const binding: { readonly file: string; readonly profile: 'release' | 'debug' };

/**
 * What a native execution gets besides the handler. Values must be JSON data; an object with a
 * `toJSON` method (a URL) is what it returns, as in JSON.stringify, but a Date or binary data is
 * refused as any other value that is not JSON data, naming where it is.
 */
export interface ExecutionContext {
  panelId?: string;
  handlerName?: string;
  /**
   * A copy of the panel's state, read by the handler; its writes come back as the result's
   * `stateMutations`, to apply yourself. (WasmSandboxExecutor takes `state`, the live object,
   * and applies them to it.)
   */
  stateSnapshot?: Record<string, any>;
  args?: JsonInput;
  scope?: JsonInput;
  /** Capability tokens: `state:read:<key>`, `state:write:<key>`, `events:emit:<name>`, `view:update:<componentId>`, `ext:<name>`. */
  capabilities?: string[];
  /** `{ extension: [methods] }` the handler may call. */
  extensionRegistry?: Record<string, string[]>;
  /**
   * The handler's running-time budget in milliseconds (time parked waiting for an extension
   * call does not count). Default 5000. The methods' positional `timeoutMs` wins over it.
   */
  timeoutMs?: number;
  /** Bytes. */
  memoryLimit?: number;
  /**
   * The language of `executeHandler`'s source: TypeScript has its types stripped (not checked)
   * and its errors located in the TypeScript. Default `'javascript'`.
   */
  language?: Language;
}

/** The language of handler source. */
export type Language = 'javascript' | 'typescript';

/** `precompileHandler`'s and `inferCapabilities`'s options: the source's language. */
export interface PrecompileOptions {
  /** Precompiled TypeScript keeps its source map with the bytecode. Default `'javascript'`. */
  language?: Language;
}

export type StateMutation = { op: 'set'; key: string; value: JsonValue } | { op: 'delete'; key: string };
export interface HandlerEvent {
  name: string;
  payload: JsonValue;
}
export interface ViewCommand {
  type: string;
  componentId: string;
  args: JsonValue;
}
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}
/**
 * An access denied for lack of a capability. `capability` is the token that would have allowed it;
 * `kind` and `resource` say the same unambiguously (a literal key `*` has the token `state:read:*`,
 * which reads as the wildcard, and an empty key has no valid token at all).
 */
export interface Denial {
  capability: string;
  kind: 'state:read' | 'state:write' | 'events:emit' | 'view:update' | 'ext';
  resource: string;
  operation: string;
}
export interface PendingCall {
  callId: number;
  extension: string;
  method: string;
  args: JsonValue[];
}
export interface Location {
  /** 1-based, in the handler's own source. */
  line: number;
  column: number;
}
export interface ExecutionErrorInfo {
  code: ErrorCode;
  message: string;
  stack?: string;
  location?: Location;
  snippet?: string;
  /** The `code` the handler gave the error it threw (never one of the engine's codes). */
  handlerCode?: string;
}
export interface ExecutionMetrics {
  executionTimeUs: number;
  compileTimeUs: number;
  hostCalls: number;
  memoryBytes: number;
  cacheHit: boolean;
}
export interface ExecutionResult {
  status: 'success' | 'error' | 'suspended';
  returnValue: JsonValue;
  stateMutations: StateMutation[];
  events: HandlerEvent[];
  viewCommands: ViewCommand[];
  logs: LogLine[];
  denials: Denial[];
  suspension: { id: string; calls: PendingCall[] } | null;
  error: ExecutionErrorInfo | null;
  metrics: ExecutionMetrics;
}

/**
 * The outcome of one extension call, for `resumeHandler`: exactly one of a value and an error.
 * A field is given when the object has it, even as `undefined`: `{ value: undefined }` is a call
 * that returned nothing (the handler sees `null`). Both, neither (`{}`), an error that is not
 * `{ message, code? }` (`{ error: null }`, `{ error: undefined }`) or another field is refused
 * with INVALID_ARGUMENT, and the suspension stays as it was.
 */
export type CallResult = { value: JsonValue | undefined } | { error: { message: string; code?: string } };

export interface RuntimeStats {
  executions: Record<string, number>;
  errors: Record<string, number>;
  hostCalls: number;
  denials: number;
  cacheHits: number;
  cacheMisses: number;
  latencyP50Us: number;
  latencyP99Us: number;
  /** Suspensions hibernated into the store, restored from it, and cancelled. */
  hibernations: number;
  restores: number;
  cancellations: number;
  poolSize: number;
  idle: number;
  queued: number;
  parked: number;
  /** Finished instances whose memory slot is still to be reset (a lone request's caller resets it while its next request runs). */
  awaitingReset: number;
  /** Suspensions kept as sealed images in the store (`parked` counts the live ones). */
  hibernated: number;
  /** Bytes the suspension store holds. */
  storeBytes: number;
}

export interface CapabilityInference {
  capabilities: string[];
  warnings: { message: string; line: number; column: number }[];
}

/**
 * The native runtime. Every method returns a Promise and runs off the event loop. A request
 * the runtime refuses (bad input, unknown suspension, OVERLOADED, SHUTTING_DOWN) rejects with
 * an `Error` whose `code` names why; a handler that fails resolves to `status: "error"`.
 */
export declare class NexusRuntime {
  /**
   * Starts a runtime: threads of its own until `shutdown()`, or until the object is garbage
   * (its finalizer stops it).
   */
  constructor(config?: RuntimeConfig);
  /** How long a suspension waits for its resume before it expires (`suspensionTimeoutMs`, default 60000). */
  readonly suspensionTimeoutMs: number;
  /** `timeoutMs` (positional) wins over `context.timeoutMs`; see ExecutionContext. */
  executeHandler(code: string, context?: ExecutionContext, timeoutMs?: number): Promise<ExecutionResult>;
  executeCompiledHandler(bytecode: Buffer, context?: ExecutionContext, timeoutMs?: number): Promise<ExecutionResult>;
  precompileHandler(code: string, options?: PrecompileOptions): Promise<Buffer>;
  resumeHandler(suspensionId: string, callId: number, result: CallResult): Promise<ExecutionResult>;
  /** Drops a suspension on purpose; whether there was one. */
  cancelSuspension(suspensionId: string): Promise<boolean>;
  getStats(): Promise<RuntimeStats>;
  getPrometheusMetrics(): Promise<string>;
  inferCapabilities(code: string, options?: PrecompileOptions): Promise<CapabilityInference>;
  /**
   * Stops accepting work (later requests reject with SHUTTING_DOWN) and lets running executions
   * finish within `graceMs`: a number of milliseconds from 0 to 2^31 - 1 (2147483647), default
   * 5000. Anything else rejects with INVALID_ARGUMENT and shuts nothing down.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** A handler that failed, or a request the runtime refused. */
export declare class SandboxError extends Error {
  constructor(
    code: ErrorCode,
    message: string,
    options?: {
      location?: Location | null;
      snippet?: string | null;
      handlerStack?: string | null;
      handlerCode?: string | null;
      toolName?: string | null;
      cause?: unknown;
    },
  );
  readonly name: 'SandboxError';
  code: ErrorCode;
  location: Location | null;
  snippet: string | null;
  /** The handler's own stack trace, when it threw. */
  handlerStack: string | null;
  /** The `code` the handler gave the error it threw (`code` is always the engine's). */
  handlerCode: string | null;
  /** The tool being executed (`executeTool` only). */
  toolName: string | null;
}

/**
 * `{ name: { method: (...args) => value | Promise<value> } }`. An extension's methods, the
 * only ones a handler may call, are its own function-valued properties and, for an instance of
 * a class, the methods that class itself declares (its direct prototype's own functions, but
 * `constructor`); nothing inherited from a base class is one (an extension extending
 * EventEmitter does not expose `emit`), and getters are not read. A call of anything else is
 * `UNKNOWN_EXTENSION` in the handler.
 */
export type Extensions = Record<string, object>;

/** Source text, bytecode, or an object of these fields only (another is refused with INVALID_ARGUMENT naming it). */
export type Handler = string | Uint8Array | { code: string; language?: Language; name?: string; capabilities?: string[] } | { bytecode: Uint8Array; name?: string; capabilities?: string[] };

/**
 * The application's callbacks, each given every record of a step in order. One that returns a
 * promise (a thenable) is waited for before the next record is delivered (and before the step's
 * extension calls start). One that throws, or whose promise rejects, makes `executeHandler`
 * reject with that error as thrown, once the step's other records are delivered; the execution
 * stops there (its suspension is cancelled). A callback given that is not a function (nor
 * `null`/`undefined`) is refused with INVALID_ARGUMENT before anything runs.
 */
export interface Sinks {
  onEvent?: ((event: HandlerEvent, context: ExecutionContext) => void | PromiseLike<unknown>) | null;
  onViewCommand?: ((command: ViewCommand, context: ExecutionContext) => void | PromiseLike<unknown>) | null;
  onLog?: ((line: LogLine, context: ExecutionContext) => void | PromiseLike<unknown>) | null;
}

/** The constructor throws a SandboxError INVALID_ARGUMENT naming an option it cannot use. */
export interface ExecutorOptions extends Sinks {
  /** A NexusRuntime to share (anything else is refused); without it, one is made from `config`. */
  runtime?: NexusRuntime;
  /** For a new runtime: not with `runtime`. */
  config?: RuntimeConfig;
  /** `config.preload` (not with `runtime`, which has its libraries already). */
  preload?: PreloadLibrary[];
  extensions?: Extensions;
  /** The default of `timeoutMs` (see HandlerContext). */
  timeoutMs?: number;
}

export interface HandlerContext extends Sinks {
  /**
   * The application's state object itself (where NexusRuntime takes `stateSnapshot`, a copy):
   * the handler's mutations are applied to it as they happen, each set as an own data property
   * whatever the key (`__proto__` included). One it refuses (frozen, a Proxy that throws) makes
   * `executeHandler` reject with its error once the step's other records are applied.
   */
  state?: Record<string, any>;
  args?: JsonInput;
  scope?: JsonInput;
  capabilities?: string[];
  extensions?: Extensions;
  panelId?: string;
  handlerName?: string;
  /**
   * The handler's running-time budget in milliseconds, as ExecutionContext's; the methods'
   * positional `timeoutMs` wins over it, and it wins over the executor's `timeoutMs` option.
   */
  timeoutMs?: number;
  memoryLimit?: number;
  /** The language of source handlers (a handler's own `language` wins). Default `'javascript'`. */
  language?: Language;
}

/**
 * The JSON-schema subset `executeTool` checks and coerces arguments against. The whole
 * declaration is checked before the arguments: a field not listed here (a misspelt `require`,
 * or a keyword this subset does not enforce, such as `minimum` or `format`) is refused with
 * INVALID_ARGUMENT naming it, as is a `required` parameter missing from `properties` while
 * `additionalProperties` is false. A parameter of type `object` (the arguments themselves
 * included) must be a plain object: a Map, a Date or a class instance is refused. `required`
 * holds for names not in `properties` too.
 */
export interface ParameterSchema {
  type?: 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';
  properties?: Record<string, ParameterSchema>;
  required?: string[];
  enum?: JsonValue[];
  default?: JsonValue;
  items?: ParameterSchema;
  additionalProperties?: boolean;
  /** Annotations: taken, and check nothing. */
  description?: string;
  title?: string;
  examples?: JsonValue[];
  $comment?: string;
  $schema?: string;
}

/** A tool: these fields only (another is refused with INVALID_ARGUMENT naming it). */
export interface Tool {
  name: string;
  description?: string;
  parameters?: ParameterSchema;
  handler: Handler;
}

export interface ExecutionReport extends ExecutionMetrics {
  panelId: string;
  handlerName: string;
  toolName: string | null;
  status: 'success' | 'error';
  /** null on success, and when the error is one the application's state object or callback threw. */
  code: ErrorCode | null;
  suspensions: number;
  denials: Denial[];
}

/** Runs handlers to completion against the application's extensions, state and callbacks. */
export declare class WasmSandboxExecutor {
  constructor(options?: ExecutorOptions);
  readonly runtime: NexusRuntime;
  /**
   * Returns the handler's value; throws SandboxError when it fails. When no pending extension
   * call settles within the runtime's `suspensionTimeoutMs`, the suspension has expired and
   * this rejects with `TIMEOUT` naming the calls still pending.
   */
  executeHandler(handler: Handler, context?: HandlerContext, timeoutMs?: number): Promise<JsonValue>;
  /** Checks and coerces `args` against `tool.parameters`, then runs the tool's handler. */
  executeTool(tool: Tool, args: Record<string, unknown>, context?: HandlerContext, timeoutMs?: number): Promise<JsonValue>;
  precompileHandler(code: string, options?: PrecompileOptions): Promise<Buffer>;
  inferCapabilities(code: string, options?: PrecompileOptions): Promise<CapabilityInference>;
  /** Calls `callback` after every execution; returns a function that unsubscribes. */
  onMetrics(callback: (report: ExecutionReport) => void): () => void;
  getStats(): Promise<RuntimeStats>;
  getPrometheusMetrics(): Promise<string>;
  /** As NexusRuntime's (an invalid `graceMs` rejects with a SandboxError INVALID_ARGUMENT). */
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * The executor's legacy name: the in-process SandboxExecutor the product grew from is gone,
 * and code written against it gets WasmSandboxExecutor, with real isolation.
 */
export declare const SandboxExecutor: typeof WasmSandboxExecutor;
export type SandboxExecutor = WasmSandboxExecutor;

/**
 * The capability tokens a handler's source needs, with warnings for its dynamic accesses; no
 * runtime needed. A syntax error rejects with a SandboxError `SYNTAX_ERROR` and `location`.
 */
export declare function inferCapabilities(code: string, options?: PrecompileOptions): Promise<CapabilityInference>;

/** The argument checking of `executeTool`, on its own. */
export declare function coerceArguments(toolName: string, parameters: ParameterSchema | undefined, args: unknown): Record<string, unknown>;
