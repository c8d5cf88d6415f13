'use strict';

// The native module, built from source by `npm run build` (scripts/build.js) as ../nexus.node.
const path = require('node:path');

const file = path.join(__dirname, '..', 'nexus.node');
let native;
try {
  native = require(file);
} catch (error) {
  if (error.code !== 'MODULE_NOT_FOUND') throw error;
  throw new Error(`the Nexus native module is not built (${file}): run \`npm run build\` in crates/bindings`, {
    cause: error,
  });
}
// Arguments that are plain JSON data cross as JSON text (see json-text.js).
native.useJsonText(require('./json-text').jsonText);
module.exports = { NexusRuntime: native.NexusRuntime };
