# shellcheck shell=bash
# Environment for cross-compiling branchd to aarch64-unknown-linux-gnu
# without Docker. Source it, do not run it:
#
#   scripts/arm/sysroot.sh            # once; fast when already built
#   . scripts/arm/env.sh
#   cargo build --release --target aarch64-unknown-linux-gnu -p branchd
#   cargo test --target aarch64-unknown-linux-gnu -p branchd-drivers   # runs under qemu
#
# Needs on the host: gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user-static (and clang, libclang-dev for the
# opencv crate's binding generator), plus `rustup target add
# aarch64-unknown-linux-gnu`. scripts/arm/check.sh installs all of them.
#
# Only target-specific variables are set (the `_aarch64_unknown_linux_gnu`
# and `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_` forms), so host builds and
# build scripts in the same shell keep using the host toolchain and libraries.
# Paths must not contain spaces: cargo splits *_RUSTFLAGS on whitespace.

BRANCHD_CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
BRANCHD_SYSROOT="${BRANCHD_SYSROOT:-$BRANCHD_CACHE/sysroot-aarch64}"
export BRANCHD_CACHE BRANCHD_SYSROOT

if [[ ! -f "$BRANCHD_SYSROOT/.branchd-sysroot-stamp" ]]; then
    echo "env.sh: no sysroot at $BRANCHD_SYSROOT; run scripts/arm/sysroot.sh first" >&2
fi

_branchd_libdir="$BRANCHD_SYSROOT/usr/lib/aarch64-linux-gnu"

# --- C / C++ (cc crate: rusqlite's bundled SQLite, ring, OpenCV glue) --------
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CFLAGS_aarch64_unknown_linux_gnu="--sysroot=$BRANCHD_SYSROOT"
export CXXFLAGS_aarch64_unknown_linux_gnu="--sysroot=$BRANCHD_SYSROOT"

# --- linking -----------------------------------------------------------------
# The sysroot's libraries (OpenCV and its closure) have DT_NEEDED entries the
# linker must resolve inside the sysroot, hence -rpath-link. The blas/ and
# lapack/ dirs are where Debian's alternatives keep the real libraries.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="\
-C link-arg=--sysroot=$BRANCHD_SYSROOT \
-C link-arg=-Wl,-rpath-link,$_branchd_libdir \
-C link-arg=-Wl,-rpath-link,$_branchd_libdir/blas \
-C link-arg=-Wl,-rpath-link,$_branchd_libdir/lapack \
-L native=$_branchd_libdir"

# --- running: tests and binaries run under qemu user emulation --------------
# qemu-user does not emulate the termios2 ioctls the serialport crate uses to
# set the baud rate (it answers ENOSYS), which would fail every PTY test. The
# runner preloads a small shim (termios2-shim.c, built by sysroot.sh) that
# falls back to the classic termios ioctls in that case only.
export QEMU_LD_PREFIX="$BRANCHD_SYSROOT"
_branchd_shim="$BRANCHD_CACHE/qemu-aarch64/libtermios2-shim.so"
if [[ -f "$_branchd_shim" ]]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $BRANCHD_SYSROOT -E LD_PRELOAD=$_branchd_shim"
else
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $BRANCHD_SYSROOT"
fi

# --- pkg-config (pkg-config crate reads the target-suffixed variables) ------
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu="$BRANCHD_SYSROOT"
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu="$_branchd_libdir/pkgconfig:$BRANCHD_SYSROOT/usr/share/pkgconfig"
export PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=""

# --- opencv crate ------------------------------------------------------------
# Unlike the variables above, OPENCV_* and CLANG_PATH have no per-target form:
# a shell that sourced this file cross-builds; build for the host in another.
# Setting all three OPENCV_* paths skips the crate's pkg-config/cmake probing;
# the library list is the modules branchd uses.
export OPENCV_INCLUDE_PATHS="$BRANCHD_SYSROOT/usr/include/opencv4"
export OPENCV_LINK_PATHS="$_branchd_libdir"
export OPENCV_LINK_LIBS="${OPENCV_LINK_LIBS:-opencv_videoio,opencv_imgcodecs,opencv_imgproc,opencv_core}"
# The binding generator parses the headers with libclang: as aarch64 code, on
# the sysroot. It also adds, first, the include dirs that the clang binary
# reports (clang-sys); the wrapper makes those the sysroot's too, instead of
# the host's x86-64 glibc headers.
export OPENCV_CLANG_ARGS="--target=aarch64-linux-gnu --sysroot=$BRANCHD_SYSROOT"
CLANG_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/clang-wrapper.sh"
export CLANG_PATH
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu --sysroot=$BRANCHD_SYSROOT"

unset _branchd_libdir _branchd_shim
