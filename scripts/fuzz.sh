#!/usr/bin/env bash
# Fuzzing of every parser that takes bytes from outside the box (cargo-fuzz, libFuzzer).
#
#   scripts/fuzz.sh run [SECONDS] [TARGET...]   each target for SECONDS (default 15); fails on
#                                               any crash, hang or OOM
#   scripts/fuzz.sh bench [RUNS] [TARGET...]    each target for RUNS executions (default
#                                               10000000), then a table per target
#   scripts/fuzz.sh list                        the targets
#
# The targets live in two cargo-fuzz crates outside the workspace: drivers/fuzz (device
# protocols) and agent/fuzz (head-office commands, config, images, HTTP bodies). They are
# built once per run, optimised with debug assertions and overflow checks, without a
# sanitizer (the code under test is safe Rust; a panic, an overflow, a hang or running out
# of memory is what is looked for). Each target starts from its committed seeds
# (<crate>/seeds/<target>) and grows its own corpus (<crate>/corpus/<target>, not
# committed); a failing input is kept in <crate>/artifacts/<target>/. To replay one, run the
# target's binary on it: `<target dir>/x86_64-unknown-linux-gnu/release/<target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${BRANCHD_CACHE:-$HOME/.cache/branchd}

# crate dir, target, longest input
TARGETS=(
  "drivers/fuzz stm_decoder 8192"
  "drivers/fuzz stm_message 4096"
  "drivers/fuzz idreader_frame 2048"
  "drivers/fuzz idreader_text 512"
  "drivers/fuzz printer_status 64"
  "agent/fuzz command 4096"
  "agent/fuzz command_fields 2048"
  "agent/fuzz image 4096"
  "agent/fuzz http_bodies 1024"
  "agent/fuzz config 8192"
)

# One target dir per crate, so that both can build at once.
target_dir() {
  case $1 in
    agent/*) echo "$cache/target-fuzz" ;;
    *) echo "$cache/target-fuzz-drivers" ;;
  esac
}

selected() {
  local want=("$@") t
  for t in "${TARGETS[@]}"; do
    set -- $t
    if [ ${#want[@]} -eq 0 ] || [[ " ${want[*]} " == *" $2 "* ]]; then echo "$t"; fi
  done
}

ensure_tools() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
}

build() {
  local crate
  for crate in $(printf '%s\n' "$@" | awk '{print $1}' | sort -u); do
    # The workspace's versions of every dependency (cargo adds libFuzzer's to the copy).
    [ "$crate/Cargo.lock" -nt Cargo.lock ] || cp Cargo.lock "$crate/Cargo.lock"
    (cd "$crate" && cargo +nightly fuzz build -O -a -s none --target-dir "$(target_dir "$crate")")
  done
}

# fuzz CRATE TARGET MAX_LEN LOG LIBFUZZER-FLAGS...: one run; its exit status
fuzz() {
  local crate=$1 t=$2 len=$3 log=$4
  shift 4
  local bin
  bin="$(target_dir "$crate")/x86_64-unknown-linux-gnu/release/$t"
  mkdir -p "$crate/corpus/$t" "$crate/artifacts/$t"
  (cd "$crate" && "$bin" -artifact_prefix="artifacts/$t/" -max_len="$len" -timeout=10 \
    -print_final_stats=1 "$@" "corpus/$t" "seeds/$t") >"$log" 2>&1
}

findings() { find "$1/artifacts/$2" -type f -newer "$3" 2>/dev/null | wc -l; }

cmd_run() {
  local secs=${1:-15}
  shift || true
  local list failed=0 log mark
  mapfile -t list < <(selected "$@")
  [ ${#list[@]} -gt 0 ] || { echo "no such target: $*" >&2; exit 64; }
  ensure_tools
  build "${list[@]}"
  log=$(mktemp -d)
  for t in "${list[@]}"; do
    set -- $t
    touch "$log/$2.start"
    if fuzz "$1" "$2" "$3" "$log/$2" -max_total_time="$secs"; then
      printf '%-16s ok   %s\n' "$2" "$(grep -m1 -o 'number_of_executed_units: [0-9]*' "$log/$2" | awk '{print $2}') runs"
    else
      failed=1
      printf '%-16s FAIL (input kept in %s)\n' "$2" \
        "$(find "$1/artifacts/$2" -type f -newer "$log/$2.start" | head -n 1)"
      grep -E -m 12 'panicked|ERROR: libFuzzer|SUMMARY|assert' "$log/$2" | sed 's/^/    /'
    fi
  done
  rm -rf "$log"
  return $failed
}

cmd_bench() {
  local runs=${1:-10000000}
  shift || true
  local list log start secs execs found status
  mapfile -t list < <(selected "$@")
  [ ${#list[@]} -gt 0 ] || { echo "no such target: $*" >&2; exit 64; }
  ensure_tools
  build "${list[@]}"
  log=$(mktemp -d)
  local rows=()
  for t in "${list[@]}"; do
    set -- $t
    touch "$log/$2.start"
    start=$(date +%s.%N)
    status=0
    fuzz "$1" "$2" "$3" "$log/$2" -runs="$runs" || status=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    execs=$(grep -m1 -o 'number_of_executed_units: [0-9]*' "$log/$2" | awk '{print $2}')
    found=$(findings "$1" "$2" "$log/$2.start")
    rows+=("$(printf '| %-16s | %12s | %8s | %9s | %8s |' "$2" "${execs:-0}" "$secs" \
      "$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')" \
      "$found$([ "$status" -ne 0 ] && echo ' (stop)')")")
    printf '%-16s %s runs in %.1f s, %s finding(s)\n' "$2" "${execs:-0}" "$secs" "$found" >&2
  done
  rm -rf "$log"
  echo
  echo "fuzzing: $runs executions per target (a finding stops its target; inputs in <crate>/artifacts/)"
  echo "| target           |   executions |  seconds |    exec/s | findings |"
  echo "|------------------|--------------|----------|-----------|----------|"
  printf '%s\n' "${rows[@]}"
}

case "${1:-}" in
  run) shift; cmd_run "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  list) selected | awk '{print $2 "\t" $1}' ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 64 ;;
esac
