"""The dataset card's paragraph on the contamination probes recorded in a build folder (``OUT/probes/``)."""

from __future__ import annotations

from pathlib import Path

from ..fileio import read_json


def probe_card_text(build_dir: Path) -> str:
    """The dataset card's paragraph on the probes recorded in ``OUT/probes/``."""
    files = sorted(Path(build_dir).glob("probes/*.json"))
    if not files:
        return ("No contamination probe has been run on this build (`isekai-gen catalog probe OUT --model ...` "
                "asks a model whether it already knows the concepts).")
    rows = []
    for path in files:
        probe_summary = read_json(path)
        known = ", ".join(probe_summary["known"]) or "none"
        rows.append(f"| {probe_summary['model']} | {' + '.join(probe_summary['kinds'])} | "
                    f"{probe_summary['known_share']:.0%} | {known} |")
    return "\n".join(["Contamination probes (`isekai-gen catalog probe`): the share of invented concepts each model "
                      "already knew.", "", "| model | probe | known share | known concepts |", "|---|---|---|---|",
                      *rows])
