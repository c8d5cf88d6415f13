#!/usr/bin/env bash
# The whole test suite: what the README tells users to run, and what CI runs.
# Needs Rust, Node.js 20+ and the npm registry (the binding's dev dependencies: typescript and
# @types/node). The guest is the committed artifact guest/nexus_guest.wasm; the Node binding is
# built from source here, in the release profile, and packed as npm packages into target/npm
# (scripts/pack-node.sh), which its install test installs into a new project.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
bash scripts/pack-node.sh >/dev/null
(cd crates/bindings && npm ci --no-audit --no-fund && npm test)
