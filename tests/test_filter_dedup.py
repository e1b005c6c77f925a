"""Near-duplicate search against brute force, and deterministic union-find survivors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from isekai_gen.filtering.dedup import (
    cluster_survivors, cosine_pairs, cross_group_cosine_pairs, equal_pairs, phash_pairs, phash_to_int,
)


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _planted_embeddings(seed=0, n=300, d=32, twins=12):
    """Random unit vectors plus ``twins`` noisy copies (cosine ~0.99) of random rows."""
    rng = np.random.default_rng(seed)
    emb = _unit(rng, n, d)
    sources = rng.choice(n, size=twins, replace=False)
    copies = emb[sources] + 0.02 * rng.standard_normal((twins, d)).astype(np.float32)
    emb = np.concatenate([emb, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    planted = {(int(s), n + k) for k, s in enumerate(sources)}
    return emb, planted


def _brute_force(emb, threshold, groups=None):
    sims = emb @ emb.T
    return {(i, j) for i, j in itertools.combinations(range(len(emb)), 2)
            if sims[i, j] >= threshold and (groups is None or groups[i] != groups[j])}


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_cosine_pairs_match_brute_force_across_blocks(block):
    emb, planted = _planted_embeddings()
    pairs, values = cosine_pairs(emb, 0.95, block=block)
    found = {tuple(map(int, p)) for p in pairs}
    assert found == _brute_force(emb, 0.95) and planted <= found
    assert np.all(values >= 0.95) and len(found) == len(pairs)
    groups = np.arange(len(emb)) % 3
    pairs, _ = cosine_pairs(emb, 0.95, groups=groups, block=block)
    assert {tuple(map(int, p)) for p in pairs} == _brute_force(emb, 0.95, groups)


def test_phash_pairs_match_brute_force():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, size=120, dtype=np.uint64)
    hashes[100:110] = hashes[:10] ^ np.uint64(0b1011)        # 3 bits away
    hashes[110:] = hashes[10:20] ^ np.uint64(0xFFF)          # 12 bits away
    pairs, distances = phash_pairs(hashes, 10, block=16)
    expected = {(i, j) for i, j in itertools.combinations(range(120), 2)
                if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 10}
    assert {tuple(map(int, p)) for p in pairs} == expected
    assert {(k, 100 + k) for k in range(10)} <= expected and not {(k, 100 + k) for k in range(10, 20)} & expected
    assert phash_to_int(["00000000000000ff"]).tolist() == [255]
    assert set(distances.tolist()) <= set(range(11))


def test_equal_pairs_and_cross_group_filter():
    keys = ["a", "b", "a", "c", "a", "b"]
    pairs, _ = equal_pairs(keys)
    assert pairs.tolist() == [[0, 2], [0, 4], [1, 5], [2, 4]]
    groups = np.array([0, 0, 0, 1, 1, 1])
    pairs, _ = equal_pairs(keys, groups)
    assert pairs.tolist() == [[0, 4], [1, 5], [2, 4]]


@pytest.mark.parametrize("clustered", [True, False])
def test_cross_group_search_is_exact(clustered):
    """Pruned cross-group search equals brute force, with tight concept clusters (pruning bites)
    and without (pruning keeps everything)."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), 60)
    emb = _unit(rng, len(groups), 48)
    if clustered:
        centres = _unit(rng, 6, 48)
        emb = 0.8 * centres[groups] + 0.6 * emb
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    planted = set()
    for source in range(10):                                   # group 0 rows, copied into groups 1-5
        target = 60 * (1 + source % 5) + 30 + source
        emb[target] = emb[source] + 0.01 * rng.standard_normal(48)
        emb[target] /= np.linalg.norm(emb[target])
        planted.add((source, target))
    pairs, values = cross_group_cosine_pairs(emb, 0.95, groups)
    found = {tuple(map(int, p)) for p in pairs}
    assert found == _brute_force(emb, 0.95, groups)
    assert planted <= found and np.all(values >= 0.95)
    assert cross_group_cosine_pairs(np.zeros((0, 48)), 0.95, np.zeros(0, dtype=int))[0].shape == (0, 2)


def test_cluster_survivor_is_best_ranked_and_order_independent():
    # Chain 0-1-2 and pair 3-4; item 5 alone. Lower rank = better.
    rank = np.array([2, 0, 5, 4, 3, 1])
    pairs = np.array([[0, 1], [1, 2], [3, 4]])
    survivors = cluster_survivors(6, pairs, rank)
    assert survivors.tolist() == [1, 1, 1, 4, 4, 5]
    assert cluster_survivors(6, pairs[::-1, ::-1].copy(), rank).tolist() == survivors.tolist()


@pytest.mark.parametrize("max_distance, step", [(10, 1 << 22), (7, 1 << 22), (10, 1000)])
def test_multi_index_phash_search_equals_exhaustive(monkeypatch, max_distance, step):
    """Above MIH_MIN_ITEMS the multi-index search runs; it must find exactly the exhaustive pairs,
    including pairs at exactly the distance limit, clustered buckets (many equal hashes) and
    the bounded-memory stepping through large buckets."""
    from isekai_gen.filtering import dedup

    monkeypatch.setattr(dedup, "MIH_STEP_ENTRIES", step)
    rng = np.random.default_rng(3)
    n = dedup.MIH_MIN_ITEMS + 500
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64).copy()
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    for k in range(200):       # planted neighbours at every distance 0..13, bits spread over chunks
        flips = rng.choice(64, size=k % 14, replace=False)
        hashes[n - 1 - k] = hashes[k] ^ np.bitwise_or.reduce(bits[flips], initial=np.uint64(0))
    hashes[1000:1150] = hashes[999]                           # one crowded bucket in every chunk
    groups = rng.integers(0, 5, size=n)
    for group_arg in (None, groups):
        fast = phash_pairs(hashes, max_distance, group_arg)
        slow = dedup.phash_pairs_exhaustive(hashes, max_distance, group_arg)
        assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    found = {tuple(map(int, p)) for p in phash_pairs(hashes, max_distance)[0]}
    planted = {(k, n - 1 - k): k % 14 for k in range(200)}
    assert {p for p, d in planted.items() if d <= max_distance} <= found
    assert not {p for p, d in planted.items() if d > max_distance} & found
    assert {(999, j) for j in range(1000, 1150)} <= found
