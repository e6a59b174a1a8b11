#!/usr/bin/env python3
"""Synthetic photos of Chinese ID cards and business licences, with OCR ground truth.

    python3 tools/docgen/docgen.py --kind id-front|id-back|licence --count N --seed S --out DIR [--clean]

Writes DIR/<kind>-<i>.jpg (some .png), DIR/<kind>-<i>.json (the fields `branchd ocr --json`
should return, same keys) and DIR/manifest.json. The same seed gives the same output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import content  # noqa: E402
import degrade  # noqa: E402
import layouts  # noqa: E402
import render  # noqa: E402

# bumped whenever the same seed gives different documents or truths; users key caches on it
GENERATOR_VERSION = 2

KINDS = ("id-front", "id-back", "licence")
KIND_CODE = {"id-front": 1, "id-back": 2, "licence": 3}
# the document "today" is fixed so that a seed keeps producing the same validity dates
DEFAULT_TODAY = "2025-06-01"

ID_FRONT_KEYS = ("name", "gender", "nation", "birth_date", "address", "id_number")
ID_BACK_KEYS = ("issuing_authority", "valid_from", "valid_to")
LICENCE_KEYS = ("name", "credit_code", "type", "legal_person", "registered_capital", "established",
                "term", "address", "scope")
CONTRACT_KEYS = {"id-front": ID_FRONT_KEYS, "id-back": ID_BACK_KEYS, "licence": LICENCE_KEYS}
OCR_KIND = {"id-front": "id_card", "id-back": "id_card", "licence": "licence"}


class TruthMismatch(RuntimeError):
    """The renderer printed something other than the ground truth (a bug in a layout)."""


def check_printed(lic: content.Licence, drawn: dict) -> None:
    want = lic.printed()
    if drawn != want:
        diff = {k: (drawn.get(k), want.get(k)) for k in set(drawn) | set(want) if drawn.get(k) != want.get(k)}
        raise TruthMismatch(f"printed text differs from the truth (printed, truth): {diff}")


def make_one(kind: str, i: int, seed: int, fonts: render.Fonts, params: degrade.Degrade,
             clean: bool, today: dt.date, licence_layouts=layouts.LAYOUTS):
    """Render item `i`. Front and back with the same seed and index belong to the same person."""
    content_rng = np.random.default_rng([seed, i])
    layout_rng = np.random.default_rng([seed, i, KIND_CODE[kind], 1])
    photo_rng = np.random.default_rng([seed, i, KIND_CODE[kind], 2])
    extra: dict = {}
    if kind == "licence":
        lic = content.licence(np.random.default_rng([seed, i, 3]), today)
        truth = lic.truth()
        style = layouts.choose_style(np.random.default_rng([seed, i, KIND_CODE[kind], 3]), licence_layouts)
        doc, sheet = layouts.render_licence(lic, fonts, layout_rng, style)
        check_printed(lic, sheet.drawn)
        extra = {"registration_authority": lic.authority, "issued": lic.issued.isoformat(),
                 "term_printed": lic.term_printed, **style.manifest()}
        out_widths = (1600, 1920, 2048)
    else:
        person = content.person(content_rng, today)
        if kind == "id-front":
            truth = person.front_truth()
            doc = render.render_id_front(person, fonts, layout_rng)
        else:
            truth = person.back_truth()
            doc = render.render_id_back(person, fonts, layout_rng)
        out_widths = (1024, 1280, 1600)
    if clean:
        flat = doc.convert("RGB") if doc.mode == "RGB" else _flatten(doc)
        w, h = flat.size
        quad = [[0, 0], [w, 0], [w, h], [0, h]]
        img, info = flat, {"clean": True, "rotation_deg": 0.0, "perspective": 0.0, "blur_px": 0.0,
                           "glare_level": 0.0}
    else:
        if kind == "licence" and doc.height > doc.width:  # a portrait page: a portrait frame, as tall
            out_widths = (1080, 1280, 1440)
        width = int(out_widths[int(photo_rng.integers(len(out_widths)))])
        img, quad, info = degrade.photograph(doc, photo_rng, params, out_width=width)
    ext, data, enc = degrade.encode(img, photo_rng, params, clean)
    info.update(enc)
    return truth, ext, data, img.size, quad, info, extra


def _flatten(doc):
    from PIL import Image
    bg = Image.new("RGBA", doc.size, (255, 255, 255, 255))
    bg.alpha_composite(doc)
    return bg.convert("RGB")


def dump_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def generate(kind: str, count: int, seed: int, out: str, clean: bool = False,
             params: degrade.Degrade | None = None, today: str = DEFAULT_TODAY,
             start: int = 0, quiet: bool = True, licence_layouts=layouts.LAYOUTS) -> dict:
    params = params or degrade.Degrade()
    fonts = render.Fonts()
    if kind == "licence":
        fonts.require(layouts.LICENCE_FONTS)  # fail before the first item, naming the package
        unknown = set(licence_layouts) - set(layouts.LAYOUTS)
        if unknown or not licence_layouts:
            raise ValueError(f"unknown layout {', '.join(sorted(unknown))}: one of {', '.join(layouts.LAYOUTS)}")
    day = dt.date.fromisoformat(today)
    os.makedirs(out, exist_ok=True)
    items = []
    t0 = time.monotonic()
    for i in range(start, start + count):
        truth, ext, data, size, quad, info, extra = make_one(kind, i, seed, fonts, params, clean, day,
                                                             tuple(licence_layouts))
        stem = f"{kind}-{i}"
        for old in ("jpg", "png"):  # a re-run may switch an item between JPEG and PNG
            path = os.path.join(out, f"{stem}.{old}")
            if old != ext and os.path.exists(path):
                os.remove(path)
        with open(os.path.join(out, f"{stem}.{ext}"), "wb") as f:
            f.write(data)
        with open(os.path.join(out, f"{stem}.json"), "w", encoding="utf-8") as f:
            f.write(dump_json(truth))
        items.append({"index": i, "image": f"{stem}.{ext}", "truth": f"{stem}.json",
                      "width": size[0], "height": size[1], "quad": quad,
                      "degradation": info, "printed": extra})
        if not quiet:
            print(f"{stem}.{ext}", file=sys.stderr)
    manifest = {
        "generator": "docgen",
        "version": GENERATOR_VERSION,
        "kind": kind,
        "ocr_kind": OCR_KIND[kind],
        "seed": seed,
        "count": count,
        "clean": clean,
        "today": today,
        "params": vars(params),
        "field_keys": list(CONTRACT_KEYS[kind]),
        "items": items,
    }
    if kind == "licence":
        manifest["layouts"] = list(licence_layouts)
    path = os.path.join(out, "manifest.json")
    # one manifest per kind would clash in a shared folder: keep every kind's entry
    merged = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
            merged = old.get("kinds", {}) if isinstance(old, dict) else {}
        except (OSError, ValueError):
            merged = {}
    # a run that extends a set (--start) keeps the entries of the items made before
    prev = merged.get(kind)
    same = ("version", "seed", "clean", "today", "params", "layouts")
    if isinstance(prev, dict) and all(prev.get(k) == manifest.get(k) for k in same):
        made = {it["index"] for it in items}
        kept = [it for it in prev.get("items", []) if isinstance(it, dict) and it.get("index") not in made]
        if kept:
            manifest["items"] = sorted(kept + items, key=lambda it: it["index"])
            manifest["count"] = len(manifest["items"])
    merged[kind] = manifest
    with open(path, "w", encoding="utf-8") as f:
        f.write(dump_json({"generator": "docgen", "version": GENERATOR_VERSION, "kinds": merged}))
    manifest["elapsed_s"] = time.monotonic() - t0
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Degradation keys for --set: " + ", ".join(
                                     f.name for f in degrade.fields(degrade.Degrade)))
    ap.add_argument("--kind", required=True, choices=KINDS)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--clean", action="store_true", help="flat, undistorted scans (PNG) for unit-level checks")
    ap.add_argument("--start", type=int, default=0, help="first item index (to extend a set)")
    ap.add_argument("--strength", type=float, default=1.0,
                    help="multiplier on every degradation strength (0 = none, 1 = default, 2 = harsh)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one degradation parameter, e.g. --set blur=0 --set jpeg_min=80")
    ap.add_argument("--today", default=DEFAULT_TODAY, help="reference date for validity periods (YYYY-MM-DD)")
    ap.add_argument("--layout", default=",".join(layouts.LAYOUTS), metavar="NAME[,NAME...]",
                    help="licence layouts to draw from (default all: " + ", ".join(layouts.LAYOUTS) + ")")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.count < 0 or a.start < 0:
        ap.error("--count and --start must not be negative")
    chosen = tuple(n.strip() for n in a.layout.split(",") if n.strip())
    try:
        params = degrade.Degrade.parse(a.strength, a.set)
        dt.date.fromisoformat(a.today)
        unknown = set(chosen) - set(layouts.LAYOUTS)
        if unknown or not chosen:
            raise ValueError(f"--layout: unknown {', '.join(sorted(unknown)) or 'empty'}; "
                             f"one or more of {', '.join(layouts.LAYOUTS)}")
    except ValueError as e:
        ap.error(str(e))
    try:
        m = generate(a.kind, a.count, a.seed, a.out, a.clean, params, a.today, a.start, quiet=not a.verbose,
                     licence_layouts=chosen)
    except render.FontMissing as e:
        print(f"docgen: {e}", file=sys.stderr)
        return 2
    print(f"docgen: wrote {a.count} {a.kind} to {a.out} in {m['elapsed_s']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
