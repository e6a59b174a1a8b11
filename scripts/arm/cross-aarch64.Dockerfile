# Build image for `cross` (cross-rs) and aarch64-unknown-linux-gnu, used
# through cross.toml. It is Debian 12 like the box, so the binary needs the
# same glibc (2.36) and links the same OpenCV sonames (4.6, libopencv_*.so.406).
# cross's stock images are Ubuntu 16.04/20.04: glibc and OpenCV would differ.
#
# The Rust toolchain is not in the image: cross mounts the host's.
# The arm64 libraries come from the pre-build step in cross.toml.
FROM debian:bookworm-slim

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install --assume-yes --no-install-recommends \
        ca-certificates \
        gcc g++ libc6-dev make \
        gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross \
        qemu-user-static \
    && rm -rf /var/lib/apt/lists/*

# clang-sys (the opencv crate's binding generator) asks this for include
# paths; it answers for aarch64 on the sysroot "/" (see clang-wrapper.sh).
COPY clang-wrapper.sh /usr/local/bin/branchd-clang
# qemu-user lacks the termios2 ioctls used by serialport (see termios2-shim.c).
COPY termios2-shim.c /usr/local/src/termios2-shim.c
RUN chmod 0755 /usr/local/bin/branchd-clang \
    && aarch64-linux-gnu-gcc -shared -fPIC -O2 -Wall -Werror \
        -o /usr/local/lib/aarch64-termios2-shim.so /usr/local/src/termios2-shim.c

# The same variables as scripts/arm/env.sh, with the arm64 packages installed
# multiarch under / instead of in a separate sysroot.
ENV BRANCHD_SYSROOT=/ \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L / -E LD_PRELOAD=/usr/local/lib/aarch64-termios2-shim.so" \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    PKG_CONFIG_ALLOW_CROSS=1 \
    PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
    OPENCV_INCLUDE_PATHS=/usr/include/opencv4 \
    OPENCV_LINK_PATHS=/usr/lib/aarch64-linux-gnu \
    OPENCV_LINK_LIBS=opencv_videoio,opencv_imgcodecs,opencv_imgproc,opencv_core \
    OPENCV_CLANG_ARGS=--target=aarch64-linux-gnu \
    CLANG_PATH=/usr/local/bin/branchd-clang \
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--target=aarch64-linux-gnu
