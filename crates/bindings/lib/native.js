'use strict';

// The native module. In a checkout of the repository, the one built from source by
// `npm run build` (scripts/build.js) as ../nexus.node, when it exists; otherwise, as installed
// from npm, the platform package's (see platform.js), which the main package never contains.
const fs = require('node:fs');
const path = require('node:path');
const { PACKAGE, platformName, platformPackage } = require('./platform');

function load() {
  const local = path.join(__dirname, '..', 'nexus.node');
  if (fs.existsSync(local)) return { native: require(local), file: local };
  const platform = platformName();
  const { name } = platformPackage(platform);
  let manifest;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(
      `${PACKAGE} has no native module for this platform, ${platform}: the package ${name} is not installed. ` +
        `npm installs it with ${PACKAGE} as an optional dependency where it exists for ${platform} ` +
        `(not with --omit=optional or --no-optional); in a checkout of the repository, ` +
        `\`npm run build\` in crates/bindings builds nexus.node instead.`,
      { cause: error },
    );
  }
  const { version, main } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  const own = require('../package.json').version;
  if (version !== own) {
    throw new Error(`${PACKAGE} ${own} needs ${name} ${own}, but ${name} ${version} is installed`);
  }
  const file = path.join(path.dirname(manifest), main);
  return { native: require(file), file };
}

const { native, file } = load();
// Arguments that are plain JSON data cross as JSON text (see json-text.js).
const { jsonText, notJson } = require('./json-text');
native.useJsonText(jsonText, notJson);
const definitions = native.definitions();

/** Suspension keys may be given as Buffers (32 bytes) or as 64-character hex strings. */
function withHexKeys(config) {
  if (config === null || typeof config !== 'object' || !Array.isArray(config.suspensionKeys)) return config;
  const suspensionKeys = config.suspensionKeys.map((key) => (Buffer.isBuffer(key) ? key.toString('hex') : key));
  return { ...config, suspensionKeys };
}

// The native class, constructed with its configuration's keys as hex strings; called without
// `new`, it says so, as a JavaScript class would.
const NexusRuntime = new Proxy(native.NexusRuntime, {
  construct(target, [config, ...rest], newTarget) {
    return Reflect.construct(target, [withHexKeys(config), ...rest], newTarget);
  },
  apply() {
    throw new TypeError("Class constructor NexusRuntime cannot be invoked without 'new'");
  },
});

module.exports = {
  NexusRuntime,
  /** A Promise, the inference made on a libuv worker thread (the JavaScript layer wraps its errors). */
  inferCapabilities: native.inferCapabilities,
  /** Which native module was loaded: its file, and the Cargo profile it was built with. */
  binding: Object.freeze({ file, profile: definitions.profile }),
  /** Every error code of the runtime (results' `error.code`, rejections' `code`). */
  ERROR_CODES: Object.freeze(definitions.errorCodes),
  /** How deep arrays and objects may nest in the values of a request or an extension result. */
  MAX_NESTING: definitions.maxNesting,
};
