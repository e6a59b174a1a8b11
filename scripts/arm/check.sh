#!/usr/bin/env bash
# The aarch64 check, without Docker: cross-build branchd for
# aarch64-unknown-linux-gnu against a Debian 12 arm64 sysroot, run it under
# qemu (including OCR of one photo), and run the drivers' tests under qemu.
#
# Usage: scripts/arm/check.sh [--no-apt] [--no-test] [--opencv]
#   --no-apt   never call apt-get; fail if a host package is missing
#   --no-test  skip `cargo test` of branchd-drivers
#   --opencv   also cross-build and run a small program using the opencv crate
#              (imgproc, imgcodecs, videoio) against the sysroot's OpenCV
#
# Environment: BRANCHD_CACHE (default $HOME/.cache/branchd) holds the sysroot
# and the aarch64 target dir ($BRANCHD_CACHE/target-aarch64), both outside the
# repository, so this never waits on the host build's lock.
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
HOST_PACKAGES=(
    gcc-aarch64-linux-gnu
    g++-aarch64-linux-gnu
    libc6-dev-arm64-cross
    qemu-user-static
    dpkg-dev
    debian-archive-keyring
)
# The opencv crate's binding generator needs libclang.
OPENCV_HOST_PACKAGES=(clang libclang-dev)

use_apt=1
run_tests=1
opencv=0
for arg in "$@"; do
    case "$arg" in
        --no-apt) use_apt=0 ;;
        --no-test) run_tests=0 ;;
        --opencv) opencv=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check.sh: unknown argument: $arg" >&2; exit 64 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

export BRANCHD_CACHE="${BRANCHD_CACHE:-$HOME/.cache/branchd}"
summary=()
started=$SECONDS

step() { printf '\n==> %s\n' "$*"; step_started=$SECONDS; }
done_step() { summary+=("$(printf 'ok    %-44s %4ds' "$1" $((SECONDS - step_started)))"); }
fail() {
    summary+=("$(printf 'FAIL  %s' "$1")")
    print_summary
    echo "aarch64 check: FAILED ($1)" >&2
    exit 1
}
print_summary() {
    printf '\n---- aarch64 check summary ----\n'
    printf '%s\n' "${summary[@]}"
    printf 'total %ds\n' $((SECONDS - started))
}

# --- host packages -------------------------------------------------------------
step "host packages"
[[ $opencv -eq 0 ]] || HOST_PACKAGES+=("${OPENCV_HOST_PACKAGES[@]}")
missing=()
for pkg in "${HOST_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "missing: ${missing[*]}"
    [[ $use_apt -eq 1 ]] || fail "host packages missing: ${missing[*]}"
    sudo=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null || fail "host packages missing and not root: ${missing[*]}"
        sudo=(sudo)
    fi
    # Another apt run may hold the dpkg lock; wait for it instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=900 -o APT::Get::Assume-Yes=true)
    "${sudo[@]}" apt-get "${apt_opts[@]}" -qq update || fail "apt-get update"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get "${apt_opts[@]}" -qq install \
        --no-install-recommends "${missing[@]}" || fail "apt-get install ${missing[*]}"
fi
done_step "host packages"

# --- Rust target -----------------------------------------------------------------
step "rustup target $TARGET"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" || fail "rustup target add $TARGET"
fi
done_step "rust target $TARGET"

# --- sysroot ---------------------------------------------------------------------
step "Debian 12 arm64 sysroot"
"$here/sysroot.sh" || fail "sysroot"
done_step "sysroot"

# shellcheck source=scripts/arm/env.sh
. "$here/env.sh"
export CARGO_TARGET_DIR="$BRANCHD_CACHE/target-aarch64"
qemu=(qemu-aarch64-static -L "$BRANCHD_SYSROOT")

# --- branchd --------------------------------------------------------------------
step "cargo build --release --target $TARGET -p branchd"
cargo build --release --target "$TARGET" -p branchd || fail "cargo build -p branchd"
done_step "build branchd (release)"

step "branchd --version under qemu"
bin="$CARGO_TARGET_DIR/$TARGET/release/branchd"
machine="$(LC_ALL=C readelf -h "$bin" 2>/dev/null | sed -n 's/^ *Machine: *//p')"
[[ "$machine" == "AArch64" ]] || fail "branchd is not an AArch64 binary (Machine: ${machine:-?})"
want="$(cargo pkgid -p branchd | sed 's/.*[#@]//')"
version_out="$("${qemu[@]}" "$bin" --version 2>&1)" || fail "branchd --version under qemu: $version_out"
echo "$version_out"
[[ -n "$version_out" ]] || fail "branchd --version printed nothing"
[[ "$version_out" == *"$want"* ]] || fail "branchd --version: expected $want in '$version_out'"
done_step "qemu: $version_out"

# --- OCR under qemu -------------------------------------------------------------
# The whole pipeline (OpenCV decode, ONNX Runtime's aarch64 library, the PP-OCR models)
# on one generated ID card photo; the ID number must come out right. Slow, not wrong.
step "branchd ocr under qemu (one ID card photo)"
models="${BRANCHD_MODELS:-$BRANCHD_CACHE/models}"
ls "$models"/aarch64/libonnxruntime.so* >/dev/null 2>&1 ||
    fail "no aarch64 ONNX Runtime in $models (python3 models/fetch.py --arch all)"
ocr_dir="$BRANCHD_CACHE/arm-ocr"
if [[ ! -f "$ocr_dir/id-front-0.json" ]]; then
    python3 tools/docgen/docgen.py --kind id-front --count 1 --seed 7 --clean --out "$ocr_dir" \
        >/dev/null || fail "docgen (pip install -r tools/docgen/requirements.txt)"
fi
ocr_img="$(ls "$ocr_dir"/id-front-0.* | grep -v '\.json$' | head -n 1)"
# (ONNX Runtime warns on stderr that qemu's CPU has no vendor: keep it out of the JSON)
ocr_out="$("${qemu[@]}" "$bin" ocr --kind id-card --json --models "$models" "$ocr_img" 2>"$ocr_dir/stderr.log")" ||
    fail "branchd ocr under qemu: $(cat "$ocr_dir/stderr.log")"
want_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id_number"])' "$ocr_dir/id-front-0.json")"
got_id="$(printf '%s' "$ocr_out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fields"].get("id_number", {}).get("value", ""))')" ||
    fail "branchd ocr under qemu printed no JSON: $ocr_out"
[[ "$got_id" == "$want_id" ]] || fail "OCR under qemu read ID number '$got_id', want '$want_id'"
done_step "qemu: OCR read the ID number"

# --- drivers tests --------------------------------------------------------------
if [[ $run_tests -eq 1 ]]; then
    step "cargo test --target $TARGET -p branchd-drivers (under qemu)"
    if ! cargo test --target "$TARGET" -p branchd-drivers 2>&1 \
        | tee "$CARGO_TARGET_DIR/drivers-test.log"; then
        fail "cargo test -p branchd-drivers"
    fi
    passed="$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$CARGO_TARGET_DIR/drivers-test.log" \
        | awk '{ n += $1 } END { print n + 0 }')"
    done_step "drivers tests under qemu: $passed passed"
fi

# --- OpenCV ---------------------------------------------------------------------
if [[ $opencv -eq 1 ]]; then
    step "opencv crate against the sysroot's OpenCV (under qemu)"
    "$here/opencv-probe.sh" || fail "opencv probe"
    done_step "opencv probe"
fi

print_summary
echo "aarch64 check: OK"
