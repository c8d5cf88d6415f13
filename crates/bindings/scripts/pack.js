#!/usr/bin/env node
// Packs the npm packages of the binding into <out> (scripts/pack-node.sh gives target/npm),
// from the native module built beside index.js as nexus.node (a release build: see
// pack-node.sh):
//
//   nexus-executor-<version>.tgz              the main package: index.js, lib/, index.d.ts, no
//                                             binary; an optional dependency on each platform
//                                             package of `napi.targets` in package.json
//   nexus-executor-<platform>-<version>.tgz   this machine's platform package, holding
//                                             nexus-executor.<platform>.node, with the npm `os`,
//                                             `cpu` and `libc` that select it
//
//   node scripts/pack.js <out>
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { npmFilters, platformName, platformOfTriple, platformPackage } = require('../lib/platform');

const crate = path.resolve(__dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(crate, '..', '..', 'target', 'npm'));
const manifest = JSON.parse(fs.readFileSync(path.join(crate, 'package.json'), 'utf8'));
const binary = path.join(crate, 'nexus.node');
if (!fs.existsSync(binary)) {
  console.error(`no ${binary}: build it first (node scripts/build.js --release)`);
  process.exit(1);
}

const platform = platformName();
const platforms = manifest.napi.targets.map(platformOfTriple);
if (!platforms.includes(platform)) {
  console.error(`this machine is ${platform}, which is not among napi.targets of package.json (${platforms.join(', ')})`);
  process.exit(1);
}

const stage = path.join(out, 'stage');
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

/** Runs `npm pack` in `dir`; the tarball's path. */
function pack(dir) {
  const output = execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8' });
  const [{ filename, files }] = JSON.parse(output);
  console.error(`packed ${path.relative(process.cwd(), path.join(out, filename))}: ${files.map((f) => f.path).join(', ')}`);
  return path.join(out, filename);
}

// The main package: the files package.json lists, and a manifest without what only a checkout
// needs (scripts, dev dependencies), with the platform packages as optional dependencies.
const main = path.join(stage, 'main');
for (const entry of manifest.files) {
  fs.cpSync(path.join(crate, entry), path.join(main, entry), { recursive: true });
}
const { scripts, devDependencies, ...published } = manifest;
published.optionalDependencies = Object.fromEntries(
  platforms.map((name) => [platformPackage(name).name, manifest.version]),
);
fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
const mainTarball = pack(main);

// This machine's platform package.
const { name, binary: file } = platformPackage(platform);
const dir = path.join(stage, platform);
fs.mkdirSync(dir, { recursive: true });
// Without the line tables the release profile keeps for profiling: a quarter of the size.
const stripped = spawnSync('strip', ['--strip-debug', '-o', path.join(dir, file), binary], { stdio: 'inherit' });
if (stripped.error || stripped.status !== 0) fs.copyFileSync(binary, path.join(dir, file));
const platformManifest = {
  name,
  version: manifest.version,
  description: `The ${platform} native module of ${manifest.name}`,
  license: manifest.license,
  main: file,
  files: [file],
  ...npmFilters(platform),
  engines: manifest.engines,
};
fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(platformManifest, null, 2)}\n`);
const platformTarball = pack(dir);

fs.rmSync(stage, { recursive: true, force: true });
console.log(JSON.stringify({ main: mainTarball, platform: platformTarball }));
