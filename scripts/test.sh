#!/usr/bin/env bash
# The whole test suite: what the README tells users to run, and what CI runs.
# Needs nothing but Rust: the guest is the committed artifact guest/nexus_guest.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
