'use strict';

// Nexus for Node.js: `NexusRuntime` (the native binding), `WasmSandboxExecutor` (runs handlers
// to completion against the application's extensions, state and callbacks; `SandboxExecutor`
// is the same class under the legacy name) and `SandboxError`.
const { NexusRuntime, binding, MAX_NESTING } = require('./lib/native');
const { WasmSandboxExecutor, inferCapabilities } = require('./lib/executor');
const { SandboxError } = require('./lib/errors');
const { coerceArguments } = require('./lib/tool-arguments');

const SandboxExecutor = WasmSandboxExecutor;

module.exports = {
  NexusRuntime,
  WasmSandboxExecutor,
  SandboxExecutor,
  SandboxError,
  coerceArguments,
  inferCapabilities,
  binding,
  MAX_NESTING,
};
