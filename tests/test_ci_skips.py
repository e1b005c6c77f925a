"""In CI (CI=true) a skipped test or module is a failure (tests/conftest.py), so missing extras or a
missing Chromium cannot turn whole suites into a green run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING_TESTS = {
    "test_skips.py": "import pytest\n\ndef test_skipped():\n    pytest.skip('no extra')\n\ndef test_runs():\n    pass\n",
    "test_module_skip.py": "import pytest\npytest.importorskip('isekai_gen_no_such_module')\n\ndef test_b():\n    pass\n",
}


def _run(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-p", "no:randomly", str(folder)], cwd=folder, env=env, capture_output=True, text=True)


@pytest.fixture
def skipping_suite(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    for name, text in SKIPPING_TESTS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_skips_fail_in_ci(skipping_suite):
    result = _run(skipping_suite, "true")
    assert result.returncode != 0
    assert "skipped in CI (CI=true), which counts as a failure" in result.stdout
    assert "isekai_gen_no_such_module" in result.stdout


def test_test_level_skip_fails_in_ci(skipping_suite):
    (skipping_suite / "test_module_skip.py").unlink()
    result = _run(skipping_suite, "true")
    assert result.returncode == 1
    assert "1 failed, 1 passed" in result.stdout


def test_skips_stay_skips_locally(skipping_suite):
    result = _run(skipping_suite, None)
    assert result.returncode == 0
    assert "2 skipped" in result.stdout and "1 passed" in result.stdout
