#!/usr/bin/env bash
# Rebuilds the committed guest artifact guest/nexus_guest.wasm from crates/guest:
#   1. installs the toolchain (Debian clang-16 + wasi-libc as a WASI SDK, the wasm32-wasip1 target);
#   2. builds crates/guest for wasm32-wasip1 (QuickJS through rquickjs), reproducibly;
#   3. pre-initializes it with Wizer (tools/wizen) so each execution starts from a ready QuickJS context.
# Usage: scripts/build-guest.sh [OUT]   (default OUT: guest/nexus_guest.wasm)
# Exit status 3: the toolchain could not be installed (scripts/check-guest.sh tells that apart).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/guest/nexus_guest.wasm}
cd "$root"

# --- toolchain -------------------------------------------------------------
build=/tmp/nexus-guest-build
sdk=$build/wasi-sdk
# Every checkout on this machine builds in that one directory: one build at a time, or one
# would compile the sources another copied there.
mkdir -p "$build"
exec 9>"$build.lock"
flock 9
need_apt=()
for bin in clang-16 llvm-ar-16 wasm-ld-16; do command -v "$bin" >/dev/null || need_apt=(1); done
[ -d /usr/include/wasm32-wasi ] || need_apt=(1)
ls /usr/lib/llvm-16/lib/clang/16/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need_apt=(1)
toolchain_failed() {
  echo "build-guest: cannot install the guest toolchain: $1" >&2
  exit 3
}
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "build-guest: installing clang-16, lld-16, wasi-libc, libclang-rt-16-dev-wasm32" >&2
  apt-get update -qq || toolchain_failed "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-16 lld-16 llvm-16 wasi-libc libclang-rt-16-dev-wasm32 >/dev/null ||
    toolchain_failed "apt-get install failed"
fi
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1 >&2 ||
  toolchain_failed "rustup target add wasm32-wasip1 failed"

# A WASI SDK layout made of Debian's pieces (rquickjs-sys reads $WASI_SDK).
mkdir -p "$sdk/bin" "$sdk/share/wasi-sysroot/include" "$sdk/share/wasi-sysroot/lib"
ln -sfn /usr/bin/clang-16 "$sdk/bin/clang"
ln -sfn /usr/bin/llvm-ar-16 "$sdk/bin/ar"
for t in wasm32-wasi wasm32-wasip1; do
  ln -sfn /usr/include/wasm32-wasi "$sdk/share/wasi-sysroot/include/$t"
  ln -sfn /usr/lib/wasm32-wasi "$sdk/share/wasi-sysroot/lib/$t"
done
export WASI_SDK=$sdk

# --- reproducible guest build ------------------------------------------------
# Cargo derives symbol hashes and type ids from the absolute path of path dependencies, so
# the guest is built from a fixed location: its sources (crates/abi, crates/guest and the
# toolchain pin) are copied there. Remaining paths that end up in the binary (panic
# locations, C __FILE__) are remapped so the artifact depends on neither that location nor
# where the cargo registry lives.
mkdir -p "$build/crates"
for crate in abi guest; do
  rm -rf "${build:?}/crates/$crate"
  mkdir -p "$build/crates/$crate"
  cp -r "crates/$crate/Cargo.toml" "crates/$crate/src" "$build/crates/$crate/"
done
cp crates/guest/Cargo.lock "$build/crates/guest/"
cp rust-toolchain.toml "$build/"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$build=/nexus --remap-path-prefix=$cargo_home=/cargo -C link-arg=-zstack-size=1048576"
export CFLAGS_wasm32_wasip1="-ffile-prefix-map=$build=/nexus -ffile-prefix-map=$cargo_home=/cargo"
export SOURCE_DATE_EPOCH=0
# The shadow stack (1 MiB) sits first in memory; the guest alone also exports its pointer, so the
# host can tell a handler that exhausted it (STACK_OVERFLOW) from a sandbox failure.
(cd "$build/crates/guest" &&
  RUSTFLAGS="$RUSTFLAGS -C link-arg=--export=__stack_pointer" cargo build --locked --release --target wasm32-wasip1 -q)
raw=$build/crates/guest/target/wasm32-wasip1/release/nexus_guest.wasm

# --- pre-initialize (Wizer snapshot) -----------------------------------------
mkdir -p "$(dirname "$out")"
cargo run --locked -q -p nexus-wizen -- "$raw" "$out"
echo "build-guest: wrote $out ($(stat -c %s "$out") bytes)" >&2
