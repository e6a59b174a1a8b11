#!/usr/bin/env bash
# The PAD end-to-end test against the real daemon: starts a Mosquitto as head office with
# `branchd hq watch` listening, `branchd demo` (simulated STMs, printer and ID reader) on a
# free port with a fresh data dir linked to it, renders a synthetic ID card photo and a
# video of a demo coupon's QR code for Chromium's fake camera, runs e2e/run.mjs in headless
# Chromium as every role, then stops everything it started.
#
#   web-ui/e2e/against-demo.sh BRANCHD_BINARY [ARTIFACTS_DIR]
#
# Screenshots, the demo's log, what head office received (hq.log) and the ack of the order it
# booked (order-ack.json) go to ARTIFACTS_DIR
# (default $BRANCHD_CACHE/e2e-artifacts).
set -euo pipefail

bin=${1:?usage: against-demo.sh BRANCHD_BINARY [ARTIFACTS_DIR]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$here/.." && pwd)
artifacts=${2:-${BRANCHD_CACHE:-$HOME/.cache/branchd}/e2e-artifacts}
rm -rf "$artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
demo_pid=
broker_pid=
watch_pid=
stop() {
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1"
    wait "$1" || true
  fi
}
cleanup() {
  stop "$demo_pid"
  stop "$watch_pid"
  stop "$broker_pid"
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
url="http://127.0.0.1:$port"

# Head office: a broker of our own, and a console that records every event it receives.
mqtt_port=$(free_port)
{
  echo "listener $mqtt_port 127.0.0.1"
  echo "allow_anonymous true"
  # Mosquitto started as root drops to its own user otherwise.
  if [ "$(id -u)" = 0 ]; then echo "user root"; fi
} >"$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$artifacts/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $mqtt_port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
"$bin" hq watch --url "mqtt://127.0.0.1:$mqtt_port" --branch NJ0101 --data >"$artifacts/hq.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 100); do grep -q '^subscribed' "$artifacts/hq.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^subscribed' "$artifacts/hq.log" || { cat "$artifacts/hq.log" >&2; echo "branchd hq watch did not subscribe" >&2; exit 1; }

"$bin" demo --data-dir "$work/data" --listen "127.0.0.1:$port" --mqtt "mqtt://127.0.0.1:$mqtt_port" >"$artifacts/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$artifacts/demo.log" >&2; echo "branchd demo exited early" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$url/healthz" >/dev/null || { echo "branchd demo did not answer on $url" >&2; exit 1; }

# Head office books an order for the PAD's order journey (approved, run and delivered there).
order_id="ORD-E2E-$(date +%s)"
cat >"$work/order.json" <<EOF
{"v":1,"id":"cmd-$order_id","ts":"$(date -u +%FT%TZ)","kind":"order.create","data":{"order_id":"$order_id",
 "business_type":"account_opening","title":"个人开户","channel":"app","customer":{"name":"赵敏","phone":"13800000009"},
 "appointment_at":"$(date -u -d '+30 min' +%FT%TZ)",
 "steps":[{"key":"document_check","name":"证件核验","sla_s":600},{"key":"account_opening","name":"开户","sla_s":900}]}}
EOF
"$bin" hq send --url "mqtt://127.0.0.1:$mqtt_port" --branch NJ0101 --timeout 30 "$work/order.json" >"$artifacts/order-ack.json" \
  || { cat "$artifacts/order-ack.json" >&2; echo "head office could not book the e2e order" >&2; exit 1; }

# A photographed ID card front with ground truth, rendered for this run.
python3 "$root/tools/docgen/docgen.py" --kind id-front --count 1 --seed 11 --out "$work/card" >/dev/null
card=$(find "$work/card" -type f \( -name '*.jpg' -o -name '*.png' \) | head -n 1)
[ -n "$card" ] || { echo "docgen made no image" >&2; exit 1; }
# The back of a card that expired years ago (validity periods counted from 2005): the OCR
# screen must flag it.
python3 "$root/tools/docgen/docgen.py" --kind id-back --count 1 --seed 2 --today 2005-06-01 --out "$work/card-back" >/dev/null
card_back=$(find "$work/card-back" -type f \( -name '*.jpg' -o -name '*.png' \) | head -n 1)
[ -n "$card_back" ] || { echo "docgen made no back-side image" >&2; exit 1; }

# A coupon head office issued to the demo customer 王芳 (by her ID number, hashed with the
# demo's salt, signed with the demo's key), shown as a QR code to Chromium's fake camera.
coupon_id="CP-E2E-$(date +%s)"
from=$(date -d yesterday +%F)
token=$("$bin" hq coupon --demo --id "$coupon_id" --id-number 11010519491231002X \
  --right cash_voucher --value 5000 --from "$from")
(cd "$here" && node e2e/coupon-video.mjs "$token" "$work/coupon.y4m") >/dev/null

# With the face photos, the demo's entrance camera plays a VIP arriving.
vip=
if grep -q "demo camera: entrance" "$artifacts/demo.log"; then vip="Rose Leslie"; fi

cd "$here"
BRANCHD_URL="$url" \
BRANCHD_CREDENTIALS='lobby_manager=lobby:lobby-demo,supervisor=super:super-demo,device_admin=admin:admin-demo,branch_manager=manager:manager-demo' \
ID_CARD_IMAGE="$card" \
ID_CARD_BACK_EXPIRED="$card_back" \
E2E_EXPECT_VIP="$vip" \
ARTIFACTS_DIR="$artifacts" \
DEMO_LOG="$artifacts/demo.log" \
HQ_LOG="$artifacts/hq.log" \
COUPON_VIDEO="$work/coupon.y4m" \
COUPON_ID="$coupon_id" \
ORDER_ID="$order_id" \
KIOSK_TOKEN=kiosk-demo \
  node e2e/run.mjs
