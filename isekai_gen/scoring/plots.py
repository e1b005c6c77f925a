"""PNG plots of the metric against shots or batch size, with bootstrap-std error bars."""

from __future__ import annotations

import io

import numpy as np


def _log10_plus_one(x):
    """log10(x + 1), mirrored for negative x so that axis margins left of 0 stay defined."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log10(np.abs(x) + 1.0)


def _inverse_log10_plus_one(y):
    y = np.asarray(y, dtype=float)
    return np.sign(y) * (10.0 ** np.abs(y) - 1.0)


def plot_points(points: list[dict], x_key: str, series_keys: tuple[str, ...], metric: str) -> bytes:
    """One line per series (e.g. per model and batch size); x on a log10(x + 1) axis."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(6.4, 4.2), dpi=110)
    axes = figure.subplots()
    series: dict[tuple, list[dict]] = {}
    for point in points:
        series.setdefault(tuple(point[k] for k in series_keys), []).append(point)
    for key, members in series.items():
        members = sorted(members, key=lambda p: p[x_key])
        label = ", ".join(f"{k} {v}" for k, v in zip(series_keys, key) if v is not None) or "predictions"
        errors = [p["std"] or 0.0 for p in members]
        values = np.array([p["value"] for p in members], dtype=float)  # a run that scored nothing: NaN, no marker
        axes.errorbar([p[x_key] for p in members], values, yerr=errors,
                      marker="o", capsize=3, label=label)
    axes.set_xscale("function", functions=(_log10_plus_one, _inverse_log10_plus_one))
    axes.margins(x=0.06)
    ticks = sorted({p[x_key] for p in points})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.set_xlabel({"shots": "number of demonstrations (log10(N+1) axis)", "batch_size": "queries per request"}[x_key])
    axes.set_ylabel(f"{metric} (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
