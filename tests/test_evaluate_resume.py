"""`isekai-gen evaluate` killed with SIGKILL at random points and resumed: each request is sent
again at most once per kill in which it was in flight (the test double counts what it receives),
and the resumed run ends with every answer and the right score.

Each run is a forked child process (the CLI's own `main`), so it starts with the SDK already
imported: a fresh interpreter would spend seconds importing openai before its first request."""

from __future__ import annotations

import json
import os
import random
import signal
import multiprocessing
import time
from pathlib import Path

import pytest

from evaluate_double import OpenAIDouble
from evaluate_fixtures import make_split
from isekai_gen.cli import main
import isekai_gen.evaluate.api  # noqa: F401  (imported before forking: see the module docstring)
import isekai_gen.scoring.api  # noqa: F401
import isekai_gen.scoring.writers  # noqa: F401

pytest.importorskip("openai")
CONCURRENCY = 4


def _cli(args: list[str]) -> None:
    os.environ.pop("OPENAI_API_KEY", None)
    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        os._exit(exc.code or 0)
    os._exit(0)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_at_random_points_then_resume(tmp_path):
    root = tmp_path / "UCM"
    truth = make_split(root)
    out = tmp_path / "run"
    rng = random.Random(1234)
    fork = multiprocessing.get_context("fork")
    with OpenAIDouble(truth, latency_s=0.05) as double:
        command = ["evaluate", "--truth", str(root), "--model", "openai:m",
                   "--endpoint", double.base_url, "--shots", "0,1", "--batch-size", "1,2", "--out", str(out),
                   "--concurrency", str(CONCURRENCY), "--no-progress"]
        kills = 0
        for _ in range(3):
            before = _lines(out / "journal.jsonl")
            target = before + rng.randint(1, 8)
            process = fork.Process(target=_cli, args=(command,))
            process.start()
            deadline = time.monotonic() + 60
            while process.is_alive() and _lines(out / "journal.jsonl") < target and time.monotonic() < deadline:
                time.sleep(0.002)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.join()
        final = fork.Process(target=_cli, args=(command,))
        final.start()
        final.join(120)
        assert final.exitcode == 0
    plan = [json.loads(line) for line in (out / "plan.jsonl").read_text().splitlines()]
    assert len(plan) == 36 and len(double.counts) == 36
    resent = sum(count - 1 for count in double.counts.values())
    assert kills >= 2
    assert resent <= CONCURRENCY * kills
    assert max(double.counts.values()) <= 1 + kills
    report = json.loads((out / "report.json").read_text())
    assert [cell["value"] for cell in report["cells"]] == [100.0] * 4
    assert all(cell["pending"] == 0 for cell in report["cells"])
