#!/usr/bin/env bash
# The PAD end-to-end test against the real daemon: starts `branchd demo` (simulated STMs,
# printer and ID reader) on a free port with a fresh data dir, renders a synthetic ID card
# photo, runs e2e/run.mjs in headless Chromium as every role, then stops the demo.
#
#   web-ui/e2e/against-demo.sh BRANCHD_BINARY [ARTIFACTS_DIR]
#
# Screenshots and the demo's log go to ARTIFACTS_DIR (default $BRANCHD_CACHE/e2e-artifacts).
set -euo pipefail

bin=${1:?usage: against-demo.sh BRANCHD_BINARY [ARTIFACTS_DIR]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$here/.." && pwd)
artifacts=${2:-${BRANCHD_CACHE:-$HOME/.cache/branchd}/e2e-artifacts}
rm -rf "$artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid"
    wait "$demo_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

"$bin" demo --data-dir "$work/data" --listen "127.0.0.1:$port" >"$artifacts/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$artifacts/demo.log" >&2; echo "branchd demo exited early" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$url/healthz" >/dev/null || { echo "branchd demo did not answer on $url" >&2; exit 1; }

# A photographed ID card front with ground truth, rendered for this run.
python3 "$root/tools/docgen/docgen.py" --kind id-front --count 1 --seed 11 --out "$work/card" >/dev/null
card=$(find "$work/card" -type f \( -name '*.jpg' -o -name '*.png' \) | head -n 1)
[ -n "$card" ] || { echo "docgen made no image" >&2; exit 1; }

# With the face photos, the demo's entrance camera plays a VIP arriving.
vip=
if grep -q "demo camera: entrance" "$artifacts/demo.log"; then vip="Rose Leslie"; fi

cd "$here"
BRANCHD_URL="$url" \
BRANCHD_CREDENTIALS='lobby_manager=lobby:lobby-demo,supervisor=super:super-demo,device_admin=admin:admin-demo,branch_manager=manager:manager-demo' \
ID_CARD_IMAGE="$card" \
E2E_EXPECT_VIP="$vip" \
ARTIFACTS_DIR="$artifacts" \
  node e2e/run.mjs
