"""Only the tool's own temporary files are ever removed (issue 25 item 1).

A user's ``.tmp-*`` files and folders, at every depth of a build folder, an export folder and an
unrelated project nested in an output folder, survive every writing command; the leftovers of a
killed writer (``.isekai-gen-tmp-<dead pid>-*``) are removed by the next command that succeeds,
never by one that refuses, and never those of a writer still running.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from splits_fixtures import eurosat
from temp_names import leftover

from isekai_gen.cli import main
from isekai_gen.fileio import TEMP_MARKER, atomic_open, remove_temp_files
from isekai_gen.lock import LOCK_NAME, build_lock

EXE = str(Path(sys.executable).parent / "isekai-gen")
DEPTHS = ["", "export", "export/hf", "images/cactihog", "nested/project/src/pkg"]


def plant(out: Path) -> tuple[dict[Path, bytes], list[Path]]:
    """User files (``.tmp-*`` files and a ``.tmp-drafts/`` folder) and a killed writer's leftovers
    at every depth of ``out``; returns the user files with their bytes, and the leftovers."""
    user, ours = {}, []
    for depth in DEPTHS:
        folder = out / depth
        (folder / ".tmp-drafts").mkdir(parents=True, exist_ok=True)
        for path in (folder / ".tmp-notes.txt", folder / ".tmp-drafts" / "draft.txt", folder / ".tmp-wip.py",
                     folder / f".tmp-{Path(depth).name or 'run.json'}.x1y2z3"):  # the old temporary names
            path.write_bytes(f"mine: {path.name}".encode())
            user[path] = path.read_bytes()
        ours += [folder / leftover("run.json"), folder / leftover("shard.tar", "dir")]
        ours[-2].write_bytes(b"half")
        (ours[-1] / "inner").mkdir(parents=True, exist_ok=True)
    return user, ours


def assert_only_ours_removed(out: Path, user: dict[Path, bytes], ours: list[Path]) -> None:
    assert {path: path.read_bytes() for path in user if path.is_file()} == user
    assert [path for path in ours if path.exists()] == []
    assert not (out / LOCK_NAME).exists()


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, isekai_cache):
    out = tmp_path_factory.mktemp("temp") / "build"
    user, ours = plant(out)
    built = cli("build", "--preset", "tiny", "--out", out, "--no-progress",
                "--set", "concepts=[cactihog,hedgehog,cctovac,octopus]")
    assert built.returncode == 0, built.stderr[-3000:]
    return out, user, ours


def test_build_removes_only_a_dead_writers_leftovers(tiny_build):
    assert_only_ours_removed(*tiny_build)


@pytest.mark.parametrize("args", [["filter", "--out", "{out}"], ["episodes", "--out", "{out}"],
                                  ["export", "--out", "{out}"], ["preview", "{out}"]])
def test_every_command_on_a_build_keeps_the_users_tmp_files(tiny_build, args):
    out = tiny_build[0]
    user, ours = plant(out)
    result = cli(*[arg.format(out=out) for arg in args], "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_only_ours_removed(out, user, ours)


def test_a_review_decision_keeps_the_users_tmp_files(tiny_build):
    from isekai_gen.curation.decisions import decide

    out = tiny_build[0]
    user, _ = plant(out)
    assert decide(out, {"cactihog-00000"}, ["cactihog-00000"], "reject", "tab-1") is not None
    assert {path: path.read_bytes() for path in user} == user


def test_splits_build_into_an_ordinary_folder_keeps_a_nested_projects_files(tmp_path):
    root = eurosat(tmp_path / "root", per_class=3)
    out = tmp_path / "out"
    user, ours = plant(out)
    result = cli("splits", "build", "--dataset", "eurosat", "--root", root, "--out", out,
                 "--demo-per-class", "2", "--test-per-class", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (out / "eurosat" / "split.json").is_file()
    assert_only_ours_removed(out, user, ours)


def test_a_refused_command_removes_nothing_and_leaves_no_lock(tmp_path):
    out = tmp_path / "not-a-build"
    plant(out)
    before = sorted(out.rglob("*"))
    result = cli("preview", out)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert sorted(out.rglob("*")) == before  # the leftovers too: only a command that succeeds sweeps
    missing = CliRunner().invoke(main, ["preview", str(tmp_path / "missing")])
    assert missing.exit_code == 1 and not (tmp_path / "missing").exists()


def test_a_live_writers_temporary_files_and_hidden_folders_are_kept(tmp_path):
    """The review server writes without the lock: its write in flight is not swept away."""
    out = tmp_path / "out"
    (out / ".git" / "objects").mkdir(parents=True)
    hidden = out / ".git" / "objects" / leftover("pack")  # the tool writes no hidden folder: not entered
    hidden.write_bytes(b"")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / "review" / f"{TEMP_MARKER}{sleeper.pid}-decisions.jsonl.abc"
        live.parent.mkdir()
        live.write_bytes(b"in flight")
        with atomic_open(out / "manual_rejects.txt") as handle:  # this process's own write in flight
            handle.write(b"x\n")
            assert remove_temp_files(out) == 0
        assert live.exists() and hidden.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    dead = out / "deep" / "er" / leftover("part.npz")
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b"")
    with build_lock(out, "test"):
        assert dead.exists()  # swept only once the command succeeded
    assert not live.exists() and not dead.exists() and hidden.exists()
    with pytest.raises(RuntimeError), build_lock(out, "test"):
        dead.write_bytes(b"")
        raise RuntimeError("the command failed")
    assert dead.exists()

