#!/usr/bin/env python3
"""Time RapidOCR (rapidocr-onnxruntime) on a list of images, for the OCR benchmark.

Run by `agent/benches/ocr_accuracy.rs` with the Python that has the package installed:

    python rapidocr_times.py --list FILE [--threads N] [--det-limit-side-len N]
                             [--det-limit-type max|min]

FILE holds one image path per line. The models are loaded and the first image is run once
before timing; then every image is timed from its path to the recognised lines (decode,
detection, classification, recognition), like the daemon's `total` without field
extraction. Prints one JSON object on stdout:

    {"version": "1.4.4", "threads": 2, "models": {"<file>": "<sha256>", ...},
     "load_ms": 812.3, "ms": [<per image, in list order>], "lines": [<lines per image>]}

Exit codes: 0 done, 1 the package or an image is missing, 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", required=True, type=Path, help="file with one image path per line")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--det-limit-side-len", type=int, default=960)
    ap.add_argument("--det-limit-type", choices=["max", "min"], default="max")
    args = ap.parse_args()

    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        print(f"rapidocr-onnxruntime is not installed: {e}", file=sys.stderr)
        return 1
    try:
        images = [Path(p) for p in args.list.read_text().splitlines() if p.strip()]
    except OSError as e:
        print(f"cannot read the image list: {e}", file=sys.stderr)
        return 1
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        print(f"missing images: {', '.join(missing[:5])}", file=sys.stderr)
        return 1
    if not images:
        print("the image list is empty", file=sys.stderr)
        return 2

    t = time.perf_counter()
    engine = RapidOCR(
        intra_op_num_threads=args.threads,
        inter_op_num_threads=1,
        det_limit_side_len=args.det_limit_side_len,
        det_limit_type=args.det_limit_type,
    )
    load_ms = (time.perf_counter() - t) * 1000.0
    engine(str(images[0]))  # warm-up, not timed

    ms: list[float] = []
    lines: list[int] = []
    for p in images:
        t = time.perf_counter()
        result, _ = engine(str(p))
        ms.append((time.perf_counter() - t) * 1000.0)
        lines.append(len(result or []))

    models_dir = Path(sys.modules["rapidocr_onnxruntime"].__file__).parent / "models"
    json.dump(
        {
            "version": metadata.version("rapidocr-onnxruntime"),
            "threads": args.threads,
            "models": {m.name: sha256(m) for m in sorted(models_dir.glob("*.onnx"))},
            "load_ms": round(load_ms, 1),
            "ms": [round(v, 2) for v in ms],
            "lines": lines,
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
