#!/usr/bin/env bash
# OpenAPI-driven fuzz of every HTTP route with a real client: starts `branchd demo` on a
# free port with a fresh data dir, logs in as every role (the kiosk with its device token),
# and runs schemathesis against the OpenAPI document the daemon serves. Each role fuzzes the
# operations its `x-roles` allow (a role's 403s elsewhere are checked by the Rust tests); the
# public operations are fuzzed without a session. Fails on any 5xx and on any answer off the
# document (status, content type, body schema, headers), printing the curl that reproduces it.
#
#   scripts/apifuzz.sh BRANCHD_BINARY [MAX_EXAMPLES]
#
# MAX_EXAMPLES (default 25, or $APIFUZZ_EXAMPLES) bounds the generated cases per operation
# and phase; the seed is fixed so a run repeats (APIFUZZ_SEED changes it, APIFUZZ_PASSES
# picks passes, e.g. "device_admin"). schemathesis is installed, pinned, in a
# venv under $BRANCHD_CACHE. The demo's log and the reports go to $BRANCHD_CACHE/apifuzz.
set -euo pipefail

bin=${1:?usage: apifuzz.sh BRANCHD_BINARY [MAX_EXAMPLES]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
examples=${2:-${APIFUZZ_EXAMPLES:-25}}
seed=${APIFUZZ_SEED:-20241206}
cache=${BRANCHD_CACHE:-$HOME/.cache/branchd}
SCHEMATHESIS=4.32.5
venv=$cache/venv-api
artifacts=$cache/apifuzz

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS"; then
  echo "installing schemathesis $SCHEMATHESIS into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS"
fi

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
# No camera: the face models are not what this fuzzes, and they take seconds to load.
"$bin" demo --no-camera --data-dir "$work/data" --listen "127.0.0.1:$port" >"$artifacts/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$artifacts/demo.log" >&2; echo "branchd demo exited early" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$url/healthz" >/dev/null || { echo "branchd demo did not answer on $url" >&2; exit 1; }

# A session per role, all made before any fuzzing: the fuzzed login route's wrong
# passwords soon lock this client out of logging in (429), which is as it should be.
declare -A session
for login in lobby_manager=lobby:lobby-demo device_admin=admin:admin-demo \
  supervisor=super:super-demo branch_manager=manager:manager-demo; do
  role=${login%%=*}
  creds=${login#*=}
  token=$(curl -fsS -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\":\"${creds%%:*}\",\"password\":\"${creds#*:}\"}" "$url/api/v1/auth/login" |
    sed -n 's/^[Ss]et-[Cc]ookie: branchd_session=\([^;]*\);.*/\1/p')
  [ -n "$token" ] || { echo "login as ${creds%%:*} gave no session cookie" >&2; exit 1; }
  session[$role]=$token
done
# The demo's self-service kiosk signs in with its device token.
token=$(curl -fsS -D - -o /dev/null -H 'content-type: application/json' \
  -d '{"token":"kiosk-demo"}' "$url/api/v1/kiosk/session" |
  sed -n 's/^[Ss]et-[Cc]ookie: branchd_session=\([^;]*\);.*/\1/p')
[ -n "$token" ] || { echo "the demo kiosk's sign-in gave no session cookie" >&2; exit 1; }
session[kiosk]=$token

curl -fsS -H "Cookie: branchd_session=${session[branch_manager]}" "$url/api/v1/openapi.json" >"$work/openapi.json"

# One schema per pass, holding only the operations that pass may call, with path ids
# narrowed to the demo's own (see apifuzz_schemas.py for why, and for the two operations
# left out of every pass: logout and the event stream).
"$venv/bin/python" "$here/apifuzz_schemas.py" "$work/openapi.json" "$work" "$url" \
  "lobby_manager=${session[lobby_manager]}" "device_admin=${session[device_admin]}" \
  "supervisor=${session[supervisor]}" "branch_manager=${session[branch_manager]}" \
  "kiosk=${session[kiosk]}"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
failed=()
started=$SECONDS
for who in ${APIFUZZ_PASSES:-public lobby_manager device_admin supervisor branch_manager kiosk}; do
  args=()
  [ "$who" = public ] || args+=(-H "Cookie: branchd_session=${session[$who]}")
  echo "== schemathesis as $who" >&2
  t0=$SECONDS
  # From the artifacts dir: schemathesis keeps what `st replay ID` needs in ./.schemathesis.
  if ! (cd "$artifacts" && "$venv/bin/schemathesis" run "$work/openapi-$who.json" --url "$url" \
    "${args[@]}" \
    --checks "$checks" \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" --seed "$seed" \
    --workers 1 --request-timeout 30 \
    --generation-database none --output-sanitize false --no-color \
    --report junit --report-junit-path "$artifacts/junit-$who.xml" \
    >"$artifacts/schemathesis-$who.log" 2>&1); then
    failed+=("$who")
    cat "$artifacts/schemathesis-$who.log" >&2
  else
    tail -n 12 "$artifacts/schemathesis-$who.log" >&2
  fi
  echo "== $who: $((SECONDS - t0)) s" >&2
  kill -0 "$demo_pid" 2>/dev/null || { tail -n 50 "$artifacts/demo.log" >&2; echo "branchd demo died during the fuzz" >&2; exit 1; }
done
echo "apifuzz: $((SECONDS - started)) s, $examples examples per operation and phase, seed $seed" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "apifuzz: findings as ${failed[*]} (logs in $artifacts; the demo is gone, so replay against a new one)" >&2
  exit 1
fi
