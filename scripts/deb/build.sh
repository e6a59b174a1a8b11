#!/usr/bin/env bash
# Build the Debian packages of branchd and check them with lintian.
#
#   branchd_<ver>_<arch>.deb         the daemon (cargo-deb, metadata in agent/Cargo.toml):
#                                    stripped binary, unit, sysusers, tmpfiles, udev rules,
#                                    modules-load list, the example config as the conffile
#                                    /etc/branchd/branchd.toml, maintainer scripts in
#                                    scripts/deb/maintainer-scripts; Depends from the
#                                    shared libraries the binary links (dpkg-shlibdeps)
#   branchd-models_<ver>_<arch>.deb  the model files and the ONNX Runtime library of
#                                    models/manifest.toml for that arch, checked against
#                                    their sha256, in /var/lib/branchd/models (the default
#                                    [models] dir); Depends from what the library links
#
#   branchd-dbgsym_<ver>_<arch>.ddeb the binary's debug information (line tables, for
#                                    symbolising a crash's backtrace or core dump), at
#                                    /usr/lib/debug/.build-id/<xx>/<rest>.debug, beside the
#                                    .deb (not printed: the two .deb files are; not
#                                    given to lintian: a debug package has no changelog or
#                                    copyright of its own, as Debian's automatic ones)
#
# <ver> is the workspace version plus "+git<commits on HEAD>.g<short commit>" (and
# ".dirty" with uncommitted changes) and the Debian revision "-1", so each commit's
# packages upgrade the previous ones. Packages land in $BRANCHD_CACHE/deb; the paths built are printed on stdout, one
# per line.
#
# Usage: scripts/deb/build.sh [--arch amd64|arm64|all] [--out DIR] [--no-lintian] [--fast]
#   --fast  quicker compression (larger files, the same contents) and only this version's
#           packages kept in the output directory: for the checks
#   amd64  builds the release binary with cargo (CARGO_TARGET_DIR as set)
#   arm64  packages the binary of the aarch64 cross-build (scripts/arm/check.sh, in
#          $BRANCHD_CACHE/target-aarch64) and the aarch64 ONNX Runtime. Depends come from
#          the sysroot's arm64 packages: their shlibs/symbols files and file lists make a
#          dpkg database of its own (cached in $BRANCHD_CACHE/deb-arm64-admin), which
#          dpkg-shlibdeps reads instead of this machine's
#
# Needs: cargo-deb (./dev installs it), dpkg-dev, lintian, python3; the model files from
# models/fetch.py in $BRANCHD_MODELS (./dev fetches them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BRANCHD_CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
BRANCHD_MODELS="${BRANCHD_MODELS:-$BRANCHD_CACHE/models}"
out="$BRANCHD_CACHE/deb"
arches=(amd64)
lintian=1
fast=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch)
            case "${2:-}" in
                amd64|arm64) arches=("$2") ;;
                all) arches=(amd64 arm64) ;;
                *) echo "build.sh: --arch amd64|arm64|all" >&2; exit 64 ;;
            esac
            shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --no-lintian) lintian=0; shift ;;
        --fast) fast=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; exit 64 ;;
    esac
done

log() { printf 'deb: %s\n' "$*" >&2; }
die() { printf 'deb: error: %s\n' "$*" >&2; exit 1; }

for tool in cargo-deb dpkg-deb dpkg-shlibdeps python3; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ $lintian -eq 0 ]] || command -v lintian >/dev/null || die "missing tool: lintian"

version() {
    local base count sha dirty=""
    base="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' "$repo/Cargo.toml")"
    if count="$(git -C "$repo" rev-list --count HEAD 2>/dev/null)"; then
        sha="$(git -C "$repo" rev-parse --short=10 HEAD)"
        git -C "$repo" diff --quiet HEAD -- 2>/dev/null || dirty=".dirty"
        echo "$base+git$count.g$sha$dirty-1"
    else
        echo "$base-1"
    fi
}

ver="$(version)"
# File dates in the models package: the commit's, so a rebuild of a commit gives the
# same files. (Only for dpkg-deb: in cargo's environment it would rebuild the C code of
# several crates at every commit.)
epoch="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)"
mkdir -p "$out"
log "version $ver"

# --- arm64 Depends -------------------------------------------------------------------
# The aarch64 sysroot (scripts/arm/sysroot.sh) holds the arm64 packages' files, unpacked,
# not installed, so this machine's dpkg knows nothing of them. A dpkg database of their
# own (status, file lists under the sysroot's path, shlibs and symbols files) lets
# dpkg-shlibdeps find each library's package and minimal version. Prints the directory
# of a dpkg-shlibdeps wrapper that uses it (cargo-deb runs dpkg-shlibdeps from PATH).
shlibdeps_for_arm64() {
    local sysroot="${BRANCHD_SYSROOT:-$BRANCHD_CACHE/sysroot-aarch64}" debs="$BRANCHD_CACHE/debs-arm64"
    local adm="$BRANCHD_CACHE/deb-arm64-admin" stamp
    [[ -f "$sysroot/.branchd-sysroot-stamp" && -f "$sysroot/.branchd-packages" ]] \
        || die "no aarch64 sysroot at $sysroot: run ./dev arm first"
    stamp="$(cat "$sysroot/.branchd-sysroot-stamp")"
    if [[ "$(cat "$adm/.stamp" 2>/dev/null)" != "$stamp" ]]; then
        log "a dpkg database of the arm64 sysroot's packages (once per sysroot)"
        rm -rf "$adm"
        mkdir -p "$adm/db/info" "$adm/db/updates" "$adm/bin"
        : >"$adm/db/status"
        # The multiarch layout: "pkg:arm64.list" for Multi-Arch: same packages.
        echo 1 >"$adm/db/info/format"
        local name version deb ctl pkgfile a f
        ctl="$(mktemp -d)"
        while read -r name version; do
            deb=""
            for a in arm64 all; do
                if [[ -f "$debs/${name}_${version//:/%3a}_$a.deb" ]]; then
                    deb="$debs/${name}_${version//:/%3a}_$a.deb"
                    break
                fi
            done
            [[ -n "$deb" ]] || die "arm64 package not in $debs: $name $version"
            pkgfile="$name"
            [[ "$(dpkg-deb -f "$deb" Multi-Arch)" == same ]] && pkgfile="$name:arm64"
            { dpkg-deb -f "$deb"; echo "Status: install ok installed"; echo; } >>"$adm/db/status"
            # Files as they lie in the sysroot, which is merged-/usr like the box.
            dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$' \
                | sed -E "s#^/(lib|bin|sbin)/#/usr/\1/#; s#^#$sysroot#" >"$adm/db/info/$pkgfile.list"
            rm -rf "${ctl:?}"/*
            dpkg-deb -e "$deb" "$ctl"
            for f in shlibs symbols; do
                if [[ -f "$ctl/$f" ]]; then cp "$ctl/$f" "$adm/db/info/$pkgfile.$f"; fi
            done
        done <"$sysroot/.branchd-packages"
        rm -rf "$ctl"
        printf '#!/bin/sh\nexec /usr/bin/dpkg-shlibdeps --admindir="%s" -l"%s" "$@"\n' \
            "$adm/db" "$sysroot/usr/lib/aarch64-linux-gnu" >"$adm/bin/dpkg-shlibdeps"
        chmod 755 "$adm/bin/dpkg-shlibdeps"
        echo "$stamp" >"$adm/.stamp"
    fi
    echo "$adm/bin"
}

# --- branchd ------------------------------------------------------------------------
# The changelog cargo-deb puts in /usr/share/doc/branchd, for this version.
changelog_for() { # package, distribution file
    local date
    date="$(git -C "$repo" log -1 --format=%aD 2>/dev/null || date -R)"
    cat >"$2" <<EOF
$1 ($ver) stable; urgency=medium

  * Built from commit $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown).

 -- branchd maintainers <branchd@example.invalid>  $date
EOF
}

build_branchd() { # debian arch
    local arch="$1" deb="$out/branchd_${ver}_$1.deb" args=()
    case "$arch" in
        amd64) ;;
        arm64)
            local bin="$BRANCHD_CACHE/target-aarch64/aarch64-unknown-linux-gnu/release/branchd"
            [[ -x "$bin" ]] || die "no aarch64 binary at $bin: run ./dev arm (the cross-build) first"
            shlibdeps_for_arm64 >/dev/null
            args+=(--target aarch64-unknown-linux-gnu --no-build)
            ;;
    esac
    changelog_for branchd "$repo/target-deb-changelog"
    trap 'rm -f "$repo/target-deb-changelog"' RETURN
    log "cargo deb ($arch)"
    # The release profile keeps line tables for backtraces; the package ships a stripped
    # binary, and the debug information goes to the -dbgsym package, found by build id.
    [[ $fast -eq 0 ]] || args+=(--fast)
    local env=()
    if [[ "$arch" == arm64 ]]; then
        env=(PATH="$(shlibdeps_for_arm64):$PATH" CARGO_TARGET_DIR="$BRANCHD_CACHE/target-aarch64")
    fi
    (cd "$repo" && env "${env[@]}" cargo deb -p branchd --dbgsym --compress-debug-symbols=zlib --deb-version "$ver" --output "$deb" "${args[@]}" >&2) \
        || die "cargo deb failed"
    # cargo-deb names the debug package after --output; Debian names it <package>-dbgsym.
    [[ -f "${deb%.deb}.ddeb" ]] || die "cargo deb made no debug symbols package"
    mv "${deb%.deb}.ddeb" "$out/branchd-dbgsym_${ver}_$arch.ddeb"
    # cargo-deb only warns when dpkg-shlibdeps fails; a package without them is no good.
    dpkg-deb -f "$deb" Depends | grep -q 'libc6' \
        || die "no library Depends in $(basename "$deb"): dpkg-shlibdeps failed (see above)"
    echo "$deb"
}

# --- branchd-models -----------------------------------------------------------------
build_models() { # debian arch
    local arch="$1" march stage deb="$out/branchd-models_${ver}_$1.deb"
    case "$arch" in amd64) march=x86_64 ;; arm64) march=aarch64 ;; esac
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' RETURN
    local dir="$stage/root/var/lib/branchd/models"
    mkdir -p "$dir" "$stage/root/DEBIAN" "$stage/root/usr/share/doc/branchd-models" \
        "$stage/root/usr/share/lintian/overrides"
    # Copy each file the manifest lists for this arch, checking size and sha256 again.
    python3 - "$repo/models/manifest.toml" "$BRANCHD_MODELS" "$dir" "$march" \
        "$stage/root/usr/share/doc/branchd-models/copyright" <<'PY' || die "model files for $arch"
import hashlib, shutil, sys, tomllib
from pathlib import Path
manifest, src, dest, arch, copyright = sys.argv[1:]
entries = tomllib.load(open(manifest, "rb"))["models"]
lines = ["Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
         "Upstream-Name: branchd-models", "Comment: the files of models/manifest.toml, each",
         " checked against its sha256 there.", ""]
for e in entries:
    if e.get("arch", arch) != arch:
        continue
    f = Path(src) / e["file"]
    if not f.is_file():
        sys.exit(f"missing {f}: run models/fetch.py --arch all")
    h = hashlib.sha256(f.read_bytes()).hexdigest()
    if h != e["sha256"] or f.stat().st_size != e["bytes"]:
        sys.exit(f"{f}: sha256 {h}, the manifest says {e['sha256']}")
    t = Path(dest) / e["file"]
    t.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, t)
    t.chmod(0o644)
    lines += [f"Files: var/lib/branchd/models/{e['file']}",
              f"Copyright: the authors of {e['name']} ({e['version']})",
              f"License: {e['licence']}", ""]
lines += ["Files: *", "Copyright: branchd maintainers", "License: Apache-2.0", ""]
open(copyright, "w").write("\n".join(lines))
PY
    changelog_for branchd-models "$stage/changelog"
    gzip -9n <"$stage/changelog" >"$stage/root/usr/share/doc/branchd-models/changelog.Debian.gz"
    install -m 0644 "$here/lintian-overrides/branchd-models" "$stage/root/usr/share/lintian/overrides/branchd-models"

    # Depends of the ONNX Runtime library: dpkg-shlibdeps needs a debian/control to run.
    local lib depends
    lib="$(find "$dir" -name 'libonnxruntime.so*' | head -n1)"
    [[ -n "$lib" ]] || die "no ONNX Runtime library for $march in the manifest"
    mkdir -p "$stage/debian"
    : >"$stage/debian/control"
    local shlibdeps=dpkg-shlibdeps
    [[ "$arch" == amd64 ]] || shlibdeps="$(shlibdeps_for_arm64)/dpkg-shlibdeps"
    depends="$(cd "$stage" && DEB_HOST_ARCH="$arch" "$shlibdeps" -O "$lib" 2>/dev/null \
        | sed -n 's/^shlibs:Depends=//p')" || true
    [[ -n "$depends" ]] || die "dpkg-shlibdeps found no Depends for $lib ($arch)"

    local size
    size="$(du -sk --apparent-size "$stage/root" | cut -f1)"
    cat >"$stage/root/DEBIAN/control" <<EOF
Package: branchd-models
Version: $ver
Architecture: $arch
Maintainer: branchd maintainers <branchd@example.invalid>
Installed-Size: $size
Depends: $depends
Enhances: branchd
Section: misc
Priority: optional
Homepage: https://example.invalid/branchd
Description: models and ONNX Runtime for branchd
 The OCR models (PP-OCRv4 detection and recognition, direction classifier),
 the face detector and embedder, and the ONNX Runtime library that the branchd
 daemon loads: exactly the files of its model manifest, each checked against
 its sha256, in /var/lib/branchd/models, where the daemon looks by default.
 For boxes that get their software only from the bank's package mirror.
EOF
    (cd "$stage/root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z \
        | xargs -0 md5sum >DEBIAN/md5sums)
    local compress=(-Zxz)
    [[ $fast -eq 0 ]] || compress=(-Zgzip -z1)
    SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group "${compress[@]}" --build "$stage/root" "$deb" >/dev/null \
        || die "dpkg-deb failed for branchd-models"
    echo "$deb"
}

if [[ $fast -eq 1 ]]; then
    find "$out" -maxdepth 1 \( -name 'branchd*.deb' -o -name 'branchd*.ddeb' \) ! -name "*_${ver}_*" -delete
fi
built=()
for arch in "${arches[@]}"; do
    built+=("$(build_branchd "$arch")")
    built+=("$(build_models "$arch")")
done

if [[ $lintian -eq 1 ]]; then
    for deb in "${built[@]}"; do
        log "lintian $(basename "$deb")"
        # Errors and warnings fail the build; each override in scripts/deb/lintian-overrides
        # says why it is there.
        lintian --fail-on error,warning --tag-display-limit 0 "$deb" >&2 \
            || die "lintian found problems in $(basename "$deb")"
    done
fi
printf '%s\n' "${built[@]}"
