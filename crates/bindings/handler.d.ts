// The globals a Nexus handler sees, for editors and `tsc` (types are stripped, never checked,
// when a TypeScript handler runs). A handler is the body of an async function: `return` and
// `await` work at its top level. Reference this file from a handler's folder (for example a
// `tsconfig.json` with `"files": ["node_modules/nexus-executor/handler.d.ts"]` or a
// `/// <reference path="..." />` line) and the editor knows `$state`, `$args` and the rest.
// The README's "The handler API" says what each needs (capability tokens) and does.

/** A value that crosses the sandbox boundary: JSON data. */
type NexusJson = null | boolean | number | string | NexusJson[] | { [key: string]: NexusJson };

/**
 * The panel's state. Reading a key needs `state:read:<key>`, writing or deleting it
 * `state:write:<key>`; a denied access throws an Error whose `code` is `"PERMISSION_DENIED"`.
 * Absent keys read as `undefined`.
 */
declare const $state: Record<string, any>;

/** The call's arguments (deep-frozen). */
declare const $args: any;

/** The panel scope (deep-frozen). */
declare const $scope: any;

/** Emits an event; needs `events:emit:<name>`. */
declare function $emit(name: string, payload?: NexusJson | object): void;

/** View commands; each needs `view:update:<componentId>`. */
declare const $view: {
  /** A view command `{ type: "update", componentId, args: patch }`. */
  update(componentId: string, patch?: NexusJson | object): void;
  /** Any other view command. */
  command(type: string, componentId: string, args?: NexusJson | object): void;
};

/**
 * Extension calls: `$ext.<name>.<method>(...args)` is a Promise of the extension's result
 * (the execution suspends until the host settles it). Needs `ext:<name>` and the method
 * registered.
 */
declare const $ext: Record<string, Record<string, (...args: any[]) => Promise<any>>>;

/** Captured log lines (`$log(...)` logs at `info`). */
declare const $log: {
  (...values: unknown[]): void;
  debug(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
};
