#!/usr/bin/env bash
# Build a Debian 12 (bookworm) arm64 sysroot for cross-compiling branchd.
#
# The sysroot lives outside the repository, by default in
#   ${BRANCHD_CACHE:-$HOME/.cache/branchd}/sysroot-aarch64
# (override with BRANCHD_SYSROOT). It is made from real arm64 .deb files:
# a throwaway apt root (its own sources, lists, status file and archive dir,
# with APT::Architecture=arm64) resolves the dependency closure and downloads
# it; each package is then unpacked with dpkg-deb. The host's dpkg database,
# architectures and packages are never touched.
#
# Re-running is cheap: a stamp file keyed by the package list, the Debian
# suites and this script's layout version skips all work when nothing changed.
#
# It also builds $BRANCHD_CACHE/qemu-aarch64/libtermios2-shim.so from
# termios2-shim.c, preloaded by env.sh's qemu runner (see that file for why).
#
# Usage: scripts/arm/sysroot.sh [--force] [--print]
#   --force   rebuild even if the stamp matches
#   --print   print the sysroot path and exit (no build)
#
# Environment:
#   BRANCHD_CACHE          cache root (default $HOME/.cache/branchd)
#   BRANCHD_SYSROOT        sysroot dir (default $BRANCHD_CACHE/sysroot-aarch64)
#   BRANCHD_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   BRANCHD_DEBIAN_SECURITY security mirror (default http://deb.debian.org/debian-security)
#   BRANCHD_SYSROOT_EXTRA  extra arm64 packages, space separated
set -euo pipefail

# Bump when the way the sysroot is laid out changes, to force a rebuild.
LAYOUT_VERSION=4

CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
SYSROOT="${BRANCHD_SYSROOT:-$CACHE/sysroot-aarch64}"
APTROOT="$CACHE/apt-arm64"
DEBS="$CACHE/debs-arm64"
MIRROR="${BRANCHD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${BRANCHD_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
TRIPLET=aarch64-linux-gnu

# What the daemon links against: the C and C++ runtimes, and OpenCV with its
# whole dependency closure (BLAS/LAPACK, codecs, ...). Dependencies are
# resolved by apt, so only the roots are listed here.
PACKAGES=(
    libc6-dev
    libgcc-12-dev
    libstdc++-12-dev
    libopencv-dev
)
if [[ -n "${BRANCHD_SYSROOT_EXTRA:-}" ]]; then
    read -r -a extra <<<"$BRANCHD_SYSROOT_EXTRA"
    PACKAGES+=("${extra[@]}")
fi

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --print) echo "$SYSROOT"; exit 0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "sysroot.sh: unknown argument: $arg" >&2; exit 64 ;;
    esac
done

log() { printf 'sysroot: %s\n' "$*" >&2; }
die() { printf 'sysroot: error: %s\n' "$*" >&2; exit 1; }

for tool in apt-get dpkg-deb tar sha256sum; do
    command -v "$tool" >/dev/null || die "missing host tool: $tool"
done
[[ -r "$KEYRING" ]] || die "missing $KEYRING (install debian-archive-keyring)"

stamp_key="$(printf '%s\n' "layout=$LAYOUT_VERSION" "mirror=$MIRROR" "security=$SECURITY" \
    "suite=bookworm" "${PACKAGES[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$SYSROOT/.branchd-sysroot-stamp"

# qemu-user lacks the termios2 ioctls; the shim fills the gap for tests.
build_shim() {
    local src out key
    src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/termios2-shim.c"
    out="$CACHE/qemu-aarch64/libtermios2-shim.so"
    key="$(sha256sum "$src" | cut -d' ' -f1)"
    if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$key" ]]; then
        return 0
    fi
    command -v aarch64-linux-gnu-gcc >/dev/null || die "missing host tool: aarch64-linux-gnu-gcc"
    mkdir -p "$(dirname "$out")"
    aarch64-linux-gnu-gcc --sysroot="$SYSROOT" -shared -fPIC -O2 -Wall -Wextra -Werror \
        -o "$out.tmp" "$src" || die "cannot build $out"
    mv "$out.tmp" "$out"
    echo "$key" >"$out.stamp"
    log "built $out"
}

if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$stamp_key" ]]; then
    build_shim
    log "up to date: $SYSROOT"
    exit 0
fi

# --- a throwaway apt root for arm64 -----------------------------------------
mkdir -p "$APTROOT"/{etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,state/lists/partial,cache} \
    "$DEBS/partial"
: >"$APTROOT/state/status"
cat >"$APTROOT/etc/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$KEYRING] $SECURITY bookworm-security main
EOF
cat >"$APTROOT/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Get::Assume-Yes "true";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "3";
Dir::Etc "$APTROOT/etc";
Dir::Etc::main "$APTROOT/etc/apt.conf";
Dir::Etc::parts "$APTROOT/etc/apt.conf.d";
Dir::Etc::sourcelist "$APTROOT/etc/sources.list";
Dir::Etc::sourceparts "$APTROOT/etc/sources.list.d";
Dir::Etc::preferences "$APTROOT/etc/preferences";
Dir::Etc::preferencesparts "$APTROOT/etc/preferences.d";
Dir::State "$APTROOT/state";
Dir::State::lists "$APTROOT/state/lists";
Dir::State::status "$APTROOT/state/status";
Dir::Cache "$APTROOT/cache";
Dir::Cache::archives "$DEBS";
Dir::Log "$APTROOT";
DPkg::Options { "--admindir=$APTROOT/state"; };
EOF
# The host's apt.conf.d is not read; keep its proxy settings, if any.
apt-config dump 2>/dev/null | grep -E '^Acquire::(http|https)::Proxy' >>"$APTROOT/apt.conf" || true
export APT_CONFIG="$APTROOT/apt.conf"

log "updating arm64 package lists (bookworm)"
apt-get -qq update || die "apt-get update failed for the arm64 apt root"

# --- dependency closure ------------------------------------------------------
# With an empty status file apt treats nothing as installed, so a simulated
# install lists the complete closure, one "Inst name (version ...)" per package.
log "resolving the dependency closure of: ${PACKAGES[*]}"
closure="$APTROOT/closure.txt"
apt-get -s install "${PACKAGES[@]}" >"$APTROOT/simulate.log" 2>&1 \
    || { cat "$APTROOT/simulate.log" >&2; die "cannot resolve arm64 dependencies"; }
awk '$1 == "Inst" { v = $3; gsub(/^\(/, "", v); print $2, v }' "$APTROOT/simulate.log" \
    | sed 's/:arm64 / /' | sort -u >"$closure"
count="$(wc -l <"$closure")"
[[ $count -gt 0 ]] || die "empty dependency closure (see $APTROOT/simulate.log)"
log "$count packages in the closure; downloading what is not cached"

apt-get -qq install --download-only "${PACKAGES[@]}" >/dev/null \
    || die "downloading arm64 packages failed"
# Drop cached .debs that the archive no longer offers (superseded versions).
apt-get -qq autoclean >/dev/null || true

# --- unpack ------------------------------------------------------------------
tmp_root="$SYSROOT.tmp"
rm -rf "$tmp_root"
mkdir -p "$tmp_root/usr/lib" "$tmp_root/usr/bin" "$tmp_root/usr/sbin"
# Debian 12 is merged-/usr: make /lib, /bin, /sbin links into /usr before
# unpacking, so files shipped under /lib land in /usr/lib as on a real box.
ln -s usr/lib "$tmp_root/lib"
ln -s usr/bin "$tmp_root/bin"
ln -s usr/sbin "$tmp_root/sbin"

log "unpacking $count packages into $SYSROOT"
while read -r name version; do
    file_version="${version//:/%3a}"
    deb=""
    for arch in arm64 all; do
        if [[ -f "$DEBS/${name}_${file_version}_${arch}.deb" ]]; then
            deb="$DEBS/${name}_${file_version}_${arch}.deb"
            break
        fi
    done
    [[ -n "$deb" ]] || die "downloaded package not found: $name $version"
    # dpkg -x would replace the merged-/usr directory links; tar can keep them.
    # Documentation, manuals and translations are of no use to a linker.
    dpkg-deb --fsys-tarfile "$deb" \
        | tar -x --keep-directory-symlink --no-same-owner -C "$tmp_root" \
            --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
            --exclude=./usr/share/locale --exclude=./usr/share/lintian \
        || die "cannot unpack $deb"
done <"$closure"

libdir="$tmp_root/usr/lib/$TRIPLET"

# dpkg -x does not run maintainer scripts, so update-alternatives never makes
# the BLAS/LAPACK links that libopencv_core needs. Make them by hand.
for lib in blas lapack; do
    for so in "lib$lib.so.3" "lib$lib.so"; do
        if [[ ! -e "$libdir/$so" && -e "$libdir/$lib/$so" ]]; then
            ln -sf "$lib/$so" "$libdir/$so"
        fi
    done
done

# Absolute symlinks (e.g. /usr/lib/.../libfoo.so -> /lib/.../libfoo.so.1)
# would point into the host. Rewrite every one relative to its own directory.
while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    [[ "$target" == /* ]] || continue
    dir="$(dirname "$link")"
    rel="$(realpath -m -s --relative-to="$dir" "$tmp_root$target")"
    ln -sfn "$rel" "$link"
done < <(find "$tmp_root" -type l -print0)

# Sanity: the files the toolchain needs.
for f in "$libdir/libc.so.6" "$libdir/crt1.o" "$tmp_root/usr/lib/ld-linux-aarch64.so.1" \
    "$libdir/libopencv_core.so" "$libdir/libblas.so.3" "$libdir/liblapack.so.3" \
    "$libdir/pkgconfig/opencv4.pc" "$tmp_root/usr/include/opencv4/opencv2/core.hpp"; do
    [[ -e "$f" ]] || die "sysroot is missing ${f#"$tmp_root"}"
done
dangling="$(find "$libdir" -maxdepth 1 -xtype l -name 'lib*.so*' | wc -l)"
[[ $dangling -eq 0 ]] || log "note: $dangling dangling library links in ${libdir#"$tmp_root"}"

cp "$closure" "$tmp_root/.branchd-packages"
echo "$stamp_key" >"$tmp_root/.branchd-sysroot-stamp"
rm -rf "$SYSROOT"
mv "$tmp_root" "$SYSROOT"
build_shim
log "ready: $SYSROOT ($(du -sh "$SYSROOT" | cut -f1))"
