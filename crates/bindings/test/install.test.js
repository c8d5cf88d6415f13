'use strict';

// The npm packages as a user gets them: the tarballs scripts/pack-node.sh wrote into
// target/npm (scripts/test.sh packs them first) installed into a new project with
// `npm install --offline`, with no Rust toolchain on PATH, then loaded through require and
// through an ESM import.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { platformName, platformPackage } = require('../lib/platform');

const crate = path.join(__dirname, '..');
const { version } = require('../package.json');
const out = path.join(crate, '..', '..', 'target', 'npm');
const mainTarball = path.join(out, `nexus-executor-${version}.tgz`);
const platform = platformName();
const platformTarball = path.join(out, `${platformPackage(platform).name}-${version}.tgz`);
const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

/** A PATH holding only `node` and `npm`: no cargo, rustc or rustup can be found. */
function bareBin() {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-bin-'));
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  const npm = fs.existsSync(npmCli) ? npmCli : execFileSync('which', ['npm'], { encoding: 'utf8' }).trim();
  fs.symlinkSync(fs.realpathSync(npm), path.join(bin, 'npm'));
  return bin;
}

/** A new project with `tarballs` installed from the files alone. */
function project(bin, tarballs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-install-'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'install-test', private: true }));
  const env = { ...process.env, PATH: bin };
  for (const tool of ['cargo', 'rustc', 'rustup']) {
    assert.notEqual(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status, 0, `${tool} is not on PATH`);
  }
  const install = spawnSync(
    path.join(bin, 'npm'),
    ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', ...tarballs],
    { cwd: dir, env, encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(install.status, 0, `npm install: ${install.stdout}${install.stderr}`);
  return { dir, env };
}

function run({ dir, env }, file, source) {
  fs.writeFileSync(path.join(dir, file), source);
  return spawnSync(path.join(env.PATH, 'node'), [file], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
}

const usage = (load) => `
${load}
(async () => {
  const executor = new WasmSandboxExecutor();
  const state = { count: 1 };
  const value = await executor.executeHandler('$state.count += $args.by; return $state.count;', {
    state,
    args: { by: 41 },
    capabilities: ['state:read:count', 'state:write:count'],
  });
  await executor.shutdown();
  console.log(JSON.stringify({ value, state, binding }));
})();
`;

test('the packages install offline without Rust and run a handler through require and import', (t) => {
  assert.ok(
    fs.existsSync(mainTarball) && fs.existsSync(platformTarball),
    `no tarballs in ${out}: run scripts/pack-node.sh first (scripts/test.sh does)`,
  );
  const listing = execFileSync('tar', ['-tzf', mainTarball], { encoding: 'utf8' }).split('\n');
  assert.ok(listing.includes('package/index.js') && listing.includes('package/index.d.ts'), listing.join(' '));
  assert.deepEqual(listing.filter((file) => file.endsWith('.node')), [], 'the main package holds no binary');
  const platformListing = execFileSync('tar', ['-tzf', platformTarball], { encoding: 'utf8' });
  assert.match(platformListing, new RegExp(`package/nexus-executor\\.${platform}\\.node`));

  const bin = bareBin();
  t.after(() => fs.rmSync(bin, { recursive: true, force: true }));
  const installed = project(bin, [mainTarball, platformTarball]);
  t.after(() => fs.rmSync(installed.dir, { recursive: true, force: true }));
  const manifest = JSON.parse(
    fs.readFileSync(path.join(installed.dir, 'node_modules', 'nexus-executor', 'package.json'), 'utf8'),
  );
  assert.deepEqual(manifest.optionalDependencies, { [`nexus-executor-${platform}`]: version });
  const platformManifest = JSON.parse(
    fs.readFileSync(path.join(installed.dir, 'node_modules', `nexus-executor-${platform}`, 'package.json'), 'utf8'),
  );
  assert.deepEqual([platformManifest.os, platformManifest.cpu], [[process.platform], [process.arch]]);

  for (const [file, load] of [
    ['cjs.js', "const { WasmSandboxExecutor, binding } = require('nexus-executor');"],
    ['esm.mjs', "import { WasmSandboxExecutor, binding } from 'nexus-executor';"],
  ]) {
    const result = run(installed, file, usage(load));
    assert.equal(result.status, 0, `${file}: ${result.stderr}`);
    const { value, state, binding } = JSON.parse(result.stdout);
    assert.equal(value, 42, file);
    assert.deepEqual(state, { count: 42 }, file);
    // The platform package's binary, a release build.
    assert.equal(
      fs.realpathSync(binding.file),
      fs.realpathSync(path.join(installed.dir, 'node_modules', `nexus-executor-${platform}`, `nexus-executor.${platform}.node`)),
    );
    assert.equal(binding.profile, 'release');
  }
});

test('without the platform package, loading fails with an error naming the platform', (t) => {
  assert.ok(fs.existsSync(mainTarball), `no ${mainTarball}: run scripts/pack-node.sh first (scripts/test.sh does)`);
  const bin = bareBin();
  t.after(() => fs.rmSync(bin, { recursive: true, force: true }));
  const installed = project(bin, [mainTarball]);
  t.after(() => fs.rmSync(installed.dir, { recursive: true, force: true }));
  assert.ok(!fs.existsSync(path.join(installed.dir, 'node_modules', `nexus-executor-${platform}`)));
  const result = run(installed, 'load.js', "require('nexus-executor');");
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, new RegExp(`no native module for this platform, ${platform}`));
  assert.match(result.stderr, new RegExp(`nexus-executor-${platform} is not installed`));
  if (process.platform === 'linux' && process.arch === 'x64') assert.match(result.stderr, /linux-x64-gnu/);
});
