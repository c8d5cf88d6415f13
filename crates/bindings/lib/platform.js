'use strict';

// Platform names and package names the napi-rs way: the main package `nexus-executor` holds the
// JavaScript; each platform's binary is in its own package, `nexus-executor-<platform>`, as
// `nexus-executor.<platform>.node`, installed by npm as an optional dependency of the main
// package on the machines its `os`, `cpu` and `libc` fields match.

const fs = require('node:fs');

const PACKAGE = 'nexus-executor';

/** Whether this Linux runs on musl rather than glibc. */
function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    // No ldd script: ask Node which C library it was loaded with.
  }
  const header = process.report?.getReport?.()?.header;
  return header ? !header.glibcVersionRuntime : false;
}

/**
 * The napi-rs name of a platform: `linux-x64-gnu`, `linux-arm64-musl`, `linux-arm-gnueabihf`,
 * `darwin-arm64`, `win32-x64-msvc`, `freebsd-x64`, ...
 */
function platformName(platform = process.platform, arch = process.arch, musl = platform === 'linux' && isMusl()) {
  switch (platform) {
    case 'linux':
      if (arch === 'arm') return `linux-arm-${musl ? 'musleabihf' : 'gnueabihf'}`;
      return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
    case 'win32':
      return `win32-${arch}-msvc`;
    case 'android':
      return arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`;
    default:
      return `${platform}-${arch}`;
  }
}

/** The platform package's name, and the binary file it holds. */
function platformPackage(platform = platformName()) {
  return { name: `${PACKAGE}-${platform}`, binary: `${PACKAGE}.${platform}.node` };
}

/**
 * The npm `os`, `cpu` and (on Linux) `libc` of a platform name, for its package.json: npm
 * installs an optional dependency only where they match.
 */
function npmFilters(platform) {
  const [os, cpu, abi] = platform.split('-');
  const filters = { os: [os], cpu: [cpu] };
  if (os === 'linux') filters.libc = [abi.startsWith('musl') ? 'musl' : 'glibc'];
  return filters;
}

/** The napi-rs platform name of a Rust target triple (the `napi.targets` of package.json). */
function platformOfTriple(triple) {
  const known = {
    'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
    'x86_64-unknown-linux-musl': 'linux-x64-musl',
    'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
    'aarch64-unknown-linux-musl': 'linux-arm64-musl',
    'armv7-unknown-linux-gnueabihf': 'linux-arm-gnueabihf',
    'x86_64-apple-darwin': 'darwin-x64',
    'aarch64-apple-darwin': 'darwin-arm64',
    'x86_64-pc-windows-msvc': 'win32-x64-msvc',
    'aarch64-pc-windows-msvc': 'win32-arm64-msvc',
    'x86_64-unknown-freebsd': 'freebsd-x64',
  };
  const platform = known[triple];
  if (!platform) throw new Error(`no npm platform name known for the Rust target ${triple}`);
  return platform;
}

module.exports = { PACKAGE, isMusl, platformName, platformPackage, npmFilters, platformOfTriple };
