'use strict';

/**
 * A handler that failed, or a request the runtime refused. `code` is one of the product's
 * error codes (SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY_LIMIT, ..., INVALID_ARGUMENT);
 * `location` is `{ line, column }` in the handler's own source when known, `snippet` that
 * source line, `toolName` the tool being executed (executeTool only).
 */
class SandboxError extends Error {
  constructor(
    code,
    message,
    { location = null, snippet = null, handlerStack = null, handlerCode = null, toolName = null, cause } = {},
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SandboxError';
    this.code = code;
    this.location = location;
    this.snippet = snippet;
    /** The handler's own stack trace, when it threw. */
    this.handlerStack = handlerStack;
    /** The `code` the handler gave the error it threw; `code` is always the engine's. */
    this.handlerCode = handlerCode;
    this.toolName = toolName;
  }

  /** The error of a result with `status: "error"`. */
  static fromResult(error, toolName = null) {
    return new SandboxError(error.code, error.message, {
      location: error.location ?? null,
      snippet: error.snippet ?? null,
      handlerStack: error.stack ?? null,
      handlerCode: error.handlerCode ?? null,
      toolName,
    });
  }

  /** A rejection of the native module (an Error with `code`), as a SandboxError. */
  static fromNative(error, toolName = null) {
    if (error instanceof SandboxError) {
      if (toolName && !error.toolName) error.toolName = toolName;
      return error;
    }
    const code = typeof error?.code === 'string' ? error.code : 'INTERNAL';
    return new SandboxError(code, error?.message ?? String(error), {
      location: error?.location ?? null,
      snippet: error?.snippet ?? null,
      toolName,
      cause: error,
    });
  }
}

module.exports = { SandboxError };
