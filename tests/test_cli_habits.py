"""The habits users bring from pip, huggingface-cli and img2dataset: -q/-v anywhere, progress bars
only on a terminal (TQDM_DISABLE honoured), one --progress for every command, documented exit statuses."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen.commands._options import show_progress
from test_episodes import make_catalog, write_build
from temp_names import leftover
from test_lock import HOLDER, TIMEOUT, read_until, release, start

EXE = str(Path(sys.executable).parent / "isekai-gen")
BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d")  # tqdm's "2/2 [00:00<00:00, ...]"
WRITERS = [("build",), ("generate",), ("filter",), ("episodes",), ("export",), ("preview",), ("splits", "build"),
           ("splits", "build-all")]


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + (name,))


def run(*args, env=None, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], stdout=subprocess.PIPE, stderr=stderr, text=True,
                          timeout=TIMEOUT, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flags", [["-v", "export"], ["export", "--verbose"], ["export", "-q"], ["export"]])
def test_verbose_and_quiet_work_before_or_after_the_command(tmp_path, flags):
    out = tmp_path / "out"
    out.mkdir()
    (out / leftover("run.json")).write_text("half")  # a killed writer's, kept: this command refuses
    command, *after = flags[flags.index("export"):]
    result = run(*flags[:flags.index("export")], command, "--out", out, *after)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: {out / 'run.json'}: not found; run `isekai-gen build` or `isekai-gen generate` " \
                        f"into {out} first, or pass --preset/--config"
    verbose = ("-v" in flags or "--verbose" in flags) and "-q" not in flags
    assert any(f"{out.resolve()}: writer lock taken" in line for line in lines) == verbose
    assert len(lines) > 1 if verbose else len(lines) == 1
    assert (out / leftover("run.json")).exists() and not any("removing" in line for line in lines)


def test_every_command_takes_verbose_and_quiet_and_every_writer_wait():
    commands = dict(_commands(main))
    for path, command in commands.items():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, path
    for path in WRITERS:
        assert "--wait" in {opt for param in commands[path].params for opt in param.opts}, path


def test_every_progress_option_has_the_one_default():
    with_progress = {path: param for path, command in _commands(main) for param in command.params
                     if param.name == "progress"}
    assert set(WRITERS) <= set(with_progress)
    helps = {param.help for param in with_progress.values()}
    assert len(helps) == 1 and all(param.default is None for param in with_progress.values()), helps


def test_progress_default_follows_the_terminal_quiet_and_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert show_progress(None) is True and show_progress(False) is False
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert show_progress(None) is False and show_progress(True) is True
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert show_progress(None) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert show_progress(None) is False and show_progress(True) is True


def _on_a_terminal(*args, env=None) -> str:
    """Run ``isekai-gen ARGS`` with stderr on a pseudo-terminal; return what it showed there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm sizes its bar to it
    try:
        proc = subprocess.run([EXE, *map(str, args)], stdout=subprocess.PIPE, stderr=follower, timeout=TIMEOUT,
                              env={**os.environ, **(env or {})})
        os.close(follower)
        follower = None
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
        assert proc.returncode == 0, shown
        return shown.decode(errors="replace")
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)


def test_progress_bars_by_default_only_on_a_terminal(tmp_path):
    build = write_build(tmp_path / "build", make_catalog(1), kept=3, rejected=0)
    assert BAR.search(_on_a_terminal("preview", build))
    for args, env in [(["-q"], None), ([], {"TQDM_DISABLE": "1"})]:
        assert not BAR.search(_on_a_terminal("preview", build, *args, env=env)), (args, env)
    piped = run("preview", build)
    assert piped.returncode == 0 and not BAR.search(piped.stderr)
    forced = run("preview", build, "--progress", env={"TQDM_DISABLE": "1"})
    assert forced.returncode == 0 and BAR.search(forced.stderr)


def test_exit_statuses_0_1_2_and_130(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["catalog", "validate", "isekai"]).exit_code == 0
    assert runner.invoke(main, ["catalog", "validate", str(tmp_path / "missing.yaml")]).exit_code == 1
    assert runner.invoke(main, ["build", "--no-such-option"]).exit_code == 2
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2
    assert runner.invoke(main, ["splits", "build", "--seed", "minus-one", "--out", "x"]).exit_code == 2

    build = write_build(tmp_path / "build", make_catalog(1), kept=3, rejected=0)
    holder = start(HOLDER, build, "isekai-gen export --out x")
    try:
        waiter = subprocess.Popen([EXE, "preview", "--wait", str(build)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert read_until(waiter.stderr, "waiting for"), "no waiting line"
        waiter.send_signal(signal.SIGINT)
        assert waiter.wait(timeout=TIMEOUT) == 130
        assert waiter.stderr.read().strip() == "interrupted; rerun the same command to resume"
    finally:
        release(holder)


def test_readme_documents_the_exit_statuses():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert re.search(r"Exit status: `0` .*`1` failed at run time.*`2` usage error.*`130` interrupted", readme, re.S)
