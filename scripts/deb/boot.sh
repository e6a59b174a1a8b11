#!/usr/bin/env bash
# Boot a Debian 12 box with the branchd package under qemu and report what systemd saw.
#
# The root: debootstrap (minbase + the package's Depends + linux-image-amd64, systemd-sysv,
# udev, sqlite3), cached in $BRANCHD_CACHE/deb-root; an earlier build of branchd (the same
# package re-versioned <ver>~prev) installed into a copy, with this build beside it in
# /root; an ext4 image made with `mkfs.ext4 -d`, booted with qemu-system-x86_64 (KVM when
# /dev/kvm is usable, with -cpu host,-arch-capabilities; TCG otherwise). A report unit
# prints BRANCHD-BOOT lines on the serial console:
#   unconfigured  the enabled unit with the packaged example config: skipped, not failed,
#                 no restarts
#   started       after writing a config: `systemctl start` returned once the daemon sent
#                 READY=1 (Type=notify), WatchdogSec=30s, its pid and package version
#   after 45 s    still active, the same pid, 0 restarts, the watchdog's last ping recent
#   upgraded      `dpkg -i` of this build: postinst restarted it, new pid, new version,
#                 the database is the same file and still has the user added before
# The table compares each with what it must be; the console log stays in
# $BRANCHD_CACHE/deb/boot-console.log.
#
# Usage: scripts/deb/boot.sh   (./dev bench boot). Needs root, debootstrap,
# qemu-system-x86_64, mkfs.ext4, and what scripts/deb/build.sh needs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BRANCHD_CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
export BRANCHD_CACHE
# shellcheck source=scripts/deb/lib.sh
. "$here/lib.sh"

[[ "$(id -u)" == 0 ]] || deb_die "boot.sh needs root (debootstrap, chroot, mounts)"
for tool in qemu-system-x86_64 mkfs.ext4; do
    command -v "$tool" >/dev/null || deb_die "missing tool: $tool"
done

started=$SECONDS
mapfile -t debs < <("$here/build.sh" --arch amd64 --no-lintian --fast --out "$BRANCHD_CACHE/deb-check")
[[ ${#debs[@]} -eq 2 && -f "${debs[0]}" ]] || deb_die "building the packages failed (see above)"
deb="${debs[0]}"
ver="$(dpkg-deb -f "$deb" Version)"
mapfile -t names < <(deb_depends_names "$(dpkg-deb -f "$deb" Depends)")
root="$(deb_root boot "${names[@]}" linux-image-amd64 systemd-sysv udev sqlite3)"

work="$(mktemp -d)"
trap 'deb_overlay_end "$work"' EXIT
r="$(deb_overlay "$root" "$work/ovl")"

# --- the box: the earlier build installed, this one waiting in /root ------------------
deb_prev "$deb" "$r/root/prev.deb"
cp "$deb" "$r/root/new.deb"
chroot "$r" dpkg -i /root/prev.deb >/dev/null
cat >"$r/root/boot.toml" <<'EOF'
# The config the boot report writes over the packaged example.
[branch]
id = "BOOT01"
name = "boot test"
data_dir = "/var/lib/branchd"

[http]
listen = "127.0.0.1:8080"

[faces]
enabled = false
EOF
cat >"$r/usr/local/sbin/branchd-boot-report" <<'EOF'
#!/bin/bash
# Runs once at boot: configure, start, wait, upgrade; every finding is one line on ttyS0.
out() { echo "BRANCHD-BOOT $*" >/dev/ttyS0; }
prop() { systemctl show -P "$1" branchd.service; }
db=/var/lib/branchd/branchd.db
systemctl is-system-running --wait >/dev/null
out "boot systemd=$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') kernel=$(uname -r)"
out "unconfigured enabled=$(systemctl is-enabled branchd) active=$(prop ActiveState) result=$(prop Result) restarts=$(prop NRestarts)"

install -m 0640 -o root -g branchd /root/boot.toml /etc/branchd/branchd.toml
printf 'boot-test-pw\n' | runuser -u branchd -- branchd user add amy --role supervisor \
    --password-stdin --config /etc/branchd/branchd.toml >/dev/null
t0=$(date +%s%N)
systemctl start branchd.service
rc=$?
t1=$(date +%s%N)
pid1=$(prop MainPID)
out "started rc=$rc start_ms=$(( (t1 - t0) / 1000000 )) active=$(prop ActiveState) type=$(prop Type) watchdog=$(prop WatchdogUSec) pid=$pid1 version=$(dpkg-query -W -f='${Version}' branchd) status=\"$(prop StatusText)\""
inode=$(stat -c %i "$db")
sleep 45
now=$(awk '{ printf "%d", $1 * 1000000 }' /proc/uptime)
ping=$(prop WatchdogTimestampMonotonic)
out "after45s active=$(prop ActiveState) pid=$(prop MainPID) same_pid=$([ "$(prop MainPID)" = "$pid1" ] && echo yes || echo no) restarts=$(prop NRestarts) last_ping_s_ago=$(( (now - ping) / 1000000 ))"

dpkg -i /root/new.deb >/root/upgrade.log 2>&1
rc=$?
pid2=$(prop MainPID)
users=$(sqlite3 "file:$db?mode=ro" 'SELECT group_concat(username) FROM users')
out "upgraded rc=$rc active=$(prop ActiveState) pid=$pid2 new_pid=$([ "$pid2" != "$pid1" ] && [ "$pid2" != 0 ] && echo yes || echo no) version=$(dpkg-query -W -f='${Version}' branchd) restarts=$(prop NRestarts) db_same_file=$([ "$(stat -c %i "$db")" = "$inode" ] && echo yes || echo no) users=$users"
journalctl -u branchd.service -b --no-pager -o short-monotonic | sed 's/^/journal: /' >/dev/ttyS0
out "done"
systemctl poweroff
EOF
chmod 755 "$r/usr/local/sbin/branchd-boot-report"
cat >"$r/etc/systemd/system/branchd-boot-report.service" <<'EOF'
[Unit]
Description=branchd boot report on the serial console
After=branchd.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/branchd-boot-report

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/branchd-boot-report.service "$r/etc/systemd/system/multi-user.target.wants/"
# The console is the report's; no login prompt on it, no network to wait for.
ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
echo branchd-box >"$r/etc/hostname"
: >"$r/etc/machine-id"

kernel="$(ls "$r"/boot/vmlinuz-* | sort -V | tail -n1)"
initrd="$(ls "$r"/boot/initrd.img-* | sort -V | tail -n1)"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd"
umount -R "$r/proc" "$r/sys" "$r/dev"
img="$work/root.img"
size_mb=$(( $(du -sm "$r" | cut -f1) + 768 ))
truncate -s "${size_mb}M" "$img"
mkfs.ext4 -q -F -L root -d "$r" "$img"

# --- boot ------------------------------------------------------------------------------
out="$BRANCHD_CACHE/deb"
mkdir -p "$out"
log="$out/boot-console.log"
# KVM where it works: some hosts (nested virtualisation) give a /dev/kvm on which a guest
# hangs before the kernel prints anything. A kernel alone, without a root, must print its
# banner within 20 s; otherwise TCG, and the table says why.
accel=(-accel tcg -cpu max)
accel_name=tcg
limit=1200
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    timeout 20 qemu-system-x86_64 -accel kvm -cpu host,-arch-capabilities -m 512 -nodefaults \
        -no-reboot -display none -monitor none -serial "file:$work/kvm-probe.log" -nic none \
        -kernel "$work/vmlinuz" -append "console=ttyS0 panic=-1" >/dev/null 2>&1 || true
    if grep -q "Linux version" "$work/kvm-probe.log" 2>/dev/null; then
        accel=(-accel kvm -cpu host,-arch-capabilities)
        accel_name=kvm
        limit=300
    else
        accel_name="tcg: a guest on this host's /dev/kvm printed nothing in 20 s"
    fi
fi
deb_log "booting ($accel_name, ${size_mb} MiB image); console log $log"
boot_started=$SECONDS
rc=0
timeout "$limit" qemu-system-x86_64 "${accel[@]}" -m 1024 -smp 2 -nodefaults -no-reboot \
    -display none -monitor none -serial "file:$log" -nic none \
    -kernel "$work/vmlinuz" -initrd "$work/initrd" \
    -append "console=ttyS0 root=/dev/vda rw panic=-1 systemd.show_status=1" \
    -drive "file=$img,format=raw,if=virtio" || rc=$?
boot_s=$((SECONDS - boot_started))
[[ $rc -eq 0 ]] || deb_log "qemu exited with $rc after $boot_s s (124: the ${limit} s limit)"

# --- the table -----------------------------------------------------------------------
field() { # line tag, key
    sed -n "s/^BRANCHD-BOOT $1 .*\b$2=\(\"[^\"]*\"\|[^ ]*\).*/\1/p" "$log" | tr -d '\r' | head -n1
}
# Expected values are extended regexes; a version is matched literally.
re_escape() { sed 's/[][\\.*^$+?(){}|]/\\&/g' <<<"$1"; }
failures=0
row() { # what, got, expected (an extended regex)
    local ok=ok
    [[ "$2" =~ ^($3)$ ]] || { ok=FAIL; failures=$((failures + 1)); }
    printf '%-4s  %-44s  %-28s  %s\n' "$ok" "$1" "${2:-(none)}" "$3"
}
printf '\nbranchd %s booted under qemu (%s), %d s\n' "$ver" "$accel_name" "$boot_s"
printf '%-4s  %-44s  %-28s  %s\n' "" "check" "seen" "expected"
row "systemd" "$(field boot systemd)" "25[0-9]"
row "unconfigured: enabled" "$(field unconfigured enabled)" "enabled"
row "unconfigured: state (ExecCondition skip)" "$(field unconfigured active)/$(field unconfigured result)" "inactive/exec-condition"
row "unconfigured: restarts" "$(field unconfigured restarts)" "0"
row "start: systemctl start exit code" "$(field started rc)" "0"
row "start: state after READY=1" "$(field started active)" "active"
row "start: Type" "$(field started type)" "notify"
row "start: WatchdogSec" "$(field started watchdog)" "30s"
row "start: package version" "$(field started version)" "$(re_escape "$ver~prev")"
row "start: time to ready (ms)" "$(field started start_ms)" "[0-9]+"
row "after 45 s: state" "$(field after45s active)" "active"
row "after 45 s: same pid" "$(field after45s same_pid)" "yes"
row "after 45 s: restarts" "$(field after45s restarts)" "0"
row "after 45 s: last watchdog ping (s ago, <= 15)" "$(field after45s last_ping_s_ago)" "([0-9]|1[0-5])"
row "upgrade: dpkg -i exit code" "$(field upgraded rc)" "0"
row "upgrade: state" "$(field upgraded active)" "active"
row "upgrade: new pid" "$(field upgraded new_pid)" "yes"
row "upgrade: package version" "$(field upgraded version)" "$(re_escape "$ver")"
row "upgrade: database same file" "$(field upgraded db_same_file)" "yes"
row "upgrade: user added before is there" "$(field upgraded users)" "amy"
row "report finished, box powered off" "$(grep -c '^BRANCHD-BOOT done' "$log" || true)/$rc" "1/0"
printf 'console log: %s (%d lines); total %d s\n' "$log" "$(wc -l <"$log")" $((SECONDS - started))
if [[ $failures -gt 0 ]]; then
    echo "boot: $failures failed"
    exit 1
fi
echo "boot: all passed"
