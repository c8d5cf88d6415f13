#!/usr/bin/env bash
# The whole test suite: what the README tells users to run, and what CI runs.
# Needs Rust and Node.js 20+: the guest is the committed artifact guest/nexus_guest.wasm, and
# the Node binding is built from source here (it has no npm dependencies to install).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
(cd crates/bindings && npm run build && npm test)
