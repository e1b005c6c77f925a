"""Benchmark: embedding near-duplicate search at dataset scale (not a test).

200,000 unit 768-d embeddings in 40 concepts of 5,000 (each concept a cloud around its own
centre, mean in-concept cosine ~0.56, like CLIP image embeddings of one concept), with planted
near-duplicate pairs inside concepts (cosine ~0.98) and a few across concepts.

- in-concept: our exact blocked search (``cosine_pairs``) per concept, every planted pair must
  be found; baseline: naive pairwise dot products in Python, timed on a subsample and
  extrapolated to the same number of pairs;
- cross-concept: our exact search with lossless pruning (``cross_group_cosine_pairs``), its
  recall on the planted cross-concept pairs (1.0 when correct), against the plain exact blocked
  product over all 200,000 vectors, timed on a subsample and extrapolated.

Then the scaling table (issue 15): each layer at three sizes, ours against the implementation
before it (``bench/baselines/dedup_before.py``; the exhaustive pHash search), side by side, with
the scaling exponent k of time ~ n^k fitted over the three sizes:
- cross-concept pHash layer: multi-index hashing vs exhaustive, exact equality of the pairs;
- cross-concept cosine: candidate-only bookkeeping vs sorting every later item per concept;
- in-concept cosine: staircase diagonal blocks vs full diagonal blocks.

Run: python bench/dedupe.py [--concepts 40 --per-concept 5000 --dim 768] [--scaling-only]
     [--scales 10,20,40 --scale-per-concept 2500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from baselines.dedup_before import cosine_pairs_before, cross_group_cosine_pairs_before
from isekai_gen.filtering.dedup import cosine_pairs, cross_group_cosine_pairs, phash_pairs, phash_pairs_exhaustive

THRESHOLD = 0.95


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_data(concepts: int, per_concept: int, dim: int, in_pairs: int, cross_pairs: int, seed: int = 0):
    """Embeddings (concept-major), concept of each row, planted in-concept and cross-concept pairs."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((concepts, dim), dtype=np.float32))
    emb = np.empty((concepts * per_concept, dim), dtype=np.float32)
    for c in range(concepts):
        noise = _unit(rng.standard_normal((per_concept, dim), dtype=np.float32))
        emb[c * per_concept:(c + 1) * per_concept] = _unit(0.75 * centres[c] + 0.66 * noise)
    groups = np.repeat(np.arange(concepts), per_concept)

    def plant(source: int, target: int) -> tuple[int, int]:
        # Noise of norm 0.2: cosine ~0.98 to the source.
        emb[target] = _unit(emb[source] + 0.2 * _unit(rng.standard_normal(dim, dtype=np.float32)))
        return (min(source, target), max(source, target))

    rows = rng.permutation(len(emb))
    planted_in, planted_cross, used = set(), set(), set()
    for source in rows[:in_pairs]:
        c = source // per_concept
        target = c * per_concept + rng.integers(per_concept)
        if target != source and target not in used and source not in used:
            planted_in.add(plant(source, target))
            used.update((source, target))
    for source in rows[in_pairs:in_pairs + cross_pairs]:
        target = int(rng.integers(len(emb)))
        if groups[target] != groups[source] and target not in used and source not in used:
            planted_cross.add(plant(source, target))
            used.update((source, target))
    return emb, groups, planted_in, planted_cross


def in_concept_search(emb, concepts, per_concept):
    found = set()
    for c in range(concepts):
        start = c * per_concept
        pairs, _ = cosine_pairs(emb[start:start + per_concept], THRESHOLD)
        found.update((int(a) + start, int(b) + start) for a, b in pairs)
    return found


def naive_seconds_per_pair(emb, sample: int) -> float:
    """Baseline: one dot product per pair in a Python double loop."""
    vectors = list(emb[:sample])
    start = time.perf_counter()
    hits = 0
    for i in range(sample):
        for j in range(i + 1, sample):
            if float(np.dot(vectors[i], vectors[j])) >= THRESHOLD:
                hits += 1
    return (time.perf_counter() - start) / (sample * (sample - 1) / 2)


def _exponent(sizes, seconds) -> float:
    """Least-squares slope of log(time) on log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(seconds, 1e-9)), 1)[0])


def _best_of(repeats: int, run):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def _planted_phashes(n: int, concepts: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random 64-bit hashes with 1% planted neighbours 1-10 bits away, some across concepts."""
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64).copy()
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    for k in range(n // 100):
        flips = rng.choice(64, size=1 + k % 10, replace=False)
        hashes[rng.integers(n)] = hashes[k] ^ np.bitwise_or.reduce(bits[flips], initial=np.uint64(0))
    return hashes, rng.integers(0, concepts, size=n)


def scaling(scales: list[int], per_concept: int, dim: int, repeats: int) -> None:
    rows = {"cross-concept pHash (MIH vs exhaustive)": [], "cross-concept cosine (candidates vs sort all)": [],
            "in-concept cosine (staircase vs full diagonal)": []}
    sizes = [c * per_concept for c in scales]
    for concepts, n in zip(scales, sizes):
        rng = np.random.default_rng(concepts)
        hashes, groups = _planted_phashes(n, concepts, rng)
        ours, found = _best_of(repeats, lambda: phash_pairs(hashes, 10, groups))
        base, expected = _best_of(1, lambda: phash_pairs_exhaustive(hashes, 10, groups))
        if not (np.array_equal(found[0], expected[0]) and np.array_equal(found[1], expected[1])):
            raise SystemExit(f"FAILED: multi-index pHash pairs differ from the exhaustive search at n={n}")
        rows["cross-concept pHash (MIH vs exhaustive)"].append((ours, base))

        emb, emb_groups, _, _ = make_data(concepts, per_concept, dim, in_pairs=200, cross_pairs=50, seed=concepts)
        ours, found = _best_of(repeats, lambda: cross_group_cosine_pairs(emb, THRESHOLD, emb_groups))
        base, expected = _best_of(repeats, lambda: cross_group_cosine_pairs_before(emb, THRESHOLD, emb_groups))
        if not np.array_equal(found[0], expected[0]):
            raise SystemExit(f"FAILED: cross-concept cosine pairs differ from the baseline at n={n}")
        rows["cross-concept cosine (candidates vs sort all)"].append((ours, base))

        block = emb[:min(n, 5000)]    # one concept of a release: its size does not grow with the build
        ours, found = _best_of(repeats, lambda: cosine_pairs(block, THRESHOLD))
        base, expected = _best_of(repeats, lambda: cosine_pairs_before(block, THRESHOLD))
        if not np.array_equal(found[0], expected[0]):
            raise SystemExit(f"FAILED: in-concept cosine pairs differ from the baseline at n={len(block)}")
        rows["in-concept cosine (staircase vs full diagonal)"].append((ours, base))
    print(f"\nscaling (best of {repeats}; sizes {', '.join(map(str, sizes))} items; in-concept at "
          f"{min(sizes[0], 5000)} items per size)")
    for name, timings in rows.items():
        ours = [t for t, _ in timings]
        base = [t for _, t in timings]
        cells = "  ".join(f"{o:.3f}s vs {b:.3f}s = {b / o:.2f}x" for o, b in timings)
        exponents = (f"k ours {_exponent(sizes, ours):.2f}, before {_exponent(sizes, base):.2f}"
                     if not name.startswith("in-concept") else "fixed size")
        print(f"{name}: {cells}  ({exponents})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=40)
    parser.add_argument("--per-concept", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--in-pairs", type=int, default=2000, help="planted in-concept pairs (attempted)")
    parser.add_argument("--cross-pairs", type=int, default=50, help="planted cross-concept pairs (attempted)")
    parser.add_argument("--naive-sample", type=int, default=400)
    parser.add_argument("--exact-cross-sample", type=int, default=20000)
    parser.add_argument("--scales", default="10,20,40", help="concept counts of the three scaling sizes")
    parser.add_argument("--scale-per-concept", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scaling-only", action="store_true", help="only the three-size scaling table")
    args = parser.parse_args()
    if args.scaling_only:
        scaling([int(s) for s in args.scales.split(",")], args.scale_per_concept, args.dim, args.repeats)
        return

    probe = np.random.default_rng(2).standard_normal((4096, args.dim), dtype=np.float32)
    t = time.perf_counter()
    probe @ probe.T
    print(f"machine: {2 * 4096 * 4096 * args.dim / (time.perf_counter() - t) / 1e9:.0f} GFLOP/s float32 matmul now")
    total_start = time.perf_counter()
    t = time.perf_counter()
    emb, groups, planted_in, planted_cross = make_data(
        args.concepts, args.per_concept, args.dim, args.in_pairs, args.cross_pairs)
    n = len(emb)
    print(f"data: {n} x {args.dim} float32 in {args.concepts} concepts; planted {len(planted_in)} in-concept and "
          f"{len(planted_cross)} cross-concept pairs ({time.perf_counter() - t:.1f} s to make)")

    t = time.perf_counter()
    found_in = in_concept_search(emb, args.concepts, args.per_concept)
    ours_in = time.perf_counter() - t
    missed = planted_in - found_in
    print(f"in-concept exact (blocked matmul): {ours_in:.2f} s, {len(found_in)} pairs >= {THRESHOLD}, "
          f"planted found {len(planted_in) - len(missed)}/{len(planted_in)}, extra {len(found_in - planted_in)}")

    per_pair = naive_seconds_per_pair(emb, args.naive_sample)
    in_pairs_total = args.concepts * args.per_concept * (args.per_concept - 1) / 2
    naive_in = per_pair * in_pairs_total
    print(f"in-concept naive pairwise (Python loop): {per_pair * 1e6:.2f} us/pair on a {args.naive_sample}-vector "
          f"subsample -> {naive_in:.0f} s extrapolated to {in_pairs_total:.3g} pairs")
    print(f"in-concept speed-up: {naive_in / ours_in:.0f}x")

    t = time.perf_counter()
    pairs, _ = cross_group_cosine_pairs(emb, THRESHOLD, groups)
    ours_cross = time.perf_counter() - t
    found_cross = {tuple(map(int, p)) for p in pairs}
    hits = len(planted_cross & found_cross)
    recall = hits / max(1, len(planted_cross))
    print(f"cross-concept exact with pruning: {ours_cross:.2f} s, {len(found_cross)} pairs, "
          f"recall on planted cross-concept pairs {recall:.3f} ({hits}/{len(planted_cross)})")

    sample = min(n, args.exact_cross_sample)
    pick = np.sort(np.random.default_rng(1).choice(n, size=sample, replace=False))
    t = time.perf_counter()
    cosine_pairs(emb[pick], THRESHOLD, groups[pick])
    exact_cross = (time.perf_counter() - t) * (n / sample) ** 2
    print(f"cross-concept exact (blocked matmul): {exact_cross:.0f} s extrapolated from a {sample}-vector subsample")
    print(f"cross-concept speed-up of pruned over plain blocked: {exact_cross / ours_cross:.1f}x")
    total = time.perf_counter() - total_start
    print(f"total (our in-concept + cross-concept + data + baselines): {total:.1f} s; "
          f"ours alone: {ours_in + ours_cross:.1f} s")
    if missed or recall < 1:
        raise SystemExit(f"FAILED: {len(missed)} planted in-concept pairs and "
                         f"{len(planted_cross - found_cross)} cross-concept pairs not found")
    scaling([int(s) for s in args.scales.split(",")], args.scale_per_concept, args.dim, args.repeats)


if __name__ == "__main__":
    main()
