"""Generation engines side by side: `--engine local` vs `--engine ray` on this machine, same jobs.

    python bench/engine.py                      # tiny preset, 1,600 images (40 concepts x 40)
    python bench/engine.py --images 400 --nodes 1,2,3

1. local vs ray on one Ray node holding every CPU of this machine (one actor using all of them,
   as the local run does): wall time of the whole stage call, including the actor's start and
   pipeline load (a per-run cost of the engine), not `ray.init` (once per cluster); runs
   alternate and the best of each side counts, as the load of a shared machine drifts. Target:
   ray <= 1.25x local. Both folders must hold byte-identical images and manifests.
2. Where an actor's start goes (a bare actor doing what the renderer's start does, twice): Ray's
   actor creation, `import torch`, `import diffusers`, the pipeline load (its lazy imports of
   transformers, peft, torch._dynamo included), against the same load in this warm process.
3. images/s vs simulated nodes (`ray.cluster_utils.Cluster`, one CPU and one actor per node).
   On one machine the "nodes" share its cores, so this shows the engine's per-node overhead,
   not a speed-up; on a real cluster each node adds its own cores or GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.catalog import load_catalog  # noqa: E402
from isekai_gen.config import BuildConfig, load_config, with_overrides  # noqa: E402
from isekai_gen.fileio import sha256_file  # noqa: E402
from isekai_gen.generation import run_generation  # noqa: E402


def digest(out_dir: Path) -> dict[str, str]:
    files = {str(p.relative_to(out_dir)): sha256_file(p) for p in sorted((out_dir / "images").rglob("*.png"))}
    return {**files, "manifest.jsonl": sha256_file(out_dir / "manifest.jsonl")}


def timed(config: BuildConfig, catalog, out_dir: Path) -> float:
    start = time.perf_counter()
    run_generation(config, out_dir, catalog)
    return time.perf_counter() - start


def print_actor_start(ray, config: BuildConfig) -> None:
    """Section 2 of the module docstring."""
    from isekai_gen.generation.pipeline import load_generation_pipeline

    settings = config.generation

    class StartProbe:  # defined here: Ray pickles it by value
        def __init__(self, asked: float):
            self.times = {"asked": asked, "constructor": time.time()}
            import torch  # noqa: F401
            self.times["torch"] = time.time()
            import diffusers  # noqa: F401
            self.times["diffusers"] = time.time()
            load_generation_pipeline(settings, None)
            self.times["pipeline"] = time.time()

        def report(self) -> dict:
            return self.times

    probe_class = ray.remote(num_cpus=1)(StartProbe)
    for k in range(2):
        probe = probe_class.remote(time.time())
        times = ray.get(probe.report.remote())
        ray.kill(probe)
        steps = list(times)
        print(f"actor start {k + 1}: " + ", ".join(f"{b} +{times[b] - times[a]:.2f} s" for a, b in zip(steps, steps[1:]))
              + f" (total {times['pipeline'] - times['asked']:.2f} s)", flush=True)
    start = time.perf_counter()
    load_generation_pipeline(settings, None)
    print(f"pipeline load in this warm process: {time.perf_counter() - start:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1600, help="images in all (tiny preset)")
    parser.add_argument("--nodes", default="1,2", help="simulated node counts for the scaling table")
    parser.add_argument("--repeats", type=int, default=2, help="alternating local/ray runs (best of each)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray
    from ray.cluster_utils import Cluster

    catalog = load_catalog(load_config("tiny").catalog)
    config = load_config("tiny", None, [{"generation": {"images_per_concept": -(-args.images // len(catalog.concepts))}}])
    n = config.generation.images_per_concept * len(catalog.concepts)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_generation(with_overrides(config, [{"generation": {"images_per_concept": 1}}], "warm-up"),
                       tmp / "warm-up", catalog)  # builds the tiny pipeline once, outside the timings
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
        ray_config = with_overrides(config, [{"engine": {"name": "ray", "max_actors": 1, "cpus_per_actor": cpus}}], "ray")
        # Alternating runs, best of each: the machine's load drifts between runs.
        local_s = ray_s = float("inf")
        for k in range(args.repeats):
            local_s = min(local_s, timed(config, catalog, tmp / f"local-{k}"))
            ray_s = min(ray_s, timed(ray_config, catalog, tmp / f"ray-{k}"))
        print_actor_start(ray, config)
        ray.shutdown()
        for k in range(1, args.repeats):
            shutil.rmtree(tmp / f"local-{k}")
            shutil.rmtree(tmp / f"ray-{k}")
        (tmp / "local-0").rename(tmp / "local")
        (tmp / "ray-0").rename(tmp / "ray")
        print(f"{n} images, tiny preset, {cpus} CPUs, best of {args.repeats} alternating runs")
        print(f"engine local:          {local_s:8.2f} s  {n / local_s:7.2f} images/s")
        identical = digest(tmp / "local") == digest(tmp / "ray")
        print(f"engine ray (1 actor):  {ray_s:8.2f} s  {n / ray_s:7.2f} images/s")
        print(f"ray / local wall time: {ray_s / local_s:.2f}x (target <= 1.25x); byte-identical: {identical}",
              flush=True)
        for nodes in [int(x) for x in args.nodes.split(",")]:
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, logging_level="WARNING")
            node_config = with_overrides(config, [{"engine": {"name": "ray", "cpus_per_actor": 1, "max_actors": nodes}}],
                                         "nodes")
            out_dir = tmp / f"nodes-{nodes}"
            seconds = timed(node_config, catalog, out_dir)
            same = digest(out_dir) == digest(tmp / "local")
            ray.shutdown()
            cluster.shutdown()
            print(f"{nodes} simulated node(s): {seconds:8.2f} s  {n / seconds:7.2f} images/s  byte-identical: {same}",
                  flush=True)


if __name__ == "__main__":
    main()
