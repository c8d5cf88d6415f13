#!/usr/bin/env node
// Builds the native module from source with cargo and puts it beside index.js as nexus.node.
// `node scripts/build.js` builds in the dev profile (dependencies optimized, as the workspace
// sets), sharing the workspace's target directory with `cargo test`; `--release` builds the
// release profile, for benchmarks.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const release = process.argv.includes('--release');
const crate = path.resolve(__dirname, '..');
const args = ['build', '--locked', '-p', 'nexus-node', '--message-format', 'json-render-diagnostics'];
if (release) args.push('--release');

let output;
try {
  output = execFileSync('cargo', args, {
    cwd: crate,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
} catch (error) {
  console.error(`cargo build failed (${error.status ?? error.message})`);
  process.exit(1);
}
const artifact = output
  .split('\n')
  .filter((line) => line.startsWith('{'))
  .map((line) => JSON.parse(line))
  .find((message) => message.reason === 'compiler-artifact' && message.target.name === 'nexus_node');
const library = artifact && artifact.filenames.find((file) => /\.(so|dylib|dll)$/.test(file));
if (!library) {
  console.error('cargo built no nexus_node library');
  process.exit(1);
}
// Replace, not overwrite: a running process may have the old file mapped.
const target = path.join(crate, 'nexus.node');
fs.copyFileSync(library, `${target}.tmp`);
fs.renameSync(`${target}.tmp`, target);
console.error(`built ${path.relative(process.cwd(), target)} (${release ? 'release' : 'dev'} profile)`);
