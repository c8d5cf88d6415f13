'use strict';

// Nexus for Node.js: `NexusRuntime` (the native binding), `WasmSandboxExecutor` (runs handlers
// to completion against the application's extensions, state and callbacks) and `SandboxError`.
const { NexusRuntime } = require('./lib/native');
const { WasmSandboxExecutor } = require('./lib/executor');
const { SandboxError } = require('./lib/errors');
const { coerceArguments } = require('./lib/tool-arguments');

module.exports = { NexusRuntime, WasmSandboxExecutor, SandboxError, coerceArguments };
