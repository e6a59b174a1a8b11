#!/usr/bin/env bash
# Build the amd64 packages and try them in a Debian 12 chroot, as a box would get them.
#
# The root is made with debootstrap (minbase + the packages' Depends) from the Debian
# mirror this machine uses, once, and cached in $BRANCHD_CACHE/deb-root keyed by the
# Depends; each run works on a throwaway overlay of it. In the chroot:
#   install    an earlier build (the same package re-versioned <ver>~prev): the branchd
#              user and group, /etc/branchd and /var/lib/branchd with their owners and
#              modes, the unit enabled and not started; `branchd --version`;
#              `branchd check-config` of the shipped config; `systemd-analyze verify` of
#              the installed unit; the models package's files where the daemon looks
#   upgrade    to this build, after adding a user (which creates the database) and editing
#              the config: the database is the same file with the same bytes and the user
#              is still there, the edited config is kept
#   remove     keeps the database and the config; purge deletes both (and a TLS key put
#              beside the config); purging the models package leaves no /var/lib/branchd
#   arm64      where the aarch64 cross-build and its sysroot are there (./dev test runs
#              ./dev arm's check first): both arm64 packages built and lintian-clean, their
#              Depends from the linked libraries, the packaged binary's `--version` and
#              `check-config` of the shipped config under qemu-user; skipped otherwise
#
# Usage: scripts/deb/check.sh [--keep]   (--keep: leave the overlay's upper dir for a look)
# Needs root (chroot, mounts), debootstrap, and what scripts/deb/build.sh needs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BRANCHD_CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
export BRANCHD_CACHE
# shellcheck source=scripts/deb/lib.sh
. "$here/lib.sh"

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1
[[ "$(id -u)" == 0 ]] || deb_die "check.sh needs root (debootstrap, chroot, mounts)"

started=$SECONDS
mapfile -t debs < <("$here/build.sh" --arch amd64 --fast --out "$BRANCHD_CACHE/deb-check")
[[ ${#debs[@]} -eq 2 && -f "${debs[0]}" ]] || deb_die "building the packages failed (see above)"
deb="${debs[0]}"
models="${debs[1]}"
built_s=$((SECONDS - started))

depends="$(dpkg-deb -f "$deb" Depends), $(dpkg-deb -f "$models" Depends)"
mapfile -t names < <(deb_depends_names "$depends")
root_started=$SECONDS
root="$(deb_root check "${names[@]}")"
root_s=$((SECONDS - root_started))

work="$(mktemp -d)"
cleanup() {
    if [[ $keep -eq 1 ]]; then
        umount -R "$work/merged" 2>/dev/null || true
        deb_log "kept $work/upper"
    else
        deb_overlay_end "$work"
    fi
}
trap cleanup EXIT
r="$(deb_overlay "$root" "$work")"
mkdir -p "$r/tmp/pkgs"
deb_prev "$deb" "$r/tmp/pkgs/prev.deb"
cp "$deb" "$r/tmp/pkgs/new.deb"
cp "$models" "$r/tmp/pkgs/models.deb"

in_root() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

failures=0
results=()
check() { # name, command...: records ok/FAIL with the command's output on failure
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        results+=("ok    $name")
    else
        results+=("FAIL  $name")
        printf 'FAIL %s\n%s\n' "$name" "$out" | sed 's/^/  /' >&2
        failures=$((failures + 1))
    fi
}

tests_started=$SECONDS
ver="$(dpkg-deb -f "$deb" Version)"

# --- first install (the earlier build) -------------------------------------------------
check "install $ver~prev" in_root dpkg -i /tmp/pkgs/prev.deb
check "the branchd system user, in dialout video lp" \
    bash -c "id=\$(chroot '$r' id -nG branchd) && for g in branchd dialout video lp; do [[ \" \$id \" == *\" \$g \"* ]] || { echo \"groups: \$id\"; exit 1; }; done"
check "/etc/branchd root:branchd 0770, config 0660 (config.update rewrites it)" \
    bash -c "[[ \$(chroot '$r' stat -c '%U:%G %a' /etc/branchd /etc/branchd/branchd.toml | tr '\n' ' ') == 'root:branchd 770 root:branchd 660 ' ]] || { chroot '$r' stat -c '%n %U:%G %a' /etc/branchd /etc/branchd/branchd.toml; exit 1; }"
check "/var/lib/branchd branchd:branchd 0750" \
    bash -c "[[ \$(chroot '$r' stat -c '%U:%G %a' /var/lib/branchd) == 'branchd:branchd 750' ]] || { chroot '$r' stat -c '%U:%G %a' /var/lib/branchd; exit 1; }"
check "unit enabled (multi-user.target.wants)" test -L "$r/etc/systemd/system/multi-user.target.wants/branchd.service"
check "branchd --version" bash -c "out=\$(chroot '$r' branchd --version) && echo \"\$out\" && [[ \"\$out\" == 'branchd '* ]]"
check "check-config of the shipped config" in_root branchd check-config /etc/branchd/branchd.toml
check "the shipped config is the packaged example (start skipped)" \
    in_root cmp /etc/branchd/branchd.toml /usr/share/branchd/branchd.example.toml
check "systemd-analyze verify branchd.service" \
    bash -c "out=\$(chroot '$r' env SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no /usr/lib/systemd/system/branchd.service 2>&1); rc=\$?; echo \"\$out\"; [[ \$rc -eq 0 && -z \"\$out\" ]]"
check "binary stripped" bash -c "f=\$(file -L '$r/usr/bin/branchd'); echo \"\$f\"; [[ \$f == *', stripped'* ]]"
dbgsym="${deb%/*}/branchd-dbgsym_${ver}_amd64.ddeb"
check "debug information kept: branchd-dbgsym has the binary's build id, and names the line of branchd::main" bash -c "
    id=\$(readelf -n '$r/usr/bin/branchd' | sed -n 's/.*Build ID: //p')
    [[ -n \$id ]] || { echo 'the binary has no build id'; exit 1; }
    d=\$(mktemp -d); trap 'rm -rf \$d' EXIT
    dpkg-deb -x '$dbgsym' \$d || exit 1
    f=\$d/usr/lib/debug/.build-id/\${id:0:2}/\${id:2}.debug
    [[ -f \$f ]] || { echo \"no \${id}.debug in \$(basename '$dbgsym')\"; find \$d -type f; exit 1; }
    addr=\$(nm -C \$f | sed -n 's/^\\([0-9a-f]*\\) t branchd::main\$/\\1/p')
    line=\$(addr2line -e \$f 0x\$addr); echo \"branchd::main at \$line\"
    [[ -n \$addr && \$line == *main.rs:* ]]"

# --- models package ---------------------------------------------------------------------
check "install branchd-models" in_root dpkg -i /tmp/pkgs/models.deb
check "model files readable by branchd, sha256 as in the manifest" bash -c "
    dpkg-deb --fsys-tarfile /dev/stdin <'$models' | tar -t | grep -E '\\.(onnx|so[.0-9]*)\$' | sed 's|^\\./||' >'$work/model-files'
    [[ -s '$work/model-files' ]] || exit 1
    while read -r f; do
        chroot '$r' runuser -u branchd -- test -r \"/\$f\" || { echo \"unreadable: /\$f\"; exit 1; }
        name=\${f#var/lib/branchd/models/}
        want=\$(python3 -c 'import sys,tomllib; print(next(e[\"sha256\"] for e in tomllib.load(open(sys.argv[1],\"rb\"))[\"models\"] if e[\"file\"]==sys.argv[2]))' '$here/../../models/manifest.toml' \"\$name\")
        got=\$(sha256sum \"$r/\$f\" | cut -d' ' -f1)
        [[ \"\$want\" == \"\$got\" ]] || { echo \"\$f: \$got, manifest \$want\"; exit 1; }
    done <'$work/model-files'"

# --- upgrade keeps the database and the config --------------------------------------
check "branchd user add (creates the database)" bash -c \
    "printf 'upgrade-test-pw\n' | chroot '$r' runuser -u branchd -- branchd user add amy --role supervisor --password-stdin --config /etc/branchd/branchd.toml"
db_before="$(sha256sum "$r/var/lib/branchd/branchd.db" 2>/dev/null | cut -d' ' -f1 || true)"
inode_before="$(stat -c %i "$r/var/lib/branchd/branchd.db" 2>/dev/null || true)"
echo '# edited on this box' >>"$r/etc/branchd/branchd.toml"
check "upgrade to $ver" in_root dpkg -i /tmp/pkgs/new.deb
check "installed version is $ver" bash -c "v=\$(chroot '$r' dpkg-query -W -f='\${Version}' branchd); echo \"\$v\"; [[ \"\$v\" == '$ver' ]]"
check "database kept (same file, same bytes)" bash -c \
    "[[ -n '$db_before' && \$(sha256sum '$r/var/lib/branchd/branchd.db' | cut -d' ' -f1) == '$db_before' && \$(stat -c %i '$r/var/lib/branchd/branchd.db') == '$inode_before' ]]"
check "the user is still in the database (adding amy again: already exists)" bash -c \
    "out=\$(printf 'another-pw-123\n' | chroot '$r' runuser -u branchd -- branchd user add amy --role supervisor --password-stdin --config /etc/branchd/branchd.toml 2>&1); rc=\$?; echo \"\$out\"; [[ \$rc -ne 0 && \"\$out\" == *'already exists'* ]]"
check "edited config kept" grep -qx '# edited on this box' "$r/etc/branchd/branchd.toml"
check "config still root:branchd 0660" bash -c "[[ \$(chroot '$r' stat -c '%U:%G %a' /etc/branchd/branchd.toml) == 'root:branchd 660' ]]"

# --- remove keeps data, purge removes it ---------------------------------------------
check "remove branchd" in_root dpkg --remove branchd
check "after remove: database and config still there" \
    test -f "$r/var/lib/branchd/branchd.db" -a -f "$r/etc/branchd/branchd.toml"
check "after remove: unit masked (not started by anything)" \
    bash -c "[[ \$(readlink '$r/etc/systemd/system/branchd.service') == /dev/null ]]"
# What an administrator adds beside the config: purge deletes it too.
mkdir -p "$r/etc/branchd/tls" && echo key >"$r/etc/branchd/tls/pad.key"
check "purge branchd" in_root dpkg --purge branchd
check "after purge: no database, no /etc/branchd, no unit links" bash -c \
    "for p in '$r/var/lib/branchd/branchd.db' '$r/etc/branchd' '$r/etc/systemd/system/branchd.service' '$r/etc/systemd/system/multi-user.target.wants/branchd.service'; do if [[ -e \$p || -L \$p ]]; then echo \"still there: \$p\"; exit 1; fi; done"
check "after purge: model files of branchd-models untouched" \
    bash -c "while read -r f; do [[ -f '$r/'\$f ]] || { echo \"gone: \$f\"; exit 1; }; done <'$work/model-files'"
check "purge branchd-models: no /var/lib/branchd left" bash -c \
    "chroot '$r' dpkg --purge branchd-models && [[ ! -e '$r/var/lib/branchd' ]]"
tests_s=$((SECONDS - tests_started))

# --- arm64, where the aarch64 cross-build is there (./dev test runs it first) -----------
arm_bin="$BRANCHD_CACHE/target-aarch64/aarch64-unknown-linux-gnu/release/branchd"
sysroot="${BRANCHD_SYSROOT:-$BRANCHD_CACHE/sysroot-aarch64}"
arm_started=$SECONDS
if [[ -x "$arm_bin" && -f "$sysroot/.branchd-sysroot-stamp" ]] && command -v qemu-aarch64-static >/dev/null; then
    arm_out="$BRANCHD_CACHE/deb-check/arm64"
    if mapfile -t arm_debs < <("$here/build.sh" --arch arm64 --fast --out "$arm_out") \
        && [[ ${#arm_debs[@]} -eq 2 ]]; then
        results+=("ok    arm64: both packages built, lintian clean")
        mkdir -p "$work/arm64"
        dpkg-deb -x "${arm_debs[0]}" "$work/arm64"
        arm_run() { qemu-aarch64-static -L "$sysroot" "$work/arm64/usr/bin/branchd" "$@"; }
        check "arm64: Depends from the linked libraries" bash -c \
            "d=\$(dpkg-deb -f '${arm_debs[0]}' Depends); echo \"\$d\"; [[ \$d == *libc6* && \$d == *libopencv-core406* ]]"
        check "arm64: packaged binary (qemu-user) --version" arm_run --version
        check "arm64: packaged binary, check-config of the shipped config" \
            arm_run check-config "$work/arm64/etc/branchd/branchd.toml"
    else
        results+=("FAIL  arm64: building the packages")
        failures=$((failures + 1))
    fi
else
    results+=("skip  arm64: no aarch64 cross-build or sysroot yet (./dev arm)")
fi
arm_s=$((SECONDS - arm_started))

printf '\nDebian packages in a Debian 12 chroot (%s)\n' "$(basename "$root")"
printf '  %s\n' "$(basename "$deb")" "$(basename "$models")"
printf '%s\n' "${results[@]}"
printf 'time: build %d s, root %d s, chroot checks %d s, arm64 %d s, total %d s\n' \
    "$built_s" "$root_s" "$tests_s" "$arm_s" $((SECONDS - started))
if [[ $failures -gt 0 ]]; then
    echo "deb check: $failures failed"
    exit 1
fi
passed="$(printf '%s\n' "${results[@]}" | grep -c '^ok')"
echo "deb check: $passed passed, 0 failed"
