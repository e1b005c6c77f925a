"""One installed namespace: nothing of ours is shadowed by a user's own top-level modules, and
every subpackage is in pyproject's explicit ``packages`` list (a missing one is absent from wheels)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DECOY = "import sys\nprint('DECOY {name} RAN')\nsys.exit(42)\n"


@pytest.fixture
def decoy_dir(tmp_path):
    """A working directory holding the modules the package used to install at the top level."""
    for name in ("cli", "splits", "schemas", "configs"):
        (tmp_path / f"{name}.py").write_text(DECOY.format(name=name))
    return tmp_path


@pytest.mark.parametrize("argv", [
    [sys.executable, "-m", "isekai_gen", "--help"],
    [sys.executable, "-m", "isekai_gen", "splits", "list"],  # imports isekai_gen.splits and its adapters
    [str(Path(sys.executable).parent / "isekai-gen"), "catalog", "validate", "isekai"],  # configs + schemas
    [str(Path(sys.executable).parent / "isekai-gen"), "--help"],
])
def test_ours_runs_from_a_folder_with_decoy_modules(decoy_dir, argv):
    proc = subprocess.run(argv, cwd=decoy_dir, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "", "HOME": str(decoy_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "DECOY" not in proc.stdout + proc.stderr
    if "--help" in argv:
        assert proc.stdout.startswith("Usage: isekai-gen ")


def test_every_subpackage_is_listed_in_pyproject():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    assert folders["isekai_gen"] == ROOT / "isekai_gen"
    expected = set()
    for name, folder in folders.items():
        expected.add(name)
        for init in folder.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                expected.add(".".join([name, *init.parent.relative_to(folder).parts]))
    # Data folders (configs/catalogs, ...) install only when listed too.
    for name in ("isekai_gen.configs",):
        for sub in folders[name].iterdir():
            if sub.is_dir() and sub.name != "__pycache__" and any(sub.iterdir()):
                expected.add(f"{name}.{sub.name}")
    assert sorted(expected - listed) == []
    assert sorted(name for name in listed - expected if not (ROOT / name.replace(".", "/")).is_dir()) == []
