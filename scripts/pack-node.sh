#!/usr/bin/env bash
# Builds the Node binding in the release profile (as crates/bindings/nexus.node, which the
# package in the checkout and the benchmarks load) and packs its npm packages into target/npm/:
# the main package nexus-executor (JavaScript and types, no binary) and this machine's platform
# package, nexus-executor-linux-x64-gnu here (the binary, nexus-executor.linux-x64-gnu.node).
# Needs Rust and Node 20+; prints the two tarballs' paths as JSON on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
node crates/bindings/scripts/build.js --release >&2
node crates/bindings/scripts/pack.js target/npm
