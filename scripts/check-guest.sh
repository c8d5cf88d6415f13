#!/usr/bin/env bash
# Freshness check: rebuilds the guest from crates/guest with the project's own script and
# compares it with the committed guest/nexus_guest.wasm. Exit 1 if they differ.
# If the guest toolchain cannot be installed here, says so loudly and exits 0: the host
# build and tests do not need it.
set -uo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)/nexus_guest.wasm
bash scripts/build-guest.sh "$fresh" >"$fresh.log" 2>&1
status=$?
if [ "$status" -eq 3 ]; then
  echo "######################################################################" >&2
  echo "## GUEST FRESHNESS NOT CHECKED: the guest toolchain could not be set up" >&2
  echo "######################################################################" >&2
  cat "$fresh.log" >&2
  exit 0
elif [ "$status" -ne 0 ]; then
  echo "check-guest: rebuilding the guest failed:" >&2
  cat "$fresh.log" >&2
  exit 1
fi
if cmp -s "$fresh" guest/nexus_guest.wasm; then
  echo "check-guest: guest/nexus_guest.wasm is what crates/guest builds ($(sha256sum "$fresh" | cut -c1-16))"
else
  echo "check-guest: guest/nexus_guest.wasm is STALE: crates/guest builds something else." >&2
  echo "  committed: $(sha256sum guest/nexus_guest.wasm | cut -c1-64)" >&2
  echo "  rebuilt:   $(sha256sum "$fresh" | cut -c1-64)" >&2
  echo "  run scripts/build-guest.sh and commit guest/nexus_guest.wasm" >&2
  exit 1
fi
