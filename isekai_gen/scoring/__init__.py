"""Scorer for model prediction files: parsing, metrics, bootstrap intervals, shot curves, reports.

    from isekai_gen.scoring import score, write_report, format_summary
    report = score("benchmarks/UCMerced/test.csv", ["UCMerced_210shot_GPT4o_50.pkl"], parse_failures="manyicl")
    print(format_summary(report))
    write_report(report, "score-out")

The functions load lazily so that ``isekai-gen --help`` does not import numpy; the option
choices (``FORMATS``, ``POLICIES``) live in the dependency-free ``choices`` module.
"""

from .choices import FORMATS, POLICIES

__all__ = ["score", "write_report", "format_summary", "FORMATS", "POLICIES"]


def __getattr__(name):
    if name == "score":
        from .api import score

        return score
    if name in ("write_report", "format_summary"):
        from . import writers

        return getattr(writers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
