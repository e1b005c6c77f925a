"""The near-duplicate search as it was before issue 15 (commit d61d294), kept only as the baseline
``bench/dedupe.py`` measures against: full diagonal blocks, and a cross-concept search that
stably sorts every later item for each concept. Not used by the package.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Unchanged since: the pair gathering and scanning the old search called.
from isekai_gen.filtering.dedup import _gathered_pairs, _scanned_pairs

BLOCK = 2048
CENTRE_SAMPLE = 256


def blocked_pairs_before(
    n: int,
    score: Callable[[slice, slice], np.ndarray],
    keep: Callable[[np.ndarray], np.ndarray],
    groups: np.ndarray | None = None,
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """All i < j with ``keep(score(i, j))``; with ``groups``, only pairs from different groups.

    Returns ``(pairs (m,2) int64, values (m,))`` in row-major order of (i, j).
    """
    found_pairs, found_values = [], []
    for r0 in range(0, n, block):
        rows = slice(r0, min(n, r0 + block))
        for c0 in range(r0, n, block):
            cols = slice(c0, min(n, c0 + block))
            values = score(rows, cols)
            mask = keep(values)
            if c0 == r0:
                mask = np.triu(mask, k=1)
            if groups is not None:
                mask &= groups[rows, None] != groups[None, cols]
            ii, jj = np.nonzero(mask)
            if len(ii):
                found_pairs.append(np.stack([ii + r0, jj + c0], axis=1))
                found_values.append(values[ii, jj])
    if not found_pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    pairs = np.concatenate(found_pairs).astype(np.int64)
    values = np.concatenate(found_values)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], values[order]


def cosine_pairs_before(emb: np.ndarray, threshold: float, groups: np.ndarray | None = None, block: int = BLOCK):
    """Exact: every pair with cosine >= ``threshold`` (rows of ``emb`` are unit vectors)."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    return blocked_pairs_before(len(emb), lambda r, c: emb[r] @ emb[c].T, lambda s: s >= threshold, groups, block)


def cross_group_cosine_pairs_before(emb: np.ndarray, threshold: float, groups: np.ndarray):
    """Exact: every pair from different groups with cosine >= ``threshold``, pruned losslessly.

    If cos(a, b) >= t then |a - b| <= r = sqrt(2 - 2t), so for any unit vector c the projections
    a.c and b.c differ by at most r. With c the mean direction of a's group, a only needs the
    vectors of later groups projecting to at least a.c - r. Members are taken in blocks from the
    lowest projection up, so the few outliers far from their group's centre are compared with
    many vectors, and the bulk of the group with few. Concepts whose images cluster (what CLIP
    gives) are thus cheap; without clusters it is the full product.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if not len(emb):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    reach = float(np.sqrt(max(0.0, 2.0 - 2.0 * threshold))) + 1e-4   # slack for float32 rounding
    labels, position = np.unique(groups, return_inverse=True)
    # The bound holds for any unit vector c; the mean direction of a few members prunes well.
    centres = np.stack([emb[np.nonzero(position == k)[0][:CENTRE_SAMPLE]].mean(axis=0) for k in range(len(labels))])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    projections = emb @ centres.T                                      # (n, groups)
    found, scan_rows = [], []
    for k, label in enumerate(labels):
        members = np.nonzero(position == k)[0]
        members = members[np.argsort(projections[members, k], kind="stable")]
        later = np.nonzero(position > k)[0]
        later = later[np.argsort(-projections[later, k], kind="stable")]
        # needed[i]: how many of ``later`` (best projection first) member i must be compared with;
        # non-increasing along ``members``.
        needed = np.searchsorted(-projections[later, k], reach - projections[members, k], side="right")
        start = 0
        while start < len(members) and needed[start] > 0:
            # A block shares its first member's candidates: extend it while that at most doubles
            # the work of each member, so fetching candidate rows is paid once per block.
            stop = np.searchsorted(-needed, -needed[start] / 2, side="right")
            stop = min(start + BLOCK, max(start + 1, stop))
            if needed[start] * 8 >= len(emb):
                scan_rows.append(members[start:stop])      # outliers: one shared scan below
            else:
                found += _gathered_pairs(emb, members[start:stop], np.sort(later[:needed[start]]), threshold)
            start = stop
    if scan_rows:
        found += _scanned_pairs(emb, np.concatenate(scan_rows), position, threshold)
    if not found:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    pairs = np.concatenate([p for p, _ in found]).astype(np.int64)
    values = np.concatenate([v for _, v in found])
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], values[order]
