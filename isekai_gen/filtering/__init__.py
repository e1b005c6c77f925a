"""CLIP scoring, filter rules and near-duplicate removal for generated concept images.

``run_filter(config, out_dir, catalog)`` is the stage; ``calibrate(...)`` prints the score
distributions a user needs to choose thresholds. See ``stage.py`` for the files it writes and
``rules.REJECT_REASONS`` for the reasons an image can be rejected.
"""

from .rules import REJECT_REASONS
from .stage import FilterResult, calibrate, run_filter

__all__ = ["REJECT_REASONS", "FilterResult", "calibrate", "run_filter"]
