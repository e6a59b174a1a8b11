"""The per-pass schemas of scripts/apifuzz.sh.

    apifuzz_schemas.py OPENAPI_JSON OUT_DIR URL ROLE=SESSION...

Writes OUT_DIR/openapi-WHO.json for `public` and each role: the served document with only
the operations that pass may call (public ones without a session; a role's by `x-roles`).

Left out of every pass, on purpose:
  POST /api/v1/auth/logout  ends the pass's own session, and every later case is a 401
  GET  /api/v1/events       the SSE stream never ends, so no response to check arrives

Some body values are left out, each because after it the daemon rightly answers 5xx, as
documented, and the fuzz cannot tell that from a fault:
  `POST /api/v1/devices/{id}/commands` ops `shutdown` and `restart`: they take the simulated
      STM off its link (for good, or for a moment); the device routes then answer 503
      `device_unavailable`.

A path parameter naming a thing the demo has (order, order step, ticket, counter, device,
product, lead, alert, task) is narrowed, in the pass's copy only, to an enum of the ids the
demo lists now and one that names nothing: valid cases then reach the handlers behind the
lookup, and invalid ones (outside the enum) still probe the 404s. Responses are checked
against the document as served.
"""

import json
import sys
import urllib.error
import urllib.request

EXCLUDED = {("post", "/api/v1/auth/logout"), ("get", "/api/v1/events")}
ROLES = ["lobby_manager", "device_admin", "supervisor", "branch_manager", "kiosk"]
# (path, body property) -> values left out of its enum; see the docstring for why.
LEFT_OUT = {
    ("/api/v1/devices/{id}/commands", "op"): {"shutdown", "restart"},
}


def without_left_out_values(path, op):
    """`op`, with the LEFT_OUT values gone from its JSON body's enums."""
    wanted = {prop: out for (p, prop), out in LEFT_OUT.items() if p == path}
    if not wanted:
        return op
    body = json.loads(json.dumps(op["requestBody"]))
    props = body["content"]["application/json"]["schema"]["properties"]
    for prop, out in wanted.items():
        props[prop]["enum"] = [v for v in props[prop]["enum"] if v not in out]
    return dict(op, requestBody=body)


def main():
    doc_path, out_dir, url = sys.argv[1:4]
    sessions = dict(a.split("=", 1) for a in sys.argv[4:])
    doc = json.load(open(doc_path))

    def fetch(path):
        """`path` read by the first role allowed to, or None."""
        for token in sessions.values():
            req = urllib.request.Request(url + path, headers={"Cookie": f"branchd_session={token}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.load(r)
            except urllib.error.HTTPError:
                continue
        return None

    orders = fetch("/api/v1/orders") or []
    queue = fetch("/api/v1/queue") or {}
    steps = {
        s["key"]
        for o in orders
        for s in (fetch(f"/api/v1/orders/{o['id']}?view=staff") or {}).get("steps", [])
    }
    known = {
        ("/api/v1/orders/", "id"): [o["id"] for o in orders],
        ("/api/v1/orders/", "key"): sorted(steps),
        ("/api/v1/tickets/", "number"): [t["number"] for t in queue.get("waiting", [])],
        ("/api/v1/counters/", "id"): [c["id"] for c in queue.get("counters", [])],
        ("/api/v1/devices/", "id"): [d["id"] for d in fetch("/api/v1/devices") or []],
        ("/api/v1/products/", "code"): [
            p["code"] for p in (fetch("/api/v1/products") or {}).get("products", [])
        ],
        ("/api/v1/leads/", "id"): [
            lead["lead_id"] for lead in (fetch("/api/v1/leads") or {}).get("leads", [])
        ],
        ("/api/v1/alerts/", "id"): [a["id"] for a in fetch("/api/v1/alerts") or []],
        ("/api/v1/tasks/", "id"): [t["id"] for t in fetch("/api/v1/tasks") or []],
    }

    def narrowed(path, params):
        out = []
        for p in params:
            ids = next(
                (v for (prefix, name), v in known.items()
                 if path.startswith(prefix) and p.get("name") == name),
                [],
            )
            if p.get("in") == "path" and ids:
                nothing = 999999 if isinstance(ids[0], int) else "NO-SUCH-1"
                p = dict(p, schema=dict(p["schema"], enum=ids + [nothing]))
            out.append(p)
        return out

    for who in ["public"] + ROLES:
        paths, count = {}, 0
        for path, item in doc["paths"].items():
            ops = {}
            for method, op in item.items():
                if (method, path) in EXCLUDED:
                    continue
                roles = op.get("x-roles")
                public = roles is None or op.get("security") == []
                if (who == "public") == public and (public or who in roles):
                    op = without_left_out_values(path, op)
                    ops[method] = dict(op, parameters=narrowed(path, op.get("parameters", [])))
            if ops:
                paths[path] = ops
                count += len(ops)
        with open(f"{out_dir}/openapi-{who}.json", "w") as f:
            json.dump(dict(doc, paths=paths), f)
        print(f"{who}: {count} operations", file=sys.stderr)
    print("ids:", {f"{k[0]}{{{k[1]}}}": len(v) for k, v in known.items()}, file=sys.stderr)


if __name__ == "__main__":
    main()
