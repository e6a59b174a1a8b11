#!/usr/bin/env bash
# Check the files in systemd/ with systemd's own tools; exit non-zero on any
# warning or error.
#
# Usage: systemd/verify.sh [BINARY]
#   BINARY  executable put in place of /usr/bin/branchd for the unit check
#           (default /bin/true), since systemd-analyze verify insists that
#           ExecStart= points at an existing executable.
#
# Checks:
#   branchd.service   systemd-analyze verify (on a copy with ExecStart= swapped)
#   branchd-update.*  systemd-analyze verify (the script in place of its installed path)
#   branchd.sysusers  systemd-sysusers into a scratch root
#   branchd.tmpfiles  systemd-tmpfiles --create into the same scratch root
#   99-branchd.rules  udev's rules parser (udevadm test), only when run as root
#                     with mount namespaces available; skipped otherwise
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:-/bin/true}"
[[ -x "$binary" ]] || { echo "verify: $binary is not an executable" >&2; exit 64; }
binary="$(realpath "$binary")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

report() { # name, output file
    if [[ -s "$2" ]]; then
        echo "FAIL  $1"
        sed 's/^/      /' "$2"
        failures=$((failures + 1))
    else
        echo "ok    $1"
    fi
}

# --- the service unit ---------------------------------------------------------
unit="$tmp/unit/branchd.service"
mkdir -p "$tmp/unit"
sed "s|^ExecStart=/usr/bin/branchd |ExecStart=$binary |" "$here/branchd.service" >"$unit"
if ! grep -q "^ExecStart=$binary " "$unit"; then
    echo "verify: ExecStart=/usr/bin/branchd ... not found in branchd.service" >&2
    exit 1
fi
# Any output at all (warnings included) is a failure.
SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$unit" >"$tmp/unit.out" 2>&1 \
    || echo "systemd-analyze verify exited with $?" >>"$tmp/unit.out"
report "branchd.service (systemd-analyze verify)" "$tmp/unit.out"

# --- the software-update units (the script in place of its installed path) -----
script="$(realpath "$here/../scripts/branchd-update")"
sed "s|^ExecStart=/usr/lib/branchd/branchd-update$|ExecStart=$script|" \
    "$here/branchd-update.service" >"$tmp/unit/branchd-update.service"
cp "$here/branchd-update.path" "$tmp/unit/"
SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$tmp/unit/branchd-update.service" \
    "$tmp/unit/branchd-update.path" >"$tmp/update.out" 2>&1 \
    || echo "systemd-analyze verify exited with $?" >>"$tmp/update.out"
report "branchd-update.service, .path (systemd-analyze verify)" "$tmp/update.out"

# --- sysusers and tmpfiles, applied to a scratch root ------------------------
root="$tmp/root"
mkdir -p "$root/etc"
# The groups the sysusers file adds branchd to exist on any Debian system.
printf '%s\n' 'root:x:0:' 'lp:x:7:' 'dialout:x:20:' 'video:x:44:' >"$root/etc/group"
printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' >"$root/etc/passwd"
{
    # It reports what it creates on stderr; anything else is a problem.
    rc=0
    systemd-sysusers --root="$root" "$here/branchd.sysusers" >"$tmp/sysusers.log" 2>&1 || rc=$?
    grep -Ev "^Creating (user|group) 'branchd'" "$tmp/sysusers.log" || true
    [[ $rc -eq 0 ]] || echo "systemd-sysusers exited with $rc"
    grep -q '^branchd:' "$root/etc/passwd" || echo "no branchd user was created"
    for g in dialout video lp; do
        grep -Eq "^$g:[^:]*:[0-9]+:(.*,)?branchd(,|$)" "$root/etc/group" \
            || echo "branchd was not added to group $g"
    done
} >"$tmp/sysusers.out"
report "branchd.sysusers (systemd-sysusers)" "$tmp/sysusers.out"

{
    systemd-tmpfiles --root="$root" --create "$here/branchd.tmpfiles" 2>&1 \
        || echo "systemd-tmpfiles exited with $?"
    for d in etc/branchd var/lib/branchd; do
        [[ -d "$root/$d" ]] || echo "/$d was not created"
    done
} >"$tmp/tmpfiles.out"
report "branchd.tmpfiles (systemd-tmpfiles)" "$tmp/tmpfiles.out"

# --- udev rules ---------------------------------------------------------------
# udevadm (v252) has no stand-alone syntax check, but `udevadm test` parses
# every rules file and names each bad line as "<file>:<line> <problem>".
# A private mount namespace shows it only our rules file.
rules_dir="$tmp/rules.d"
mkdir -p "$rules_dir"
cp "$here/99-branchd.rules" "$rules_dir/"
if [[ $EUID -eq 0 && -d /etc/udev/rules.d && -e /sys/class/tty/ptmx ]] \
    && command -v udevadm >/dev/null && unshare -m true 2>/dev/null; then
    # shellcheck disable=SC2016 # $1 is expanded by the inner shell
    unshare -m sh -c 'mount --bind "$1" /etc/udev/rules.d \
        && udevadm test --action=add /sys/class/tty/ptmx' sh "$rules_dir" \
        >"$tmp/udev.log" 2>&1 || true
    if grep -q "Reading rules file: /etc/udev/rules.d/99-branchd.rules" "$tmp/udev.log"; then
        grep "^/etc/udev/rules.d/99-branchd.rules:" "$tmp/udev.log" >"$tmp/udev.out" || true
    else
        echo "udevadm test did not read the rules file" >"$tmp/udev.out"
        tail -5 "$tmp/udev.log" >>"$tmp/udev.out"
    fi
    report "99-branchd.rules (udevadm test)" "$tmp/udev.out"
else
    echo "skip  99-branchd.rules (needs root, udevadm and unshare)"
fi

if [[ $failures -gt 0 ]]; then
    echo "verify: $failures check(s) failed"
    exit 1
fi
echo "verify: all checks passed"
