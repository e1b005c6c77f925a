"""Atomic writes when the disk is full, and strict JSON (no NaN): through the library and the CLI."""

from __future__ import annotations

import errno
import json
import math
import os
import re

import pytest
from click.testing import CliRunner

from isekai_gen import fileio
from isekai_gen.cli import main
from isekai_gen.errors import UserError
from isekai_gen.fileio import DiskFullError, atomic_write_bytes, dumps_canonical, write_json, write_jsonl
from test_episodes import make_catalog, write_build

FREE = r"[0-9.]+ [KMGT]?B free on the file system of "


class FullDisk:
    """Test double of a file on a full disk: takes the first 100 bytes, then ENOSPC (as write(2) does)."""

    def __init__(self, handle):
        self.handle, self.written = handle, 0

    def write(self, data):
        if self.written + len(data) > 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.fixture
def full_disk(monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))


def test_full_disk_names_the_file_its_size_and_the_free_space(tmp_path, full_disk):
    target = tmp_path / "sub" / "image.png"
    with pytest.raises(DiskFullError) as err:
        atomic_write_bytes(target, b"x" * 5000)
    message = str(err.value)
    assert re.fullmatch(rf"{re.escape(str(target))}: no space left on device while writing it \(needs 5\.0 KB; "
                        rf"{FREE}{re.escape(str(target.parent))}\); free some space and rerun the same command", message)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError) and isinstance(err.value, UserError)
    assert os.listdir(target.parent) == []  # neither the target nor a temporary file

    with pytest.raises(DiskFullError, match=r"rows\.jsonl: .*needs more than the [0-9]+ B written"):
        write_jsonl(tmp_path / "rows.jsonl", ({"i": i, "text": "y" * 30} for i in range(10)))


def test_full_disk_through_the_cli_is_one_line(tmp_path, full_disk):
    build = write_build(tmp_path / "build", make_catalog(1), kept=3, rejected=0)
    result = CliRunner().invoke(main, ["preview", str(build)])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    # The first file preview writes (a cached thumbnail or a sheet) is the one named.
    assert re.fullmatch(rf"error: {re.escape(str(build))}/\S+: no space left on device while writing "
                        rf"it \(needs [0-9.]+ [KMGT]?B; {FREE}.*\); free some space and rerun the same command", line)


def test_full_disk_error_without_a_file_name_names_the_build_folder(tmp_path, monkeypatch):
    """A write on an open handle outside fileio raises ENOSPC with no file name: the CLI's handler
    names the folder being written and its free space."""
    build = write_build(tmp_path / "build", make_catalog(1), kept=3, rejected=0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("isekai_gen.preview.write_preview", full)
    result = CliRunner().invoke(main, ["preview", str(build)])
    assert result.exit_code == 1
    assert re.fullmatch(rf"error: writing into {re.escape(str(build.resolve()))}: No space left on device "
                        r"\([0-9.]+ [KMGT]?B free on its file system\); free some space and rerun the same command",
                        result.output.strip())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_files_never_hold_nan_or_infinity(tmp_path, bad):
    report = {"concepts": {"cactihog": {"alignment": [0.25, bad]}}}
    with pytest.raises(ValueError, match=r"report\.json: concepts/cactihog/alignment/1 is .*which JSON cannot hold"):
        write_json(tmp_path / "report.json", report)
    with pytest.raises(ValueError, match="concepts/cactihog/alignment/1"):
        write_jsonl(tmp_path / "rows.jsonl", [{"ok": 1}, report])
    with pytest.raises(ValueError):
        dumps_canonical(report)
    assert os.listdir(tmp_path) == []
    write_json(tmp_path / "report.json", {"alignment": 0.25})
    assert json.loads((tmp_path / "report.json").read_text()) == {"alignment": 0.25}
