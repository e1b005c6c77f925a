"""Group-aware stratified sampling of demo and test items with a nested demo order.

Determinism: items are visited in a random order drawn over the pool sorted by ``source_path``,
so file-system listing order never matters; all randomness comes from one ``numpy`` generator
seeded with the split seed.

Groups (a lesion, a patient) never straddle the sides. Groups holding items of only one side's
source splits stay on that side. Groups holding items of both ("contested", e.g. every image of
UCMerced, which has no official split) are visited in random order and given to the test side
only while it still lacks candidates for some class; every other contested group feeds demo.
Within a side, each sampling cell (a class, or a finding's positive/negative cell for CheXpert)
takes its first k candidates in one random item order; scarce cells pick first so that items
eligible for several cells (multi-label) go where they are needed.

By content (``content.ContentScreen``): each draw is reviewed and drawn again without what the
review leaves out (identical files, multi-label photos, unusable images, near-duplicates on
request); contested groups keep one offer order across redraws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .recipe import Pool, Recipe


@dataclass
class Selection:
    """Chosen pool positions per side: ``demo``/``test`` are lists of (stratum index, rank, position)."""

    demo: list[tuple[int, int, int]]
    test: list[tuple[int, int, int]]

    def demo_order(self) -> list[tuple[int, int, int]]:
        # Nested: rank 0 of every cell, then rank 1, ... so the first k rows per class (and the
        # first k * cells rows overall) are exactly the k-per-class subset.
        return sorted(self.demo, key=lambda pick: (pick[1], pick[0]))

    def test_order(self) -> list[tuple[int, int, int]]:
        return sorted(self.test)


def canonical_order(pool: Pool, source: Path) -> np.ndarray:
    """Pool positions sorted by source path; duplicate items or output names are an error.

    Sampling walks this order, never the order the adapter happened to read the files in.
    """
    _sorted_unique(pool, "file_name", source)
    return _sorted_unique(pool, "source_path", source)


def _sorted_unique(pool: Pool, column: str, source: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Arrow sorts strings in C++: ~20 ms for Camelyon17's 455k paths (numpy object sort: 5x more).
    values = pa.array(pool.frame[column])
    order = pc.sort_indices(values).to_numpy()
    if len(order) > 1:
        ordered = values.take(pa.array(order))
        repeated = np.flatnonzero(pc.equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False))
        if repeated.size:
            raise UserError(f"{source}: {column} {ordered[int(repeated[0])].as_py()!r} occurs twice")
    return order


def select(pool: Pool, recipe: Recipe, seed: int, source: Path, screen=None) -> Selection:
    """Pick ``recipe.demo_per_class`` / ``test_per_class`` items per cell of ``pool``.

    With a ``screen`` (``content.ContentScreen``), each draw is reviewed by content and drawn again
    without the items it leaves out, until it stands: a replacement is the next candidate of the
    same seeded order, so only drawn items are ever read.
    """
    import pandas as pd

    frame = pool.frame
    rng = np.random.default_rng(seed)
    item_order = canonical_order(pool, source)[rng.permutation(len(frame))]
    split = frame["source_split"]
    demo_ok = split.isin(recipe.demo_splits).to_numpy()
    test_ok = split.isin(recipe.test_splits).to_numpy()
    masks = recipe.stratum_masks(pool.labels)
    group_codes, groups = pd.factorize(frame["group"], sort=True)
    sharing = _GroupSharing(group_codes, len(groups), demo_ok, test_ok, rng)
    excluded = np.zeros(len(frame), dtype=bool)
    if screen is not None:
        screen.rank = np.empty(len(frame), dtype=np.int64)
        screen.rank[item_order] = np.arange(len(frame))
    while True:
        on_test_side = sharing.test_groups(masks, recipe.test_per_class, excluded)[group_codes]
        note = f", after leaving out {int(excluded.sum())} by content" if excluded.any() else ""
        test = _fill(test_ok & on_test_side & ~excluded, masks, recipe.test_per_class, item_order, recipe, "test",
                     source, note)
        demo = _fill(demo_ok & ~on_test_side & ~excluded, masks, recipe.demo_per_class, item_order, recipe, "demo",
                     source, note)
        if screen is None:
            return Selection(demo=demo, test=test)
        left_out = screen.review({"demo": [p for _, _, p in demo], "test": [p for _, _, p in test]})
        if not left_out:
            return Selection(demo=demo, test=test)
        excluded[left_out] = True


class _GroupSharing:
    """Which groups belong to the test side. Contested groups are offered in one random order, fixed
    up front, so a redraw after content exclusions gives the same groups as far as they suffice."""

    def __init__(self, codes, n_groups, demo_ok, test_ok, rng):
        self.codes, self.n_groups, self.test_ok = codes, n_groups, test_ok
        has_demo = np.bincount(codes[demo_ok], minlength=n_groups) > 0
        has_test = np.bincount(codes[test_ok], minlength=n_groups) > 0
        self.contested = has_demo & has_test
        self.uncontested_test = has_test & ~has_demo
        self.contested_ids = np.flatnonzero(self.contested)
        self.offer_order = rng.permutation(self.contested_ids.size) if self.contested_ids.size else None

    def test_groups(self, masks, per_class, excluded) -> np.ndarray:
        """Boolean per group: does it belong to the test side?"""
        codes, test_ok = self.codes, self.test_ok & ~excluded
        test_groups = self.uncontested_test.copy()
        need = per_class - masks[test_ok & test_groups[codes]].sum(axis=0)
        if self.contested_ids.size == 0 or (need <= 0).all():
            return test_groups
        # Test candidates per contested group and cell, then hand out groups in the fixed order.
        contested_rows = test_ok & self.contested[codes]
        position = np.full(self.n_groups, -1)
        position[self.contested_ids] = np.arange(self.contested_ids.size)
        counts = np.zeros((self.contested_ids.size, masks.shape[1]), dtype=np.int64)
        np.add.at(counts, position[codes[contested_rows]], masks[contested_rows].astype(np.int64))
        for index in self.offer_order:
            if ((need > 0) & (counts[index] > 0)).any():
                test_groups[self.contested_ids[index]] = True
                need = need - counts[index]
                if (need <= 0).all():
                    break
        return test_groups


def _fill(eligible, masks, per_class, item_order, recipe: Recipe, side: str, source: Path, note: str = ""):
    """Take ``per_class`` items per cell among ``eligible``, in ``item_order``; scarce cells first."""
    strata = recipe.strata
    ordered_masks = masks[item_order] & eligible[item_order][:, None]
    available = ordered_masks.sum(axis=0)
    taken = np.zeros(len(item_order), dtype=bool)  # indexed like item_order
    picks = []
    for cell in sorted(range(len(strata)), key=lambda s: (available[s], s)):
        candidates = np.flatnonzero(ordered_masks[:, cell] & ~taken)
        if candidates.size < per_class:
            raise UserError(
                f"{source}: {recipe.title} class {strata[cell]!r} needs {per_class} {side} images, "
                f"{candidates.size} available (source splits {', '.join(getattr(recipe, side + '_splits'))}"
                f"{', after keeping test groups out of demo' if side == 'demo' else ''}{note})"
            )
        chosen = candidates[:per_class]
        taken[chosen] = True
        picks.extend((cell, rank, int(item_order[i])) for rank, i in enumerate(chosen))
    return picks
