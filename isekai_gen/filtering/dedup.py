"""Near-duplicate search: exact sha256, pHash Hamming distance, embedding cosine; union-find clusters.

Every search is exact: blocked matrix products (never all n*n at once), and across concepts a
lossless pruning bound on top (``cross_group_cosine_pairs``); ``bench/dedupe.py`` measures both.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import numpy as np

BLOCK = 2048
DIAGONAL_STRIP = 512
CENTRE_SAMPLE = 256
# Multi-index hashing of 64-bit pHashes: 4 chunks of 16 bits (one 65,536-entry bucket table each).
MIH_CHUNKS, MIH_BITS = 4, 16
# Below this many hashes the exhaustive blocked search is as fast as building the bucket tables.
MIH_MIN_ITEMS = 4096
# Expanded candidate entries per step of the multi-index search (bounds its memory, ~100 MB).
MIH_STEP_ENTRIES = 1 << 22


def _blocked_pairs(
    n: int,
    score: Callable[[slice, slice], np.ndarray],
    keep: Callable[[np.ndarray], np.ndarray],
    groups: np.ndarray | None = None,
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """All i < j with ``keep(score(i, j))``; with ``groups``, only pairs from different groups.

    Each block pair is scored once; a diagonal block is scored as a staircase of row strips that
    start at the diagonal, so only ``DIAGONAL_STRIP``-sized squares are scored twice (scoring the
    full diagonal squares was ~37% redundant work at 5,000 items).
    Returns ``(pairs (m,2) int64, values (m,))`` in row-major order of (i, j).
    """
    found_pairs, found_values = [], []

    def collect(rows: slice, cols: slice, diagonal: bool) -> None:
        values = score(rows, cols)
        mask = keep(values)
        if diagonal:   # the strip's leading square holds the diagonal: keep its upper triangle
            width = rows.stop - rows.start
            mask[:, :width] = np.triu(mask[:, :width], k=1)
        if groups is not None:
            mask &= groups[rows, None] != groups[None, cols]
        ii, jj = np.nonzero(mask)
        if len(ii):
            found_pairs.append(np.stack([ii + rows.start, jj + cols.start], axis=1))
            found_values.append(values[ii, jj])

    strip = max(1, min(block, DIAGONAL_STRIP))
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        for s0 in range(r0, r1, strip):
            collect(slice(s0, min(r1, s0 + strip)), slice(s0, r1), diagonal=True)
        for c0 in range(r1, n, block):
            collect(slice(r0, r1), slice(c0, min(n, c0 + block)), diagonal=False)
    if not found_pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    pairs = np.concatenate(found_pairs).astype(np.int64)
    values = np.concatenate(found_values)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], values[order]


def cosine_pairs(emb: np.ndarray, threshold: float, groups: np.ndarray | None = None, block: int = BLOCK):
    """Exact: every pair with cosine >= ``threshold`` (rows of ``emb`` are unit vectors)."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    return _blocked_pairs(len(emb), lambda r, c: emb[r] @ emb[c].T, lambda s: s >= threshold, groups, block)


def phash_to_int(phashes) -> np.ndarray:
    return np.array([int(h, 16) for h in phashes], dtype=np.uint64)


def phash_pairs(hashes: np.ndarray, max_distance: int, groups: np.ndarray | None = None, block: int = BLOCK):
    """Exact: every pair of 64-bit hashes within Hamming distance ``max_distance``.

    Large sets use multi-index hashing (Norouzi, Punjani & Fleet, "Fast exact search in Hamming
    space with multi-index hashing", TPAMI 2014): split each hash into 4 chunks of 16 bits; by
    the pigeonhole principle two hashes within distance d agree to within floor(d/4) bits on at
    least one chunk, so only pairs found by probing each chunk's buckets within that radius are
    candidates, each then checked on the full 64 bits. Recall is exactly that of the exhaustive
    search (tests compare both). Hand-written in numpy: faiss' IndexBinaryMultiHash range search
    measured 7x slower than faiss' own exhaustive flat index at 40,000 hashes.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    radius = max_distance // MIH_CHUNKS
    if len(hashes) < MIH_MIN_ITEMS or radius > 2:   # radius 3 probes 697 buckets per chunk: no gain
        return phash_pairs_exhaustive(hashes, max_distance, groups, block)
    return _multi_index_pairs(hashes, max_distance, radius, groups)


def phash_pairs_exhaustive(hashes: np.ndarray, max_distance: int, groups: np.ndarray | None = None,
                           block: int = BLOCK):
    """Every pair compared (blocked): the reference the multi-index search must equal."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    return _blocked_pairs(
        len(hashes), lambda r, c: np.bitwise_count(hashes[r, None] ^ hashes[None, c]).astype(np.int64),
        lambda d: d <= max_distance, groups, block,
    )


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = np.arange(1 << bits, dtype=np.int64)
    return masks[np.bitwise_count(masks) <= radius]


def _multi_index_pairs(hashes: np.ndarray, max_distance: int, radius: int, groups):
    n = len(hashes)
    items = np.arange(n, dtype=np.int64)
    masks = _flip_masks(MIH_BITS, radius)
    codes = []
    for chunk in range(MIH_CHUNKS):
        values = ((hashes >> np.uint64(chunk * MIH_BITS)) & np.uint64((1 << MIH_BITS) - 1)).astype(np.int64)
        order = np.argsort(values, kind="stable")
        counts = np.bincount(values, minlength=1 << MIH_BITS)
        offsets = np.cumsum(counts) - counts
        for mask in masks:
            target = values ^ mask
            sizes = counts[target]
            # Bucket lists expanded in steps of rows, so memory stays bounded on clustered hashes.
            ends = np.cumsum(sizes)
            start = 0
            while start < n:
                stop = max(start + 1, int(np.searchsorted(ends, ends[start] - sizes[start] + MIH_STEP_ENTRIES)))
                stop = min(n, stop)
                step_sizes = sizes[start:stop]
                total = int(step_sizes.sum())
                if total:
                    rows = np.repeat(items[start:stop], step_sizes)
                    first = np.repeat(offsets[target[start:stop]] - (np.cumsum(step_sizes) - step_sizes), step_sizes)
                    cols = order[first + np.arange(total)]
                    keep = rows < cols
                    rows, cols = rows[keep], cols[keep]
                    if groups is not None:
                        keep = groups[rows] != groups[cols]
                        rows, cols = rows[keep], cols[keep]
                    close = np.bitwise_count(hashes[rows] ^ hashes[cols]) <= max_distance
                    codes.append(rows[close] * n + cols[close])
                start = stop
    if not codes:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    unique = np.unique(np.concatenate(codes))      # a pair close on several chunks is found several times
    pairs = np.stack([unique // n, unique % n], axis=1)
    return pairs, np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]]).astype(np.int64)


def equal_pairs(keys: list[str], groups: np.ndarray | None = None):
    """Every pair with identical keys (e.g. sha256); with ``groups``, only pairs across groups."""
    holders: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        holders[key].append(i)
    pairs = [
        (a, b) for members in holders.values() for x, a in enumerate(members) for b in members[x + 1:]
        if groups is None or groups[a] != groups[b]
    ]
    array = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return array, np.ones(len(array))


def _ordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def _gathered_pairs(emb: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float):
    """(pairs, cosines) of ``rows`` x ``cols`` items with cosine >= ``threshold``."""
    found = []
    for c0 in range(0, len(cols), BLOCK):
        col_items = cols[c0:c0 + BLOCK]
        sims = emb[rows] @ emb[col_items].T
        ii, jj = np.nonzero(sims >= threshold)
        found.append((_ordered(rows[ii], col_items[jj]), sims[ii, jj]))
    return found


def _scanned_pairs(emb: np.ndarray, rows: np.ndarray, position: np.ndarray, threshold: float):
    """Like ``_gathered_pairs`` against every item of a later group, scanning ``emb`` in
    contiguous slices: gathering most rows of a large matrix costs more than multiplying."""
    found = []
    step = 8 * BLOCK
    for r0 in range(0, len(rows), BLOCK):
        row_items = rows[r0:r0 + BLOCK]
        row_emb = emb[row_items]
        for c0 in range(0, len(emb), step):
            sims = row_emb @ emb[c0:c0 + step].T
            later = position[c0:c0 + step][None, :] > position[row_items][:, None]
            ii, jj = np.nonzero((sims >= threshold) & later)
            found.append((_ordered(row_items[ii], jj + c0), sims[ii, jj]))
    return found


def cross_group_cosine_pairs(emb: np.ndarray, threshold: float, groups: np.ndarray):
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
    # A member needing a comparison with at least this many later items is scanned, not gathered.
    scan_count = max(1, -(-len(emb) // 8))
    found, scan_rows = [], []
    for k, label in enumerate(labels):
        members = np.nonzero(position == k)[0]
        members = members[np.argsort(projections[members, k], kind="stable")]
        later_mask = position > k
        later_projection = projections[later_mask, k]
        if not len(later_projection):
            break
        # Members projecting below ``cutoff`` + reach need >= scan_count later items: outliers,
        # compared in one shared scan. Only the later items that can match the rest are selected
        # and sorted, so the work grows with the candidates, not with every later item per group.
        cutoff = (np.partition(later_projection, len(later_projection) - scan_count)[len(later_projection) - scan_count]
                  if len(later_projection) >= scan_count else -np.inf)
        outliers = int(np.searchsorted(projections[members, k] - reach, cutoff, side="right"))
        scan_rows.append(members[:outliers])
        members = members[outliers:]
        if not len(members):
            continue
        bound = projections[members[0], k] - reach
        candidates = np.nonzero(later_mask)[0][later_projection >= bound]
        candidates = candidates[np.argsort(-projections[candidates, k], kind="stable")]
        # needed[i]: how many of ``candidates`` (best projection first) member i must be compared
        # with; non-increasing along ``members``.
        needed = np.searchsorted(-projections[candidates, k], reach - projections[members, k], side="right")
        start = 0
        while start < len(members) and needed[start] > 0:
            # A block shares its first member's candidates: extend it while that at most doubles
            # the work of each member, so fetching candidate rows is paid once per block.
            stop = np.searchsorted(-needed, -needed[start] / 2, side="right")
            stop = min(start + BLOCK, max(start + 1, stop))
            found += _gathered_pairs(emb, members[start:stop], np.sort(candidates[:needed[start]]), threshold)
            start = stop
    scan_rows = np.concatenate(scan_rows) if scan_rows else np.zeros(0, dtype=np.int64)
    if len(scan_rows):
        found += _scanned_pairs(emb, scan_rows, position, threshold)
    if not found:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    pairs = np.concatenate([p for p, _ in found]).astype(np.int64)
    values = np.concatenate([v for _, v in found])
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], values[order]


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_survivors(n: int, pairs: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each item, the item that survives its duplicate cluster (itself when it survives).

    ``rank[i]`` is i's position in best-first order (unique), so the survivor is deterministic.
    """
    forest = UnionFind(n)
    for a, b in pairs:
        forest.union(int(a), int(b))
    best: dict[int, int] = {}
    for i in range(n):
        root = forest.find(i)
        if root not in best or rank[i] < rank[best[root]]:
            best[root] = i
    return np.array([best[forest.find(i)] for i in range(n)], dtype=np.int64)
