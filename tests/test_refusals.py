"""Stage commands refuse a run.json whose generation identity contradicts the manifest rows.

A hand edit (``steps: 3`` on a 2-step build) would otherwise make every later stage describe and
extend the images with settings they were not made with. Through the CLI, one line, exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_export_helpers import make_build

from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.run_info import config_from_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def build(tmp_path) -> Path:
    make_build(tmp_path, benchmarks=False)
    return tmp_path


def _edit_run_json(out: Path, dotted: str, value) -> None:
    record = json.loads((out / "run.json").read_text())
    section = record["config"]
    *parents, last = dotted.split(".")
    for part in parents:
        section = section[part]
    section[last] = value
    (out / "run.json").write_text(json.dumps(record))


def test_untouched_run_json_is_accepted(build):
    assert config_from_run(build).generation.steps == 2


def test_episodes_with_hand_edited_steps_is_refused_in_one_line(build):
    _edit_run_json(build, "generation.steps", 3)
    before = (build / "episodes" / "episodes.jsonl").read_bytes()
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "episodes", "--out", str(build), "--no-progress"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {build / 'run.json'}: generation.steps is 3 but the manifest rows were made with steps 2 "
        f"({build / 'manifest.jsonl'}, row 'cactihog-00000'); this config does not describe the images of this "
        "folder (was run.json edited?): restore it, or use a new --out folder for other settings\n")
    assert (build / "episodes" / "episodes.jsonl").read_bytes() == before


@pytest.mark.parametrize("dotted, value, message", [
    ("generation.guidance_scale", 1.5, "generation.guidance_scale is 1.5 but the manifest rows were made with "
                                       "guidance_scale 0.0"),
    ("generation.width", 32, "generation.width is 32 but the manifest rows were made with width 16"),
    ("generation.model.id", "tiny-sdxl", "generation.model.id is 'tiny-sdxl' but the manifest rows were made with "
                                         "model_id 'tiny-sd'"),
    ("generation.model.revision", "a" * 40, None),   # rows of a local folder record no commit: nothing to compare
    ("seed", 7, "seed is 7 but the manifest rows' image seeds were derived from another global seed"),
])
def test_every_identity_field_is_cross_checked(build, dotted, value, message):
    _edit_run_json(build, dotted, value)
    result = CliRunner().invoke(main, ["export", "--out", str(build), "--no-progress"])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output
    assert not (build / "export" / "hf").exists()


def test_command_line_overrides_are_cross_checked_too(build):
    result = CliRunner().invoke(main, ["export", "--out", str(build), "--set", "generation.steps=4", "--no-progress"])
    assert result.exit_code == 1
    assert "run.json with the command-line overrides: generation.steps is 4 but the manifest rows were made with " \
           "steps 2" in result.output


def test_a_build_still_generating_is_checked_against_its_journals(build):
    rows = [json.loads(line) for line in (build / "manifest.jsonl").read_text().splitlines()]
    (build / "manifest.jsonl").unlink()
    parts = build / "manifest.parts"
    parts.mkdir()
    (parts / "part-00000-of-00001.jsonl").write_text(json.dumps({"rows": rows[:3]}) + "\n")
    assert config_from_run(build).generation.steps == 2
    _edit_run_json(build, "generation.height", 64)
    with pytest.raises(UserError, match=r"run\.json: generation\.height is 64 but the manifest rows were made with "
                                        r"height 16 \(.*manifest\.parts, row 'cactihog-00000'\)"):
        config_from_run(build)
