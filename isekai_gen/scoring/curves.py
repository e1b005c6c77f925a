"""Shot curves, ICL data efficiency and the batch-size table, from the scored runs.

A series is one (model, batch_size): its runs at different shot counts form a curve. The ICL data
efficiency of the ManyICL paper is the slope of the metric regressed on log10(N + 1), N = number
of demonstrations, with the line forced through the zero-shot point: slope = sum x (y - y0) /
sum x^2 over the runs with N > 0, x = log10(N + 1). Without a zero-shot run there is no slope.
"""

from __future__ import annotations

import math

POINT_KEYS = ("model", "batch_size", "shots", "value", "std", "ci95", "n_scored", "n_total", "n_unparsed", "source")


def _point(result: dict) -> dict:
    return {key: result[key] for key in POINT_KEYS}


def _series_key(result: dict) -> tuple:
    return tuple((result[k] is not None, result[k]) for k in ("model", "batch_size"))


def data_efficiency(points: list[tuple[int, float | None]]) -> dict:
    """Slope (metric points per tenfold more demonstrations) through the zero-shot point.

    A run that scored no item has no value (None) and is left out of the regression.
    """
    zero_shot = [value for shots, value in points if shots == 0]
    if not zero_shot:
        return {"slope": None, "zero_shot": None,
                "note": "no zero-shot (shots = 0) run, so the slope through the zero-shot point is undefined"}
    if zero_shot[0] is None:
        return {"slope": None, "zero_shot": None, "note": "the zero-shot run scored no item"}
    measured = [(shots, value) for shots, value in points if shots > 0 and value is not None]
    x = [math.log10(shots + 1) for shots, _ in measured]
    y = [value - zero_shot[0] for _, value in measured]
    if not x:
        return {"slope": None, "zero_shot": zero_shot[0], "note": "no run with shots > 0 scored an item"
                if any(shots > 0 for shots, _ in points) else "only the zero-shot run"}
    slope = sum(a * b for a, b in zip(x, y)) / sum(a * a for a in x)
    return {"slope": slope, "zero_shot": zero_shot[0], "note": None}


def shot_curves(results: list[dict]) -> tuple[list[dict], list[dict]] | tuple[None, None]:
    """``(curve points, data efficiency per series)`` when some series has two or more shot counts."""
    series: dict[tuple, list[dict]] = {}
    for result in results:
        if result["shots"] is not None:
            series.setdefault(_series_key(result), []).append(result)
    if not any(len(runs) >= 2 for runs in series.values()):
        return None, None
    curve, efficiency = [], []
    for key in sorted(series):
        runs = sorted(series[key], key=lambda r: r["shots"])
        curve.extend(_point(run) for run in runs)
        points = [(run["shots"], run["value"]) for run in runs]
        efficiency.append({"model": runs[0]["model"], "batch_size": runs[0]["batch_size"],
                           "shots": [shots for shots, _ in points], **data_efficiency(points)})
    return curve, efficiency


def batch_size_table(results: list[dict]) -> list[dict] | None:
    """Rows by batch size for each (model, shots) measured at two or more batch sizes."""
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        if result["batch_size"] is not None:
            key = tuple((result[k] is not None, result[k]) for k in ("model", "shots"))
            groups.setdefault(key, []).append(result)
    rows = [_point(run) for key in sorted(groups) if len(groups[key]) >= 2
            for run in sorted(groups[key], key=lambda r: r["batch_size"])]
    return rows or None
