# shellcheck shell=bash
# Shared by scripts/deb/check.sh and scripts/deb/boot.sh: the Debian mirror this machine
# uses, a cached Debian 12 root made with debootstrap, and chroots on a throwaway overlay
# of it. Source it; it needs BRANCHD_CACHE.

deb_log() { printf 'deb: %s\n' "$*" >&2; }
deb_die() { printf 'deb: error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror of this machine's apt sources (deb822 or one-line form) serving
# bookworm; BRANCHD_DEBIAN_MIRROR overrides it.
deb_mirror() {
    if [[ -n "${BRANCHD_DEBIAN_MIRROR:-}" ]]; then
        echo "$BRANCHD_DEBIAN_MIRROR"
        return
    fi
    local f url=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        url="$(awk 'BEGIN { RS = ""; FS = "\n" }
            /(^|\n)Suites:[^\n]*bookworm( |\n|$)/ && /(^|\n)Types:[^\n]*deb( |\n|$)/ {
                for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit } }' "$f")"
        [[ -n "$url" ]] && break
    done
    if [[ -z "$url" ]]; then
        url="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }')"
    fi
    echo "${url:-http://deb.debian.org/debian}"
}

# Package names of a Depends field, for debootstrap --include: the first of each set of
# alternatives, without versions.
deb_depends_names() {
    tr ',' '\n' <<<"$1" | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | grep -v '^$' | sort -u
}

# deb_root NAME PACKAGE... : a Debian 12 root with these packages (and their
# dependencies), cached in $BRANCHD_CACHE/deb-root/NAME-<key of the list and mirror>;
# prints its path. Made once with debootstrap (minbase), apt's downloads dropped; a new
# one replaces the roots of the same NAME.
deb_root() {
    local name="$1"; shift
    local mirror key dir
    mirror="$(deb_mirror)"
    key="$(printf '%s\n' "layout=1" "suite=bookworm" "mirror=$mirror" "$@" | sort | sha256sum | cut -c1-16)"
    dir="$BRANCHD_CACHE/deb-root/$name-$key"
    if [[ -f "$dir/.branchd-root-ok" ]]; then
        echo "$dir"
        return
    fi
    command -v debootstrap >/dev/null || deb_die "missing tool: debootstrap"
    local include
    include="$(printf '%s,' "$@")"
    deb_log "making a Debian 12 root with debootstrap from $mirror (once; cached in $dir)"
    rm -rf "$dir.tmp"
    mkdir -p "$(dirname "$dir")"
    debootstrap --variant=minbase --include="${include%,}" bookworm "$dir.tmp" "$mirror" \
        >"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; deb_die "debootstrap failed (log: $dir.log)"; }
    chroot "$dir.tmp" apt-get clean
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    touch "$dir/.branchd-root-ok"
    # Roots of the same name for other package lists are not used any more.
    find "$(dirname "$dir")" -maxdepth 1 -name "$name-*" ! -name "$(basename "$dir")*" \
        -exec rm -rf {} +
    echo "$dir"
}

# deb_overlay ROOT WORK : mount a writable overlay of ROOT at WORK/merged, with /proc,
# /sys and /dev inside, for chroot; prints WORK/merged. deb_overlay_end WORK undoes it.
deb_overlay() {
    local root="$1" work="$2"
    mkdir -p "$work/upper" "$work/work" "$work/merged"
    mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" "$work/merged"
    mount -t proc proc "$work/merged/proc"
    mount -t sysfs sysfs "$work/merged/sys"
    mount --rbind /dev "$work/merged/dev"
    mount --make-rslave "$work/merged/dev"
    echo "$work/merged"
}

deb_overlay_end() {
    local work="$1"
    [[ -d "$work/merged" ]] || return 0
    umount -R "$work/merged" 2>/dev/null || umount -lR "$work/merged" 2>/dev/null || true
    rm -rf "$work"
}

# deb_prev DEB OUT : the same package re-versioned lower (<version>~prev), to test upgrades.
deb_prev() {
    local deb="$1" out="$2" tmp ver
    tmp="$(mktemp -d)"
    dpkg-deb -R "$deb" "$tmp/pkg"
    ver="$(sed -n 's/^Version: //p' "$tmp/pkg/DEBIAN/control")"
    sed -i "s/^Version: .*/Version: $ver~prev/" "$tmp/pkg/DEBIAN/control"
    dpkg-deb --root-owner-group -Zgzip --build "$tmp/pkg" "$out" >/dev/null
    rm -rf "$tmp"
}
