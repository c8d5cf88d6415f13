#!/usr/bin/env bash
# The whole test suite: what the README tells users to run, and what CI runs.
# Needs Rust, Node.js 20+ and the npm registry (the binding's dev dependencies: typescript and
# @types/node). The guest is the committed artifact guest/nexus_guest.wasm; the Node binding is
# built from source here, in the release profile, and packed as npm packages into target/npm
# (scripts/pack-node.sh), which its install test installs into a new project.
#
# The Redis suspension store's tests (Rust and Node) start their own redis-server on a loopback
# port in a temporary directory, without persistence, and stop it at the end (or use
# NEXUS_TEST_REDIS_URL when it is set); Debian's redis-server is installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NEXUS_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null \
    || { echo "scripts/test.sh: installing redis-server failed: the Redis tests need it" >&2; exit 1; }
fi
cargo test --workspace --locked "$@"
bash scripts/pack-node.sh >/dev/null
(cd crates/bindings && npm ci --no-audit --no-fund && npm test)
