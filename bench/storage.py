"""Output on object storage vs a local folder: the same generation, `--out DIR` vs `--out s3://...`.

    python bench/storage.py                  # tiny preset, 400 images
    python bench/storage.py --images 1600

The bucket is an S3 test double (moto's server, started here as its own process on loopback),
so this measures what isekai-gen adds (one PUT per image, one per journal line, the mirror's
sync), not a real network. Runs alternate and the best of each side counts. Both must give
byte-identical images and manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isekai_gen.catalog import load_catalog  # noqa: E402
from isekai_gen.config import load_config  # noqa: E402
from isekai_gen.generation import run_generation  # noqa: E402
from isekai_gen.storage import opened  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_s3_double() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="images in all (tiny preset)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating local/S3 runs (best of each)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psutil  # a dependency of ray (the dev extra)

    server, endpoint = start_s3_double()
    try:
        import fsspec

        fsspec.config.conf["s3"] = {"endpoint_url": endpoint, "key": "bench", "secret": "bench"}
        fs = fsspec.filesystem("s3")
        fs.mkdir("bench")
        catalog = load_catalog(load_config("tiny").catalog)
        per_concept = -(-args.images // len(catalog.concepts))
        config = load_config("tiny", None, [{"generation": {"images_per_concept": per_concept}}])
        n = config.generation.images_per_concept * len(catalog.concepts)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            os.environ["ISEKAI_GEN_MIRRORS"] = str(tmp / "mirrors")
            warm = load_config("tiny", None, [{"generation": {"images_per_concept": 1}}])
            run_generation(warm, tmp / "warm-up", catalog)  # the tiny pipeline, built outside the timings
            local_s = remote_s = float("inf")
            for k in range(args.repeats):
                start = time.perf_counter()
                run_generation(config, tmp / f"local-{k}", catalog)
                local_s = min(local_s, time.perf_counter() - start)
                start = time.perf_counter()
                with opened(f"s3://bench/run-{k}") as session:  # what the CLI does around a stage
                    run_generation(config, session.mirror, catalog)
                remote_s = min(remote_s, time.perf_counter() - start)
            local_root = tmp / "local-0"
            local = digests({p.relative_to(local_root).as_posix(): p.read_bytes()
                             for p in local_root.rglob("*") if p.is_file() and
                             (p.name == "manifest.jsonl" or p.suffix == ".png")})
            keys = [key for key in fs.find("bench/run-0") if key.endswith((".png", "/manifest.jsonl"))]
            remote = digests({key[len("bench/run-0/"):]: data for key, data in fs.cat(keys).items()})
        print(f"{n} images, tiny preset, local engine, best of {args.repeats} alternating runs")
        print(f"--out DIR:        {local_s:8.2f} s  {n / local_s:7.2f} images/s")
        print(f"--out s3://...:   {remote_s:8.2f} s  {n / remote_s:7.2f} images/s  ({n} image PUTs, S3 test double)")
        print(f"s3 / local wall time: {remote_s / local_s:.2f}x; byte-identical: {remote == local}")
        cpu = psutil.Process(server.pid).cpu_times()
        print(f"the test double's own CPU time over all {args.repeats} S3 runs: {cpu.user + cpu.system:.2f} s "
              f"(it shares this machine's {os.cpu_count()} cores with the generation)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
