#!/usr/bin/env bash
# clang for build scripts that ask a clang binary for its include paths
# (clang-sys, used by the opencv crate's binding generator and by bindgen).
# env.sh points CLANG_PATH here. When cargo runs a build script for
# aarch64-unknown-linux-gnu (TARGET is set by cargo), clang is asked as an
# aarch64 compiler on the sysroot, so it reports the sysroot's headers instead
# of the host's x86-64 ones. For any other target it is plain clang.
set -euo pipefail

clang_bin="${BRANCHD_HOST_CLANG:-clang}"
if [[ "${TARGET:-}" == aarch64-unknown-linux-gnu && -n "${BRANCHD_SYSROOT:-}" ]]; then
    exec "$clang_bin" --target=aarch64-linux-gnu "--sysroot=$BRANCHD_SYSROOT" "$@"
fi
exec "$clang_bin" "$@"
